"""Fixtures of the review tests: a live review server on 127.0.0.1, and a throw-away
PostgreSQL server for the store tests when PostgreSQL is installed.

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
import threading
import time
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


@pytest.fixture
def live_job(mixed_archive: Path, tmp_path: Path) -> Iterator[tuple[str, object, Path]]:
    """A review server on a free 127.0.0.1 port for a job over ``mixed_archive`` (models
    ct-lungs and cxr-pneumonia), with user ana (reviewer); yields (url, store, job folder)."""
    import uvicorn

    from medlabel.annotate.job import annotate
    from medlabel.review.server import create_app

    job = tmp_path / "job"
    annotate(mixed_archive, job, models=["ct-lungs", "cxr-pneumonia"], progress=False)
    app = create_app(job)
    app.state.store.add_user("ana", "reviewer", "long enough pw")
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    port = srv.config.port
    yield f"http://127.0.0.1:{port}", app.state.store, job
    srv.should_exit = True
    thread.join(timeout=10)
