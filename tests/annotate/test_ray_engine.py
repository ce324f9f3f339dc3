"""The Ray engine (a local Ray with 2 CPUs) gives the same manifest and masks as the local one."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from medlabel.annotate.job import annotate

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
