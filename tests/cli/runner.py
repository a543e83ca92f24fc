"""``netd ARGS`` in this process: ``daemons.cli.main(argv)`` with the environment, stdin,
stdout and stderr of a real run, much faster than a subprocess (no interpreter start, no
imports). Tests that prove the real entry point run ``python -m daemons.cli`` instead."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from daemons import cli


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if not k.startswith("NETD_")})
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(env: Mapping[str, str], *argv: str, stdin: str = "", tty: bool = False) -> Result:
    """Run ``netd *argv``; its exit status and what it wrote. ``tty``: stdout is a terminal."""
    out: io.StringIO = _Tty() if tty else io.StringIO()
    err = io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        with _environment(env):
            try:
                status = cli.main(list(argv))
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(status, out.getvalue(), err.getvalue())


def one_line_error(result: Result) -> bool:
    """What every refused command gives: exit 1 or 2 and exactly one line on stderr."""
    return (
        result.status in (1, 2)
        and result.err.count("\n") == 1
        and result.err.endswith("\n")
        and "Traceback" not in result.err
    )


def argv_of(args: Sequence[str]) -> str:
    return "netd " + " ".join(args)
