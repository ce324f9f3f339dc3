"""Active-learning strategies and ``medlabel next`` on a real job folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.review.active import k_center, rank


def test_strategies_rank_as_documented() -> None:
    rows = [
        {"item": "a", "uncertainty": 0.1, "margin": 0.9},
        {"item": "b", "uncertainty": 0.8, "margin": 0.05},
        {"item": "c", "uncertainty": 0.5, "margin": 0.4},
        {"item": "d", "uncertainty": None, "margin": None},
    ]
    assert [r["item"] for r in rank(rows, "uncertainty", 4)] == ["b", "c", "a", "d"]
    assert [r["item"] for r in rank(rows, "margin", 2)] == ["b", "c"]
    segmentations = [  # no margin: after the classifications, most uncertain first
        {"item": "s1", "uncertainty": 0.2, "margin": None},
        {"item": "s2", "uncertainty": 0.7, "margin": None},
    ]
    ranked = [r["item"] for r in rank(segmentations + rows, "margin", 6)]
    assert ranked == ["b", "c", "a", "s2", "s1", "d"]
    # out-of-distribution results lead under margin too (their margin means nothing)
    flagged = [
        {"item": "x", "uncertainty": 1.0, "margin": 0.7, "ood": True},
        {"item": "y", "uncertainty": 1.0, "margin": None, "ood": True},
    ]
    ranked = [r["item"] for r in rank(rows + segmentations + flagged, "margin", 4)]
    assert ranked == ["x", "y", "b", "c"]
    first = [r["item"] for r in rank(rows, "random", 4, seed=1)]
    assert sorted(first) == ["a", "b", "c", "d"]
    assert first == [r["item"] for r in rank(rows, "random", 4, seed=1)]  # seeded


def test_diversity_covers_different_looking_items() -> None:
    # three near-identical dark images (the most uncertain) and one bright one
    looks = {"a": 0.10, "b": 0.11, "c": 0.12, "d": 0.90}
    rows = [
        {"item": k, "uncertainty": u} for k, u in zip("abcd", (0.9, 0.8, 0.7, 0.1), strict=True)
    ]
    by_uncertainty = [r["item"] for r in rank(rows, "uncertainty", 2)]
    diverse = [
        r["item"]
        for r in rank(rows, "diversity", 2, features=lambda r: np.full(4, looks[r["item"]]))
    ]
    assert by_uncertainty == ["a", "b"] and diverse == ["a", "d"]
    assert k_center(np.zeros((3, 2)), 2) == [0, 1]  # identical items: still n of them


def test_cli_next_on_a_job_folder(mixed_archive: Path, tmp_path: Path) -> None:
    from medlabel.annotate.job import annotate

    out = tmp_path / "out"
    annotate(mixed_archive, out, models=["ct-lungs", "cxr-pneumonia"], progress=False)
    runner = CliRunner()
    result = runner.invoke(app, ["next", str(out), "--n", "2", "--model", "cxr-pneumonia"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "png/photo.png" in lines[0]  # the only CR-like 2D item
    bad = runner.invoke(app, ["next", str(out), "--strategy", "psychic"])
    assert bad.exit_code == 1 and "strategy" in bad.output
