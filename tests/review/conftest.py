"""A throw-away PostgreSQL server for the store tests, when PostgreSQL is installed.

The server lives in a temporary folder, listens on 127.0.0.1 at a free port, trusts local
connections, and is stopped at the end of the session. Without ``initdb``/``pg_ctl`` (or
without the ``psycopg`` driver) the PostgreSQL tests skip with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://...`` of a fresh server (skips when PostgreSQL is absent)."""
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found)")
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use its own system user
        runuser = shutil.which("runuser")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            runuser = None
        if runuser is None:
            pytest.skip("running as root without a 'postgres' user to start PostgreSQL as")
        prefix = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="medlabel-pg-"))
    data = base / "data"
    if prefix:
        shutil.chown(base, "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "medlabel", "--auth=trust"], **run)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-w", "start", "-l", str(base / "log")],
        **run,
    )
    try:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=medlabel dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE medlabel")
        yield f"postgresql+psycopg://medlabel@127.0.0.1:{port}/medlabel"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
