"""A real PostgreSQL server for the tests (Debian's postgresql, started as the postgres user in a temp
directory, on loopback, one fresh database per test). Skipped where PostgreSQL is not installed."""

from __future__ import annotations

import atexit
import glob
import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.e2e.peers import free_port, wait_for

_server: tuple[Path, int] | None = None
_numbers = itertools.count(1)


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def available() -> bool:
    return bin_dir() is not None and shutil.which("runuser") is not None


def _run_as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)


def server() -> int:
    """Start the test server once (stopped when the tests end); its port."""
    global _server
    if _server is None:
        binaries = bin_dir()
        assert binaries is not None
        directory = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        shutil.chown(directory, "postgres")
        port = free_port()
        _run_as_postgres(str(binaries / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "monitor")
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run_as_postgres(str(binaries / "pg_ctl"), "-D", str(directory / "data"), "-o", options,
                         "-l", str(directory / "log"), "start")  # fmt: skip
        _server = (directory, port)
        atexit.register(_stop, binaries, directory)
        wait_for(lambda: _connects(port), 30, what="postgresql ready")
    return _server[1]


def _connects(port: int) -> bool:
    try:
        psycopg.connect(f"host=127.0.0.1 port={port} user=monitor dbname=postgres").close()
        return True
    except psycopg.OperationalError:
        return False


def _stop(binaries: Path, directory: Path) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", str(binaries / "pg_ctl"), "-D", str(directory / "data"),
                    "stop", "-m", "fast"], capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(directory, ignore_errors=True)


def fresh_database() -> str:
    """A new, empty database on the test server; its DSN."""
    port = server()
    name = f"monitor_test_{next(_numbers)}"
    with psycopg.connect(f"host=127.0.0.1 port={port} user=monitor dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    return f"host=127.0.0.1 port={port} user=monitor dbname={name}"
