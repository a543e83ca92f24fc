"""The ACS file store on a real PostgreSQL and disk, served over a real uvicorn server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from daemons.acs.files import (
    CONFIG,
    FIRMWARE,
    FileError,
    FileStore,
    RangeNotSatisfiable,
    parse_range,
    serve,
)
from daemons.core.http import HttpServer
from tests.support import free_port

GOOD = "Basic " + base64.b64encode(b"cpe:s3cret").decode()
CHALLENGE = [(b"www-authenticate", b'Basic realm="netd-acs"')]


class FilesApp:
    """The smallest ASGI app around serve(): CPE Basic auth, the rest 404."""

    def __init__(self, store: FileStore, pool: asyncpg.Pool) -> None:
        self.store = store
        self.pool = pool
        self.statuses: list[int] = []

    def check_auth(self, scope: dict[str, Any]) -> bool:
        return (b"authorization", GOOD.encode()) in scope["headers"]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = await serve(
            self.store, self.pool, scope, receive, send, self.check_auth, lambda: CHALLENGE
        )
        self.statuses.append(status)


@dataclass
class Files:
    store: FileStore
    pool: asyncpg.Pool
    root: Path
    app: FilesApp
    http: httpx.AsyncClient
    base: str

    def blobs(self) -> set[str]:
        return {p.name for p in self.root.iterdir()}


@pytest.fixture
async def files(migrated: str, tmp_path: Path) -> AsyncIterator[Files]:
    pool = await asyncpg.create_pool(migrated, min_size=1, max_size=4)
    root = tmp_path / "files"
    store = FileStore(root, max_size=8 * 1024 * 1024)
    app = FilesApp(store, pool)
    port = free_port()
    server = HttpServer(app, "127.0.0.1", port, 2.0)
    await server.start()
    base = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=base, headers={"authorization": GOOD}, timeout=30)
    try:
        yield Files(store, pool, root, app, client, base)
    finally:
        await client.aclose()
        await server.stop()
        await pool.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(
    data: bytes, sizes: tuple[int, ...] = (1, 1000, 65536, 300_000)
) -> AsyncIterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos, i = pos + n, i + 1
        await asyncio.sleep(0)


# --- the store ---


async def test_put_get_list_replace_delete(files: Files) -> None:
    store, pool = files.store, files.pool
    fw = os.urandom(10_000)
    info = await store.put(
        pool, "fw-1.2.bin", fw, file_type=FIRMWARE, oui="00D09E", version="1.2", created_by="t"
    )
    assert (info.name, info.size, info.sha256, info.version) == (
        "fw-1.2.bin",
        10_000,
        sha(fw),
        "1.2",
    )
    assert info.etag == f'"{sha(fw)}"'
    assert await store.get(pool, "fw-1.2.bin") == info
    assert await store.get(pool, "nope") is None
    assert await store.get(pool, "../etc/passwd") is None
    assert (files.root / sha(fw)).read_bytes() == fw
    assert info.as_dict()["sha256"] == sha(fw)

    cfg = b"<config/>"
    await store.put(pool, "a.xml", cfg, file_type=CONFIG)
    await store.put(pool, "copy.bin", fw, file_type=FIRMWARE)  # same content: one blob
    assert files.blobs() == {sha(fw), sha(cfg)}
    assert [f.name for f in await store.list(pool)] == ["a.xml", "copy.bin", "fw-1.2.bin"]
    assert [f.name for f in await store.list(pool, after="a.xml", limit=1)] == ["copy.bin"]
    assert await store.list(pool, after="fw-1.2.bin") == []

    new = os.urandom(5000)
    replaced = await store.put(pool, "fw-1.2.bin", chunks(new), file_type=FIRMWARE, version="1.3")
    assert (replaced.size, replaced.sha256, replaced.version, replaced.oui) == (
        5000,
        sha(new),
        "1.3",
        "",
    )
    assert replaced.created_at >= info.created_at
    assert files.blobs() == {sha(fw), sha(cfg), sha(new)}  # fw still named by copy.bin

    assert await store.delete(pool, "copy.bin")
    assert files.blobs() == {sha(cfg), sha(new)}  # nobody names fw any more
    assert not await store.delete(pool, "copy.bin")
    assert not await store.delete(pool, "../x")
    await store.put(pool, "fw-1.2.bin", cfg, file_type=CONFIG)  # the old content goes
    assert files.blobs() == {sha(cfg)}
    assert await store.delete(pool, "fw-1.2.bin")
    assert await store.delete(pool, "a.xml")
    assert files.blobs() == set()


async def test_put_refuses_bad_input_and_leaves_nothing(files: Files) -> None:
    store, pool = files.store, files.pool
    for name in ("", ".", "..", ".hidden", "-x", "a/b", "../x", "a b", "é", "x" * 129):
        with pytest.raises(FileError, match="name"):
            await store.put(pool, name, b"x", file_type=FIRMWARE)
    for file_type in ("", "Firmware", "1", "1 ", "X 00d09e vendor", "1 " + "x" * 63, "1 a\nb"):
        with pytest.raises(FileError, match="file_type"):
            await store.put(pool, "ok", b"x", file_type=file_type)
    with pytest.raises(FileError, match="version"):
        await store.put(pool, "ok", b"x", file_type=FIRMWARE, version="1\n2")
    with pytest.raises(FileError, match="over"):
        await store.put(pool, "big", b"\0" * (8 * 1024 * 1024 + 1), file_type=FIRMWARE)
    with pytest.raises(FileError, match="over"):
        await store.put(pool, "big", chunks(b"\0" * (9 * 1024 * 1024)), file_type=FIRMWARE)

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionError("upload cut")

    with pytest.raises(ConnectionError):
        await store.put(pool, "cut", broken(), file_type=FIRMWARE)
    assert await store.list(pool) == []
    assert not files.root.exists() or files.blobs() == set()  # no temp file left
    # the table refuses what the store refuses
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO cpe_files (name, file_type, size, sha256) VALUES ('..', $1, 0, $2)",
            FIRMWARE,
            "0" * 64,
        )
    vendor = await store.put(pool, "v.bin", b"v", file_type="X 00D09E Vendor Blob")
    assert vendor.file_type == "X 00D09E Vendor Blob"


async def test_find_prefers_the_device_specific_file(files: Files) -> None:
    store, pool = files.store, files.pool
    await store.put(pool, "any.bin", b"a", file_type=FIRMWARE, version="2.0")
    await store.put(pool, "oui.bin", b"b", file_type=FIRMWARE, version="2.0", oui="00D09E")
    await store.put(
        pool, "exact.bin", b"c", file_type=FIRMWARE, version="2.0", oui="00D09E", product_class="EX"
    )
    await store.put(pool, "cfg", b"d", file_type=CONFIG, version="2.0", oui="00D09E")

    async def name(**kw: str) -> str | None:
        found = await store.find(pool, "2.0", **kw)
        return found.name if found else None

    assert await name(oui="00D09E", product_class="EX") == "exact.bin"
    assert await name(oui="00D09E", product_class="OTHER") == "oui.bin"
    assert await name(oui="AAAAAA", product_class="EX") == "any.bin"
    assert await name(oui="00D09E", file_type=CONFIG) == "cfg"
    assert await store.find(pool, "9.9") is None


async def test_concurrent_replaces_leave_one_consistent_file(files: Files) -> None:
    store, pool = files.store, files.pool
    bodies = [os.urandom(300_000 + i) for i in range(6)]
    await asyncio.gather(*(store.put(pool, "race.bin", b, file_type=FIRMWARE) for b in bodies))
    info = await store.get(pool, "race.bin")
    assert info is not None and info.sha256 in {sha(b) for b in bodies}
    assert files.blobs() == {info.sha256}
    got = await files.http.get("/files/race.bin")
    assert sha(got.content) == info.sha256


async def test_sweep_removes_orphans_and_stale_temp_files(files: Files) -> None:
    store, pool = files.store, files.pool
    await store.put(pool, "keep.bin", b"keep", file_type=FIRMWARE)
    orphan = files.root / sha(b"orphan")
    orphan.write_bytes(b"orphan")
    stale, fresh = files.root / ".tmp-stale", files.root / ".tmp-fresh"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert await store.sweep(pool) == 2
    assert files.blobs() == {sha(b"keep"), ".tmp-fresh"}


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=90-1000", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("Bytes = 5 - 6", 100) == (5, 6)
    for ignored in ("items=0-1", "bytes=0-1,5-6", "bytes=5-4", "bytes=-", "bytes=a-b", "0-1"):
        assert parse_range(ignored, 100) is None, ignored
    for unsatisfiable in ("bytes=100-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(unsatisfiable, 100)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)


# --- over HTTP ---


async def test_get_head_and_conditionals(files: Files) -> None:
    data = os.urandom(1000)
    info = await files.store.put(files.pool, "fw.bin", data, file_type=FIRMWARE)
    r = await files.http.get("/files/fw.bin")
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == f'"{sha(data)}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == "1000"
    assert r.headers["content-type"] == "application/octet-stream"
    last_modified = r.headers["last-modified"]
    assert last_modified.endswith(" GMT")

    h = await files.http.head("/files/fw.bin")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == "1000" and h.headers["etag"] == info.etag

    for inm in (info.etag, f"W/{info.etag}", f'"other", {info.etag}', "*"):
        r = await files.http.get("/files/fw.bin", headers={"if-none-match": inm})
        assert r.status_code == 304 and r.content == b"", inm
        assert r.headers["etag"] == info.etag
    r = await files.http.get("/files/fw.bin", headers={"if-none-match": '"other"'})
    assert r.status_code == 200 and r.content == data
    r = await files.http.get("/files/fw.bin", headers={"if-modified-since": last_modified})
    assert r.status_code == 304
    r = await files.http.get(
        "/files/fw.bin", headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert r.status_code == 200
    r = await files.http.get("/files/fw.bin", headers={"if-match": '"other"'})
    assert r.status_code == 412
    r = await files.http.get("/files/fw.bin", headers={"if-match": info.etag})
    assert r.status_code == 200

    r = await files.http.post("/files/fw.bin", content=b"x")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


async def test_ranges(files: Files) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    info = await files.store.put(files.pool, "r.bin", data, file_type=FIRMWARE)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=1000-": (1000, 1023),
        "bytes=-24": (1000, 1023),
        "bytes=500-5000": (500, 1023),
        "bytes=-5000": (0, 1023),
        "bytes=7-7": (7, 7),
    }
    for value, (first, last) in cases.items():
        r = await files.http.get("/files/r.bin", headers={"range": value})
        assert r.status_code == 206, value
        assert r.content == data[first : last + 1], value
        assert r.headers["content-range"] == f"bytes {first}-{last}/1024", value
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["etag"] == info.etag

    for value in ("bytes=1024-", "bytes=2000-3000", "bytes=-0"):
        r = await files.http.get("/files/r.bin", headers={"range": value})
        assert r.status_code == 416, value
        assert r.headers["content-range"] == "bytes */1024"
        assert r.content == b""

    for value in ("bytes=0-1,5-6", "bytes=9-3", "lines=1-2"):  # ignored: the whole file
        r = await files.http.get("/files/r.bin", headers={"range": value})
        assert r.status_code == 200 and r.content == data, value
    r = await files.http.get("/files/r.bin", headers={"range": "bytes=0-9", "if-range": info.etag})
    assert r.status_code == 206 and r.content == data[:10]
    r = await files.http.get("/files/r.bin", headers={"range": "bytes=0-9", "if-range": '"old"'})
    assert r.status_code == 200 and r.content == data
    r = await files.http.head("/files/r.bin", headers={"range": "bytes=0-9"})
    assert r.status_code == 200 and r.headers["content-length"] == "1024"

    await files.store.put(files.pool, "empty", b"", file_type=CONFIG)
    r = await files.http.get("/files/empty")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    r = await files.http.get("/files/empty", headers={"range": "bytes=0-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */0"


async def test_auth_is_required(files: Files) -> None:
    await files.store.put(files.pool, "fw.bin", b"secret firmware", file_type=FIRMWARE)
    async with httpx.AsyncClient(base_url=files.base) as anon:
        for path in ("/files/fw.bin", "/files/unknown", "/files/..%2Fetc%2Fpasswd"):
            r = await anon.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == 'Basic realm="netd-acs"'
            assert r.content == b""
        r = await anon.get("/files/fw.bin", auth=("cpe", "wrong"))
        assert r.status_code == 401
        r = await anon.get("/files/fw.bin", auth=("cpe", "s3cret"))
        assert r.status_code == 200 and r.content == b"secret firmware"


async def test_unknown_and_traversal_are_not_found(files: Files, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside the store")
    info = await files.store.put(files.pool, "fw.bin", b"inside", file_type=FIRMWARE)
    for path in (
        "/files/unknown.bin",
        "/files/..%2Fsecret",
        "/files/..%2F..%2Fsecret",
        "/files/..%2Fetc%2Fpasswd",
        "/files/%2Fetc%2Fpasswd",
        "/files/.",
        "/files/",
        "/files/fw.bin/",
        "/files/sub/fw.bin",
        "/files/fw.bin%00",
        f"/files/{info.sha256}",  # a blob on disk, but not a name
        "/other/fw.bin",
    ):
        r = await files.http.get(path)
        assert r.status_code == 404, path
        assert r.content == b""
    assert (await files.http.get("/files/fw.bin")).content == b"inside"


async def test_large_file_streams_intact(files: Files) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)
    info = await files.store.put(files.pool, "big.img", chunks(data), file_type=FIRMWARE)
    assert (info.size, info.sha256) == (len(data), sha(data))
    digest, size = hashlib.sha256(), 0
    async with files.http.stream("GET", "/files/big.img") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        async for part in r.aiter_raw():
            digest.update(part)
            size += len(part)
    assert (size, digest.hexdigest()) == (len(data), sha(data))
    # a range across several read chunks
    first, last = 100_000, 3 * 1024 * 1024 + 7
    r = await files.http.get("/files/big.img", headers={"range": f"bytes={first}-{last}"})
    assert r.status_code == 206 and r.content == data[first : last + 1]


async def test_client_going_away_mid_download(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(6 * 1024 * 1024)  # 24 reads of 256 KiB
    await files.store.put(files.pool, "big.img", data, file_type=FIRMWARE)
    reads: list[int] = []
    pread = os.pread

    def counted(fd: int, n: int, pos: int) -> bytes:
        reads.append(n)
        return pread(fd, n, pos)

    monkeypatch.setattr("daemons.acs.fileserve.os.pread", counted)
    for _ in range(3):
        async with (
            httpx.AsyncClient(base_url=files.base, headers={"authorization": GOOD}) as c,
            c.stream("GET", "/files/big.img") as r,
        ):
            assert r.status_code == 200
            async for _part in r.aiter_raw():
                break  # hang up after the first bytes
    await asyncio.sleep(0.3)
    assert len(reads) < 3 * 24 / 2, "the server kept reading for a client that left"
    r = await files.http.get("/files/big.img")
    assert r.status_code == 200 and r.content == data


async def test_store_unavailable_is_503(files: Files, migrated: str) -> None:
    dead = await asyncpg.create_pool(migrated, min_size=0, max_size=1)
    await dead.close()
    files.app.pool = dead
    r = await files.http.get("/files/fw.bin")
    assert r.status_code == 503 and r.headers["retry-after"] == "30"
