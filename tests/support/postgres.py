"""A real, throwaway PostgreSQL server for tests (Debian's ``postgresql`` package).

``initdb`` in a temporary directory, ``postgres`` listening on 127.0.0.1 only (a free port, its unix
socket inside the temporary directory), one database created, a URL handed out, the server stopped and
the directory removed afterwards. PostgreSQL refuses to run as root: as root the binaries run as the
``postgres`` system user (``runuser``), which owns the temporary directory.

When the binaries are missing and we are root, the package is installed with apt-get once (what
``infra/install_postgres.sh`` does); otherwise :class:`PostgresUnavailable` says why, and tests skip.

Usage::

    with running_postgres() as pg:     # raises PostgresUnavailable with a reason
        engine = create_engine(pg.url)  # postgresql+psycopg://newswire@127.0.0.1:PORT/newswire
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "infra" / "install_postgres.sh"
DB_USER = "newswire"
DB_NAME = "newswire"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message is the reason (for pytest.skip)."""


@dataclass(frozen=True)
class RunningPostgres:
    url: str  # postgresql://newswire@127.0.0.1:PORT/newswire
    port: int
    data_dir: Path
    socket_dir: Path


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin dir (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def ensure_installed() -> Path:
    """The bin dir; installs the package with apt-get when missing and we are root."""
    bin_dir = find_bin_dir()
    if bin_dir is not None:
        return bin_dir
    if os.geteuid() != 0:
        raise PostgresUnavailable("PostgreSQL is not installed and we are not root to apt-get install postgresql")
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PostgresUnavailable(f"installing postgresql failed: {tail[0]}")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str]) -> list[str]:
    """PostgreSQL will not run as root: run it as the ``postgres`` system user then."""
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server as") from None
    return ["runuser", "-u", "postgres", "--", *args]


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PostgresUnavailable(f"{what} failed: {tail[0]}")


@contextmanager
def running_postgres() -> Iterator[RunningPostgres]:
    bin_dir = ensure_installed()
    base = Path(tempfile.mkdtemp(prefix="newswire-pg-"))
    data_dir, socket_dir = base / "data", base / "sock"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (base, socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            "initdb",
        )
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
        )
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(base / "server.log"),
             "-w", "-t", "60", "start"],
            "starting postgres",
        )
        started = True
        _run([str(bin_dir / "createdb"), "-h", str(socket_dir), "-p", str(port), "-U", DB_USER, DB_NAME],
             "createdb")
        _wait_tcp(port)
        yield RunningPostgres(f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}", port, data_dir, socket_dir)
    finally:
        if started:
            subprocess.run(
                _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


def _wait_tcp(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"postgres does not accept connections on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def create_database(pg: RunningPostgres, name: str) -> str:
    """Another database on the same server (one per test); returns its URL."""
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    _run([str(bin_dir / "createdb"), "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", DB_USER, name],
         f"createdb {name}")
    return pg.url.rsplit("/", 1)[0] + f"/{name}"
