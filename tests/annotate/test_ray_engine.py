"""The Ray engine (a local Ray with 2 CPUs) gives the same manifest and masks as the local one;
a local Ray listens on 127.0.0.1 only, journals rows block by block and keeps quiet; bad
settings and unreachable clusters are refused at once."""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from medlabel.annotate import ray_engine
from medlabel.annotate.job import annotate
from medlabel.annotate.manifest import Journal
from medlabel.errors import MedlabelError

pytest.importorskip("ray")


def _manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r.pop("seconds")
    return rows


def _masks(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "masks").rglob("*.nii.gz"))
    }


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine_and_resumes(
    mixed_archive: Path, tmp_path: Path
) -> None:
    models = ["ct-lungs", "cxr-pneumonia"]
    local = annotate(mixed_archive, tmp_path / "local", models=models, progress=False)
    ray = annotate(
        mixed_archive,
        tmp_path / "ray",
        models=models,
        engine="ray",
        workers=2,
        batch_size=2,
        progress=False,
    )
    assert (ray.done, ray.failed, ray.skipped) == (local.done, local.failed, local.skipped)
    assert _manifest(tmp_path / "ray") == _manifest(tmp_path / "local")
    assert _masks(tmp_path / "ray") == _masks(tmp_path / "local")
    again = annotate(
        mixed_archive, tmp_path / "ray", models=models, engine="ray", workers=2, progress=False
    )
    assert again.resumed == 3 and _manifest(tmp_path / "ray") == _manifest(tmp_path / "local")


# Runs in a fresh interpreter (as the command line does): annotate a few tiny PNGs on a local
# Ray with a progress bar that, at each update, notes the journal's length and, at the first,
# the listening sockets of this process and its descendants (the Ray servers and workers).
_PROBE = r"""
import json, os, socket, sys
from pathlib import Path

from medlabel.annotate import job


def descendants(root):
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parent[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening():
    inodes = {}
    for pid in descendants(os.getpid()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    out = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            comm = Path(f"/proc/{inodes[fields[9]]}/comm").read_text().strip()
            out.append([comm, socket.inet_ntop(family, raw)])
    return out


class Probe:
    updates, journal, sockets = [], [], None

    def __init__(self, *args, **kwargs):
        pass

    def update(self, n):
        if Probe.sockets is None:
            Probe.sockets = listening()
        Probe.updates.append(n)
        path = Path(sys.argv[2]) / ".medlabel" / "journal.jsonl"
        Probe.journal.append(len(path.read_text().splitlines()) if path.exists() else 0)

    def close(self):
        pass


job.tqdm = Probe
job.annotate(sys.argv[1], sys.argv[2], models=["ct-lungs"], engine="ray", workers=1)
print(json.dumps({"updates": Probe.updates, "journal": Probe.journal, "sockets": Probe.sockets}))
"""


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A local Ray run over 9 tiny PNGs (one worker): what the probe saw, and the stderr."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("the sockets are read from /proc (Linux)")
    import numpy as np
    import SimpleITK as sitk

    root = tmp_path_factory.mktemp("probe")
    archive = root / "pngs"
    archive.mkdir()
    for i in range(9):
        image = np.full((8, 8), 10 * i, dtype=np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(image), str(archive / f"x{i}.png"))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(archive), str(root / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only(probed_run: dict[str, Any]) -> None:
    """The GCS, the raylet, the workers, the driver and the runtime-env agent of a local Ray
    bind to 127.0.0.1, not to every interface (nor the machine's external address)."""
    sockets = probed_run["sockets"]
    names = {name for name, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the probe saw Ray's servers
    outside = [
        (name, ip)
        for name, ip in sockets
        if not (ipaddress.ip_address(ip).is_loopback or ip.startswith("::ffff:127."))
    ]
    assert outside == []


@pytest.mark.slow
def test_rows_reach_the_journal_block_by_block(probed_run: dict[str, Any]) -> None:
    """9 items on one worker: small blocks, each journaled (and counted) as it finishes, not
    one block of 9 whose rows would all be lost to an interruption."""
    updates, journal = probed_run["updates"], probed_run["journal"]
    assert sum(updates) == 9 and len(updates) >= 3 and max(updates) <= ray_engine.BLOCK_ITEMS
    # one row per item (one model): at each update the journal holds the blocks so far
    assert journal == list(itertools.accumulate(updates))


@pytest.mark.slow
def test_a_ray_run_keeps_rays_chatter_off_the_screen(probed_run: dict[str, Any]) -> None:
    """No token banner, no "Progress bars disabled", no dataset start and finish lines."""
    err = probed_run["stderr"]
    for chatter in ("Token authentication is enabled", "Progress bars disabled", "Dataset"):
        assert chatter not in err, err


def test_block_items() -> None:
    """At most BLOCK_ITEMS and the batch size; every worker gets a block."""
    assert ray_engine.block_items(25, 16, 2) == ray_engine.BLOCK_ITEMS
    assert ray_engine.block_items(3, 16, 2) == 2
    assert ray_engine.block_items(100, 2, 8) == 2
    assert ray_engine.block_items(1, 16, 4) == 1


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nonsense", "is not host:port, ray://host:port or auto"),
        ("10.0.0.5:", "is not host:port"),
        ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "cannot reach a Ray cluster at ray://127.0.0.1:1"),
    ],
)
def test_an_unreachable_ray_address_is_refused_at_once(address: str, reason: str) -> None:
    """Ray retries such addresses for minutes (or raises ValueError); medlabel says why."""
    start = time.perf_counter()
    with pytest.raises(MedlabelError, match=re.escape(reason)):
        ray_engine.check_address(address)
    assert time.perf_counter() - start < 15


def test_run_ray_refuses_fewer_than_one_worker_or_item_per_batch(tmp_path: Path) -> None:
    """A batch size of 0 divided by zero; 0 workers ran nothing."""
    for batch_size, workers in ((0, 2), (16, 0), (-1, 2), (16, -3)):
        with pytest.raises(MedlabelError, match="must be at least 1"):
            ray_engine.run_ray(
                [], Journal(tmp_path), [], ("nifti",), False, batch_size, workers, None, None, None
            )
