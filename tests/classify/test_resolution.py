"""Inputs smaller than every training image: recorded sizes, and the flag in predict,
evaluate, annotate and the model card."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.classify.bundle import load_bundle, save_bundle
from medlabel.classify.evaluation import evaluate_bundle
from medlabel.classify.predict import predict_paths, write_predictions
from medlabel.classify.resolution import enlarged_beyond_training, size_record
from medlabel.classify.train import TrainConfig, train_classifier
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.preprocess.network import InputSpec, native_size

from .conftest import make_dataset


def test_only_sizes_below_both_the_training_images_and_the_network_are_flagged() -> None:
    record = size_record(np.array([[224, 300], [240, 224]]))
    assert record == {"min": [224, 224], "max": [240, 300]}
    sizes = np.array(
        [
            [224, 224],  # as small as the smallest training image: seen before
            [200, 200],  # smaller than any training image, yet still shrunk to 128
            [100, 400],  # enlarged along the rows only
            [28, 28],
            [1024, 1024],
        ]
    )
    got = enlarged_beyond_training(sizes, record, (128, 128))
    assert got.tolist() == [False, False, True, True, False]
    # a network larger than the training images: every smaller image is enlarged further
    assert enlarged_beyond_training(sizes, record, (512, 512)).tolist() == [
        False,
        True,
        True,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="cannot be compared"):
        enlarged_beyond_training(np.array([[4, 4, 4]]), record, (128, 128))
    with pytest.raises(ValueError, match="N >= 1"):
        size_record(np.zeros((0, 2)))


def test_native_size_is_what_the_network_input_is_resized_from() -> None:
    spec = InputSpec(size=(16, 16))
    assert native_size(MedicalImage(np.zeros((30, 40), np.uint8)), spec) == (30, 40)
    rgb = MedicalImage(np.zeros((30, 40, 3), np.uint8), spacing=(1.0, 1.0))
    assert native_size(rgb, spec) == (30, 40)
    one_slice = MedicalImage(np.zeros((1, 30, 40), np.int16))
    assert native_size(one_slice, spec) == (30, 40)
    volume = MedicalImage(np.zeros((5, 30, 40), np.int16))
    assert native_size(volume, InputSpec(size=(8, 16, 16))) == (5, 30, 40)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained on 32-pixel images shrunk to a 16-pixel network input."""
    cfg = TrainConfig(
        model="compact", size=(16, 16), epochs=3, batch_size=8, model_kwargs={"width": 8}
    )
    trained = train_classifier(make_dataset(n=120, size=32), cfg, progress=False)
    return save_bundle(trained, tmp_path_factory.mktemp("res") / "bundle")


def _blob(size: int, seed: int) -> np.ndarray:
    """One image of the training kind at another size."""
    image = make_dataset(n=2, size=32, seed=seed).loader(0).array
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def test_bundles_record_the_training_sizes_and_predict_flags_smaller_inputs(
    bundle_dir: Path, tmp_path: Path
) -> None:
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta["data"]["native_size"] == {"min": [32, 32], "max": [32, 32]}
    assert (
        "Native size of the training images: 32 x 32 pixels"
        in (bundle_dir / "MODEL_CARD.md").read_text()
    )
    files = []
    for side in (8, 24, 32, 64):
        files.append(tmp_path / f"blob{side}.png")
        write_image(MedicalImage(_blob(side, seed=side)), files[-1])
    bundle = load_bundle(bundle_dir)
    rows = predict_paths(bundle, files, progress=False)
    # 8 px is enlarged to 16; 24 px is smaller than the training images but still shrunk
    assert [r["low_resolution"] for r in rows] == [True, False, False, False]
    write_predictions(rows, tmp_path / "preds.csv")
    header = (tmp_path / "preds.csv").read_text().splitlines()[0].split(",")
    assert "low_resolution" in header

    # a bundle made before sizes were recorded: no flag, no column
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    del meta["data"]["native_size"]
    (old / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(old).training_sizes is None
    assert "low_resolution" not in predict_paths(load_bundle(old), files[:1], progress=False)[0]


def test_an_ensemble_records_the_size_range_over_its_members(tmp_path: Path) -> None:
    cfg = TrainConfig(
        model="compact", size=(16, 16), epochs=1, batch_size=8, model_kwargs={"width": 8}
    )
    trained = train_classifier(make_dataset(n=60, size=32), cfg, progress=False)
    wider = replace(
        trained, data={**trained.data, "native_size": {"min": [40, 24], "max": [64, 48]}}
    )
    saved = save_bundle([trained, wider], tmp_path / "ensemble")
    meta = json.loads((saved / "bundle.json").read_text())
    assert meta["data"]["native_size"] == {"min": [32, 24], "max": [64, 48]}
    # a member whose sizes are unknown leaves the ensemble's unknown: nothing is flagged
    unknown = replace(trained, data={k: v for k, v in trained.data.items() if k != "native_size"})
    saved = save_bundle([trained, unknown], tmp_path / "unknown")
    assert load_bundle(saved).training_sizes is None
    assert load_bundle(saved).low_resolution(np.array([[4, 4]])) is None


def test_evaluation_counts_enlarged_images_and_scores_the_others(
    bundle_dir: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(bundle_dir)
    ds = make_dataset(n=80, size=32, seed=5)
    plain = evaluate_bundle(bundle, ds, out_dir=tmp_path / "plain", progress=False)
    assert plain["low_resolution"] == {"count": 0, "smallest_training_size": [32, 32]}
    assert not any("smaller than every image" in note for note in plain["notes"])

    # half the test images shrunk to 8 pixels (nearest neighbour keeps their content)
    small = set(ds.indices("test").tolist()[::2])
    base = ds.loader

    def load(i: int) -> MedicalImage:
        image = base(i)
        return MedicalImage(image.array[::4, ::4].copy()) if i in small else image

    metrics = evaluate_bundle(
        bundle, replace(ds, loader=load), out_dir=tmp_path / "mixed", progress=False
    )
    flagged = metrics["low_resolution"]
    assert flagged["count"] == len(small)
    assert flagged["others"]["n"] == metrics["n"] - len(small)
    assert any("smaller than every image the model trained on" in n for n in metrics["notes"])
    assert "smaller than every image" in (tmp_path / "mixed" / "report.html").read_text()
    saved = json.loads((tmp_path / "mixed" / "metrics.json").read_text())
    assert saved["low_resolution"]["count"] == len(small)


def test_annotation_notes_low_resolution_without_calling_the_label_meaningless(
    bundle_dir: Path,
) -> None:
    from medlabel.annotate.models import open_model

    model = open_model(bundle_dir)
    results = model.classify([MedicalImage(_blob(8, seed=1)), MedicalImage(_blob(32, seed=1))])
    assert results[0].extra.get("low_resolution") is True
    assert any("low resolution: 8 x 8 pixels" in n for n in results[0].extra["notes"])
    assert "low_resolution" not in results[1].extra
