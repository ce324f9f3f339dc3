"""Tests of medlabel.evaluate.report: files, metrics.json keys, embedded images, escaping."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.evaluate import EvaluationError, classification_metrics, write_classification_report

REQUIRED = {
    "accuracy",
    "balanced_accuracy",
    "auc",
    "f1_macro",
    "ece",
    "confusion_matrix",
    "confusion_matrix_normalized",
    "n",
    "task",
    "threshold",
    "per_class",
    "medmnist",
    "ci",
}
NAMES = ["normal", "<b>", "tumour & cyst"]


def _data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _thumbnail(case_id: str) -> np.ndarray | None:
    index = int(case_id.split("-")[1])
    if index % 3 == 0:
        return None
    if index % 3 == 1:
        return np.full((300, 200), 128, np.uint8)  # downscaled to 128 px
    return np.zeros((28, 28, 3), np.uint8)


def _images(page: str) -> list[Image.Image]:
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


def test_report_files_keys_images_and_escaping(tmp_path: Path) -> None:
    y, probs = _data()
    metrics = classification_metrics(y, probs, NAMES, n_bootstrap=100)
    ids = [f"case-{i}" for i in range(len(y))]
    page_path = write_classification_report(
        tmp_path / "out",
        metrics=metrics,
        y_true=y,
        probs=probs,
        class_names=NAMES,
        ids=ids,
        thumbnails=_thumbnail,
        title="Evaluation <script>",
        model_info={"model": "tiny <cnn>", "epochs": 3, "tags": ["a", "b"]},
        n_hardest=6,
    )
    assert page_path == tmp_path / "out" / "report.html"
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(saved) >= REQUIRED
    assert saved == json.loads(json.dumps(metrics))
    assert not list((tmp_path / "out").glob(".*tmp*"))  # no atomic leftovers

    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "tumour &amp; cyst" in page and "tiny &lt;cnn&gt;" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    pictures = _images(page)
    # 2 confusion matrices + ROC + PR + reliability, plus thumbnails of the hardest cases.
    figures = [p for p in pictures if max(p.size) > 200]
    thumbs = [p for p in pictures if max(p.size) <= 128]
    assert len(figures) == 5
    assert 1 <= len(thumbs) <= 6
    assert all(max(p.size) <= 128 for p in thumbs)
    assert "Hardest examples" in page and "MedMNIST" in page and "95% CI" in page

    # The hardest case is the one with the lowest probability on its true class.
    hardest = int(np.argmin(probs[np.arange(len(y)), y]))
    rows = page.split("Hardest examples", 1)[1].split("<tr>")
    assert f"<td>case-{hardest}</td>" in rows[2]  # rows[1] is the header


def test_report_binary_and_multilabel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    p = np.clip(0.3 * y + 0.7 * rng.random(40), 0, 1)
    m = classification_metrics(y, p, ["neg", "pos"], threshold=0.4, n_bootstrap=20)
    write_classification_report(
        tmp_path / "bin",
        metrics=m,
        y_true=y,
        probs=p,
        class_names=["neg", "pos"],
        ids=[str(i) for i in range(40)],
        title="binary",
    )
    assert "decision threshold: 0.400" in (tmp_path / "bin" / "report.html").read_text()

    ym = (rng.random((40, 3)) < 0.5).astype(int)
    pm = rng.random((40, 3))
    mm = classification_metrics(ym, pm, list("xyz"), n_bootstrap=20)
    write_classification_report(
        tmp_path / "ml",
        metrics=mm,
        y_true=ym,
        probs=pm,
        class_names=list("xyz"),
        ids=[str(i) for i in range(40)],
        title="multilabel",
        n_hardest=3,
    )
    page = (tmp_path / "ml" / "report.html").read_text()
    assert "worst label" in page
    assert len(_images(page)) == 5


def test_failing_thumbnail_does_not_break_the_report(tmp_path: Path) -> None:
    y, probs = _data(12)
    metrics = classification_metrics(y, probs, NAMES, n_bootstrap=0)

    def broken(case_id: str) -> np.ndarray:
        raise OSError(f"cannot read {case_id}")

    write_classification_report(
        tmp_path,
        metrics=metrics,
        y_true=y,
        probs=probs,
        class_names=NAMES,
        ids=[f"case-{i}" for i in range(12)],
        thumbnails=broken,
        title="t",
    )
    assert len(_images((tmp_path / "report.html").read_text())) == 5


def test_report_input_errors(tmp_path: Path) -> None:
    y, probs = _data(10)
    metrics = classification_metrics(y, probs, NAMES, n_bootstrap=0)
    common: dict[str, object] = {"y_true": y, "probs": probs, "class_names": NAMES, "title": "t"}
    with pytest.raises(EvaluationError, match="ids"):
        write_classification_report(tmp_path, metrics=metrics, ids=["a"], **common)
    incomplete = {k: v for k, v in metrics.items() if k != "ci"}
    with pytest.raises(EvaluationError, match="ci"):
        write_classification_report(
            tmp_path,
            metrics=incomplete,
            ids=[str(i) for i in range(10)],
            **common,
        )
    other = classification_metrics(y[:5], probs[:5], NAMES, n_bootstrap=0)
    with pytest.raises(EvaluationError, match="cases"):
        write_classification_report(
            tmp_path,
            metrics=other,
            ids=[str(i) for i in range(10)],
            **common,
        )
    assert not (tmp_path / "report.html").exists()
