"""A FreeRADIUS 3.2 of the benchmarks' own, for the side-by-side rows (issue 10).

`freeradius_server()` writes a minimal configuration into a temporary directory and runs
``/usr/sbin/freeradius -f -d CONFDIR`` (foreground, no -X: debug logging off, log lines
to ``radius.log`` in that directory, auth logging off) as the current user, listening on
127.0.0.1 only, on UDP ports picked at run time: Access-Requests on one, Accounting-Requests
on the other. Nothing under /etc/freeradius is read; the dictionary is
/usr/share/freeradius/dictionary (the one the Debian package installs).

The configuration, all generated here:
- ``clients.conf``: one client, 127.0.0.1, the benchmark's shared secret,
  ``require_message_authenticator = yes`` (netd requires it too, so both servers verify
  an HMAC-MD5 per Access-Request; the load generator sends it first in every request).
  Accounting-Requests carry no Message-Authenticator (RFC 2866; the generator sends none,
  as NASes do) and FreeRADIUS asks for none on them: the Request Authenticator is checked.
- a virtual server ``bench``: authorize (``files`` or ``sql``, then ``pap``), authenticate
  (``Auth-Type PAP``), preacct (Acct-Unique-Session-Id = MD5 of User-Name, Acct-Session-Id,
  NAS-IP-Address, NAS-Identifier and NAS-Port, the attributes the stock ``acct_unique``
  policy hashes), accounting (``sql``; ``ok`` in files mode), post-auth (a Message-Authenticator in
  the reply, as netd sends; no radpostauth row, as netd writes no per-authentication row).
- modules: ``pap``, ``files`` (a users file), ``sql`` (rlm_sql_postgresql), ``expr`` (for
  %{md5:...}) and ``always ok``.
- every subscriber gets the reply netd gives a fiber-100 subscriber of a MikroTik NAS
  (Mikrotik-Rate-Limit, Session-Timeout, Acct-Interim-Interval, Framed-Pool, Class), so
  both servers build replies of the same size.

Modes:
- ``files``: the users file holds the subscribers (``user00000 Cleartext-Password :=
  "pw-00000"`` and the reply items), loaded into memory at start.
- ``sql``: rlm_sql against a database ``radius_bench`` created in the PostgreSQL given by
  ``dsn`` (the benchmark's embedded one), with the standard FreeRADIUS tables radcheck,
  radreply and radacct (and their standard indexes), written here from the documented
  schema. One radcheck row (Cleartext-Password) and five radreply rows per subscriber.
  rlm_sql runs its two per-user queries (radcheck, radreply, ordered by id);
  ``read_groups = no`` and no profiles, so no radusergroup/radgroup* queries: the lean
  rlm_sql setup. Accounting: Start is an INSERT into radacct (on a conflicting
  AcctUniqueId, an update of the start time), Interim-Update and Stop are UPDATEs of the
  open row by AcctUniqueId (an INSERT if no row matched), with the same columns as the
  stock PostgreSQL queries.conf. rlm_sql runs in autocommit: each query is its own
  transaction, and the Accounting-Response leaves after it returns, i.e. after the commit,
  durable with synchronous_commit = on.

Sizing for a throughput test on a small machine: ``thread pool`` with start_servers =
max_servers = 16, min_spare_servers = 0, max_spare_servers = 16: every worker thread
exists from the start, none is spawned or reaped during a run; the sql module's connection
pool has start = min = max = 16 (one connection per thread: a thread never waits for one).
Why 16: with rlm_sql a worker blocks on one PostgreSQL round trip (for accounting, on the
commit's WAL flush too), so the rate is threads / query time until the CPU runs out, and
concurrent commits share WAL flushes. Measured on this 2-core machine (closed loop, window
256, 3 s): 4 threads gave about 4.5k auth/s but 2.0k acct/s (too few commits in flight),
8 and 16 threads about 4.3-4.4k auth/s and 3.2-3.3k acct/s, 32 threads (the stock
max_servers) 3.6k and 2.8k, 64 threads 3.4k and 2.6k: beyond 16 the threads, PostgreSQL's
backends and the generator only contend for the two cores. The files module is CPU-bound
(one receive thread queues requests for the workers): 2 to 32 threads made no difference
beyond the noise (15-23k/s). ``max_requests = 65536`` (FreeRADIUS tracks each request until
cleanup_delay = 5 s after its answer, to answer retransmits; the generator's 32 sockets x
256 identifiers bound that to 8,192 at once), max_queue_size 65536, reject_delay = 0, UDP
receive buffers of 4 MiB (as netd's sockets). Replies carry a Message-Authenticator
(set in post-auth: FreeRADIUS 3.2.1 does not add one by itself), as netd's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from benchmarks.radius_loadgen import Builder

FREERADIUS = Path("/usr/sbin/freeradius")
DICTIONARY = Path("/usr/share/freeradius/dictionary")
INSTALL = "apt-get install -y freeradius freeradius-postgresql"
THREADS = 16
DATABASE = "radius_bench"
Mode = Literal["files", "sql"]

# The reply netd gives a fiber-100 subscriber behind a MikroTik NAS (policies/radius).
REPLY: tuple[tuple[str, str], ...] = (
    ("Mikrotik-Rate-Limit", '"20M/100M"'),
    ("Session-Timeout", "86400"),
    ("Acct-Interim-Interval", "300"),
    ("Framed-Pool", '"fiber"'),
    ("Class", '"plan=fiber-100"'),
)


def available() -> bool:
    return FREERADIUS.exists() and os.access(FREERADIUS, os.X_OK)


def has_postgresql_driver() -> bool:
    return Path("/usr/lib/freeradius/rlm_sql_postgresql.so").exists()


def skip_message() -> str:
    return f"FreeRADIUS side-by-side rows skipped: {FREERADIUS} not found (`{INSTALL}` is needed)"


@dataclass
class FreeRadius:
    """A running FreeRADIUS: its ports, pid (for /proc CPU accounting) and files."""

    auth_port: int
    acct_port: int
    pid: int
    confdir: Path
    log: Path
    mode: Mode
    radius_dsn: str | None  # the radius_bench database (sql mode), for asyncpg


def _free_udp_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def _q(text: str) -> str:
    """A double-quoted FreeRADIUS config string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the configuration -------------------------------------------------------------------

_RADIUSD = """\
# Generated by benchmarks/freeradius.py for one benchmark run.
prefix = /usr
confdir = {confdir}
raddbdir = {confdir}
modconfdir = {confdir}/mods-config
logdir = {confdir}
run_dir = {confdir}
db_dir = {confdir}
libdir = /usr/lib/freeradius
pidfile = {confdir}/radiusd.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
proxy_requests = no

log {{
    destination = files
    file = {confdir}/radius.log
    colourise = no
    stripped_names = no
    auth = no
    auth_badpass = no
    auth_goodpass = no
}}

security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}

thread pool {{
    start_servers = {threads}
    max_servers = {threads}
    min_spare_servers = 0
    max_spare_servers = {threads}
    max_requests_per_server = 0
    max_queue_size = 65536
    auto_limit_acct = no
}}

$INCLUDE clients.conf

modules {{
    $INCLUDE mods/
}}

instantiate {{
}}

$INCLUDE sites/
"""

_SITE = """\
server bench {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
        recv_buff = 4194304
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acct_port}
        recv_buff = 4194304
    }}

    authorize {{
        {store}
        pap
    }}

    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}

    preacct {{
        update request {{
            &Acct-Unique-Session-Id := "{unique}"
        }}
    }}

    accounting {{
        {accounting}
    }}

    post-auth {{
        update reply {{
            &Message-Authenticator := 0x00
        }}
    }}
}}
"""

# Acct-Unique-Session-Id: what identifies a session (as the stock acct_unique policy).
_UNIQUE = (
    "%{md5:"
    + ",".join(
        "%{" + a + "}"
        for a in ("User-Name", "Acct-Session-Id", "NAS-IP-Address", "NAS-Identifier", "NAS-Port")
    )
    + "}"
)


def _octets(direction: str) -> str:
    """64-bit octets: Acct-{direction}-Gigawords << 32 + Acct-{direction}-Octets."""
    return (
        f"(('%{{%{{Acct-{direction}-Gigawords}}:-0}}'::bigint << 32) + "
        f"'%{{%{{Acct-{direction}-Octets}}:-0}}'::bigint)"
    )


# rlm_sql's queries, written for the schema below. %{...} is expanded (and escaped) by
# FreeRADIUS; ${...} are references to other config items.
_SQL = """\
sql {{
    driver = "rlm_sql_postgresql"
    dialect = "postgresql"
    radius_db = {conninfo}
    postgresql {{
        send_application_name = yes
    }}

    authcheck_table = "radcheck"
    authreply_table = "radreply"
    groupcheck_table = "radgroupcheck"
    groupreply_table = "radgroupreply"
    usergroup_table = "radusergroup"
    acct_table1 = "radacct"
    acct_table2 = "radacct"
    postauth_table = "radpostauth"
    read_groups = no
    read_profiles = no
    delete_stale_sessions = no

    pool {{
        start = {threads}
        min = {threads}
        max = {threads}
        spare = 0
        uses = 0
        retry_delay = 1
        lifetime = 0
        idle_timeout = 0
    }}

    sql_user_name = "%{{User-Name}}"
    event_time = "TO_TIMESTAMP(%{{%{{integer:Event-Timestamp}}:-%l}})"
    in_octets = "{in_octets}"
    out_octets = "{out_octets}"
    session_time = "NULLIF('%{{Acct-Session-Time}}', '')::bigint"
    framed_ip = "NULLIF('%{{Framed-IP-Address}}', '')::inet"

    authorize_check_query = "SELECT id, username, attribute, value, op FROM radcheck \\
        WHERE username = '%{{SQL-User-Name}}' ORDER BY id"
    authorize_reply_query = "SELECT id, username, attribute, value, op FROM radreply \\
        WHERE username = '%{{SQL-User-Name}}' ORDER BY id"

    accounting {{
        reference = "%{{tolower:type.%{{Acct-Status-Type}}.query}}"
        columns = "acctsessionid, acctuniqueid, username, nasipaddress, nasportid, \\
            nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, \\
            acctauthentic, acctinputoctets, acctoutputoctets, calledstationid, \\
            callingstationid, acctterminatecause, servicetype, framedprotocol, framedipaddress"
        values = "'%{{Acct-Session-Id}}', '%{{Acct-Unique-Session-Id}}', '%{{SQL-User-Name}}', \\
            '%{{NAS-IP-Address}}', NULLIF('%{{%{{NAS-Port-Id}}:-%{{NAS-Port}}}}', ''), \\
            '%{{NAS-Port-Type}}'"
        type {{
            start {{
                query = "INSERT INTO radacct (${{...columns}}) VALUES (${{...values}}, \\
                    ${{....event_time}}, ${{....event_time}}, NULL, 0, '%{{Acct-Authentic}}', \\
                    0, 0, '%{{Called-Station-Id}}', '%{{Calling-Station-Id}}', NULL, \\
                    '%{{Service-Type}}', '%{{Framed-Protocol}}', ${{....framed_ip}}) \\
                    ON CONFLICT (acctuniqueid) DO UPDATE SET \\
                    acctstarttime = ${{....event_time}}, acctupdatetime = ${{....event_time}} \\
                    WHERE radacct.acctstoptime IS NULL"
            }}
            interim-update {{
                query = "UPDATE radacct SET framedipaddress = ${{....framed_ip}}, \\
                    acctsessiontime = ${{....session_time}}, \\
                    acctinterval = (%{{%{{integer:Event-Timestamp}}:-%l}} - \\
                        EXTRACT(EPOCH FROM COALESCE(acctupdatetime, acctstarttime))), \\
                    acctupdatetime = ${{....event_time}}, \\
                    acctinputoctets = ${{....in_octets}}, acctoutputoctets = ${{....out_octets}} \\
                    WHERE acctuniqueid = '%{{Acct-Unique-Session-Id}}' AND acctstoptime IS NULL"
                query = "INSERT INTO radacct (${{...columns}}) VALUES (${{...values}}, \\
                    ${{....event_time}}, ${{....event_time}}, NULL, ${{....session_time}}, \\
                    '%{{Acct-Authentic}}', ${{....in_octets}}, ${{....out_octets}}, \\
                    '%{{Called-Station-Id}}', '%{{Calling-Station-Id}}', NULL, \\
                    '%{{Service-Type}}', '%{{Framed-Protocol}}', ${{....framed_ip}}) \\
                    ON CONFLICT (acctuniqueid) DO NOTHING"
            }}
            stop {{
                query = "UPDATE radacct SET acctstoptime = ${{....event_time}}, \\
                    acctupdatetime = ${{....event_time}}, \\
                    acctsessiontime = ${{....session_time}}, \\
                    acctinputoctets = ${{....in_octets}}, acctoutputoctets = ${{....out_octets}}, \\
                    acctterminatecause = '%{{Acct-Terminate-Cause}}', \\
                    framedipaddress = ${{....framed_ip}} \\
                    WHERE acctuniqueid = '%{{Acct-Unique-Session-Id}}' AND acctstoptime IS NULL"
                query = "INSERT INTO radacct (${{...columns}}) VALUES (${{...values}}, \\
                    TO_TIMESTAMP(%{{%{{integer:Event-Timestamp}}:-%l}} - \\
                        %{{%{{Acct-Session-Time}}:-0}}), \\
                    ${{....event_time}}, ${{....event_time}}, ${{....session_time}}, \\
                    '%{{Acct-Authentic}}', ${{....in_octets}}, ${{....out_octets}}, \\
                    '%{{Called-Station-Id}}', '%{{Calling-Station-Id}}', \\
                    '%{{Acct-Terminate-Cause}}', '%{{Service-Type}}', '%{{Framed-Protocol}}', \\
                    ${{....framed_ip}}) \\
                    ON CONFLICT (acctuniqueid) DO NOTHING"
            }}
        }}
    }}
}}
"""

# The standard FreeRADIUS PostgreSQL tables this benchmark uses (names, columns and
# indexes as documented for FreeRADIUS 3.2), written out here.
SCHEMA = """
CREATE TABLE radcheck (
    id serial PRIMARY KEY,
    username text NOT NULL DEFAULT '',
    attribute text NOT NULL DEFAULT '',
    op varchar(2) NOT NULL DEFAULT '==',
    value text NOT NULL DEFAULT ''
);
CREATE INDEX radcheck_username ON radcheck (username, attribute);

CREATE TABLE radreply (
    id serial PRIMARY KEY,
    username text NOT NULL DEFAULT '',
    attribute text NOT NULL DEFAULT '',
    op varchar(2) NOT NULL DEFAULT '=',
    value text NOT NULL DEFAULT ''
);
CREATE INDEX radreply_username ON radreply (username, attribute);

CREATE TABLE radacct (
    radacctid bigserial PRIMARY KEY,
    acctsessionid text NOT NULL,
    acctuniqueid text NOT NULL UNIQUE,
    username text,
    realm text,
    nasipaddress inet NOT NULL,
    nasportid text,
    nasporttype text,
    acctstarttime timestamp with time zone,
    acctupdatetime timestamp with time zone,
    acctstoptime timestamp with time zone,
    acctinterval bigint,
    acctsessiontime bigint,
    acctauthentic text,
    connectinfo_start text,
    connectinfo_stop text,
    acctinputoctets bigint,
    acctoutputoctets bigint,
    calledstationid text,
    callingstationid text,
    acctterminatecause text,
    servicetype text,
    framedprotocol text,
    framedipaddress inet,
    framedipv6address inet,
    framedipv6prefix inet,
    framedinterfaceid text,
    delegatedipv6prefix inet,
    class text
);
CREATE INDEX radacct_active_session_idx ON radacct (acctuniqueid) WHERE acctstoptime IS NULL;
CREATE INDEX radacct_bulk_close ON radacct (nasipaddress, acctstarttime)
    WHERE acctstoptime IS NULL;
CREATE INDEX radacct_start_user_idx ON radacct (acctstarttime, username);
CREATE INDEX radacct_calss_idx ON radacct (class);
"""


def _users_file(users: int, user_format: str, password_format: str) -> str:
    reply = ",\n".join(f"\t{name} = {value}" for name, value in REPLY)
    out = []
    for i in range(users):
        name, pw = user_format.format(i), password_format.format(i)
        out.append(f"{_q(name)} Cleartext-Password := {_q(pw)}\n{reply}\n")
    return "\n".join(out)


def conninfo(dsn: str, database: str) -> str:
    """A libpq keyword conninfo for ``database`` on the server of a postgresql:// ``dsn``
    (e.g. the embedded server's Unix socket directory as host)."""
    parts = urlsplit(dsn)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    fields = {
        "host": query.get("host") or unquote(parts.hostname or "") or None,
        "port": query.get("port") or (str(parts.port) if parts.port else None),
        "user": unquote(parts.username) if parts.username else query.get("user"),
        "password": unquote(parts.password) if parts.password else query.get("password"),
        "dbname": database,
    }

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in fields.items() if v)


def database_dsn(dsn: str, database: str) -> str:
    """``dsn`` with its database replaced."""
    parts = urlsplit(dsn)
    return parts._replace(path="/" + database).geturl()


async def prepare_database(
    dsn: str, users: int, user_format: str, password_format: str, database: str = DATABASE
) -> str:
    """Create ``database`` (dropped first if it exists) with the FreeRADIUS tables and the
    subscribers in radcheck/radreply; return its postgresql:// DSN."""
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    target = database_dsn(dsn, database)
    conn = await asyncpg.connect(target)
    try:
        await conn.execute(SCHEMA)
        names = [user_format.format(i) for i in range(users)]
        await conn.copy_records_to_table(
            "radcheck",
            records=[
                (n, "Cleartext-Password", ":=", password_format.format(i))
                for i, n in enumerate(names)
            ],
            columns=["username", "attribute", "op", "value"],
        )
        await conn.copy_records_to_table(
            "radreply",
            records=[(n, a, "=", v.strip('"')) for n in names for a, v in REPLY],
            columns=["username", "attribute", "op", "value"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return target


def write_config(
    confdir: Path,
    mode: Mode,
    secret: str,
    auth_port: int,
    acct_port: int,
    users: int,
    user_format: str,
    password_format: str,
    radius_conninfo: str | None,
    threads: int = THREADS,
) -> None:
    (confdir / "mods").mkdir(parents=True)
    (confdir / "sites").mkdir()
    (confdir / "radiusd.conf").write_text(_RADIUSD.format(confdir=confdir, threads=threads))
    (confdir / "dictionary").write_text(f"$INCLUDE {DICTIONARY}\n")
    (confdir / "clients.conf").write_text(
        "client bench {\n"
        "    ipaddr = 127.0.0.1\n"
        f"    secret = {_q(secret)}\n"
        "    require_message_authenticator = yes\n"
        "    nas_type = other\n"
        "}\n"
    )
    store = "files" if mode == "files" else "sql"
    (confdir / "sites" / "bench").write_text(
        _SITE.format(
            auth_port=auth_port,
            acct_port=acct_port,
            store=store,
            accounting="sql" if mode == "sql" else "ok",
            unique=_UNIQUE,
        )
    )
    mods = confdir / "mods"
    (mods / "pap").write_text("pap {\n    normalise = yes\n}\n")
    (mods / "always").write_text("always ok {\n    rcode = ok\n}\n")
    (mods / "expr").write_text("expr {\n}\n")  # the %{md5:...} expansion
    if mode == "files":
        (confdir / "users").write_text(_users_file(users, user_format, password_format))
        (mods / "files").write_text(f"files {{\n    filename = {confdir}/users\n}}\n")
    else:
        if radius_conninfo is None:
            raise ValueError("sql mode needs a database")
        (mods / "sql").write_text(
            _SQL.format(
                conninfo=_q(radius_conninfo),
                threads=threads,
                in_octets=_octets("Input"),
                out_octets=_octets("Output"),
            )
        )


# --- the process -------------------------------------------------------------------------


def _bound(port: int) -> bool:
    want = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == want for line in lines)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def check_auth(
    port: int,
    secret: str,
    user_format: str,
    password_format: str,
    index: int = 0,
    timeout: float = 2.0,
) -> int:
    """One PAP Access-Request (Message-Authenticator included) for subscriber ``index``;
    the reply's code (Response Authenticator checked), or 0 on no answer."""
    builder = Builder(secret.encode(), index + 1, user_format, password_format, "127.0.0.1")
    auth = os.urandom(16)
    pkt = builder.build(index, 7, auth)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.send(pkt)
        try:
            reply = sock.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return 0
    expect = hashlib.md5(reply[:4] + auth + reply[20:] + secret.encode(), usedforsecurity=False)
    if len(reply) < 20 or reply[1] != 7 or expect.digest() != reply[4:20]:
        raise RuntimeError("FreeRADIUS answered with a bad Response Authenticator")
    return reply[0]


@contextlib.contextmanager
def freeradius_server(
    mode: Mode,
    secret: str,
    users: int = 10_000,
    user_format: str = "user{:05d}",
    password_format: str = "pw-{:05d}",
    dsn: str | None = None,
    threads: int = THREADS,
    workdir: Path | None = None,
    start_timeout: float = 30.0,
) -> Iterator[FreeRadius]:
    """Run FreeRADIUS in ``mode`` until the block ends; yields its ports and pid.

    ``dsn`` (sql mode): a PostgreSQL superuser DSN; the database ``radius_bench`` is
    (re)created on that server. The server is ready when it accepts subscriber 0 (a real
    Access-Request). Raises RuntimeError naming the log file when it does not start."""
    if not available():
        raise RuntimeError(skip_message())
    if mode == "sql":
        if dsn is None:
            raise ValueError("sql mode needs dsn")
        if not has_postgresql_driver():
            raise RuntimeError(
                "rlm_sql_postgresql is missing: apt-get install -y freeradius-postgresql"
            )
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="freeradius-")))
        confdir = workdir / f"raddb-{mode}"
        if confdir.exists():
            shutil.rmtree(confdir)
        auth_port = _free_udp_port(set())
        acct_port = _free_udp_port({auth_port})
        radius_dsn = None
        info = None
        if mode == "sql":
            assert dsn is not None
            radius_dsn = asyncio.run(prepare_database(dsn, users, user_format, password_format))
            info = conninfo(dsn, DATABASE)
        write_config(
            confdir,
            mode,
            secret,
            auth_port,
            acct_port,
            users,
            user_format,
            password_format,
            info,
            threads,
        )
        log = confdir / "radius.log"
        out_path = confdir / "stdout.log"
        proc = launch(confdir, out_path)
        try:
            _wait_ready(
                proc,
                auth_port,
                acct_port,
                secret,
                user_format,
                password_format,
                log,
                out_path,
                start_timeout,
            )
            yield FreeRadius(auth_port, acct_port, proc.pid, confdir, log, mode, radius_dsn)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"FreeRADIUS exited with status {proc.returncode} during the run; "
                    f"see {log}:\n{_tail(log)}"
                )
        finally:
            _stop(proc)


def launch(confdir: Path, out_path: Path, append: bool = False) -> subprocess.Popen[bytes]:
    """``freeradius -f -d CONFDIR`` in its own session, its output to ``out_path``: the one
    way the benchmarks and tests start a FreeRADIUS (files, sql, eap, home server, proxy)."""
    with out_path.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            [str(FREERADIUS), "-f", "-d", str(confdir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(
    proc: subprocess.Popen[bytes],
    auth_port: int,
    acct_port: int,
    secret: str,
    user_format: str,
    password_format: str,
    log: Path,
    out_path: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    code = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"FreeRADIUS did not start (exit status {proc.returncode}); see {log} and "
                f"{out_path}:\n{_tail(out_path)}\n{_tail(log)}"
            )
        if _bound(auth_port) and _bound(acct_port):
            code = check_auth(auth_port, secret, user_format, password_format, timeout=0.5)
            if code == 2:
                return
            if code:
                raise RuntimeError(
                    f"FreeRADIUS answered subscriber 0 with code {code}, not Access-Accept; "
                    f"see {log}:\n{_tail(log)}"
                )
        time.sleep(0.05)
    raise RuntimeError(
        f"FreeRADIUS did not answer on 127.0.0.1:{auth_port} within {timeout:g} s; see {log}:"
        f"\n{_tail(log)}"
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def log_problems(log: Path) -> tuple[int, list[str]]:
    """FreeRADIUS's log after a run: (how many "conflicting packet" lines, the other error
    and warning lines). The first are a benign race of the closed loop: the generator
    reuses an identifier the moment its reply arrives, and FreeRADIUS's main thread can
    read the new request before the worker thread that answered the old one has marked it
    done; it logs the conflict and processes the new request."""
    conflicting = 0
    other = []
    for line in log.read_text(errors="replace").splitlines():
        if "Received conflicting packet" in line:
            conflicting += 1
        elif "Ignoring read_groups as group_membership_query is not configured" in line:
            continue  # 3.2.1 says so even with read_groups = no: the lean setup we want
        elif ": Error:" in line or ": WARNING:" in line or ": Warning:" in line:
            other.append(line)
    return conflicting, other


def log_note(log: Path) -> str:
    """What log_problems() found, for a row's notes ("" when nothing)."""
    conflicting, other = log_problems(log)
    notes = []
    if conflicting:
        notes.append(
            f"{conflicting} 'conflicting packet' log lines over its runs (closed loop: an "
            "id reused as its reply left, before FreeRADIUS marked the request done; the new "
            "request is answered)"
        )
    if other:
        notes.append(f"{len(other)} other error lines in its log, first: {other[0]}")
    return "; ".join(notes)


# --- the accounting ledger ---------------------------------------------------------------


async def radacct_counts(radius_dsn: str, prefix: str, interims: int) -> dict[str, int]:
    """What radacct holds of one run's sessions (Acct-Session-Id ``{prefix}-...``): rows
    (one per session, made by its Start), rows closed by a Stop, the Interim-Updates the
    open rows reflect (AcctSessionTime is 300 s per Interim in the generator's sessions),
    and the records that makes (closed sessions count ``interims`` + 2 records: the
    generator sends a Stop only once the session's Interims are acknowledged)."""
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(radius_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT acctuniqueid) AS distinct_ids, "
            "count(*) FILTER (WHERE acctstoptime IS NOT NULL) AS stopped, "
            "coalesce(sum(acctsessiontime / 300) FILTER (WHERE acctstoptime IS NULL), 0) "
            "AS open_interims "
            "FROM radacct WHERE acctsessionid LIKE $1",
            prefix + "-%",
        )
    finally:
        await conn.close()
    assert row is not None
    out = {k: int(v) for k, v in dict(row).items()}
    out["records"] = out["rows"] + out["open_interims"] + out["stopped"] * (interims + 1)
    return out
