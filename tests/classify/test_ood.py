"""The out-of-distribution check: fitting, flagging, storage, and its use by bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medlabel.classify.augment import Augment
from medlabel.classify.bundle import add_ood_check, load_bundle, save_bundle
from medlabel.classify.ood import OODCheck
from medlabel.classify.predict import predict_paths
from medlabel.classify.train import TrainConfig, train_classifier
from medlabel.data.arrays import load_arrays
from medlabel.image import MedicalImage
from medlabel.io import write_image

from .conftest import make_dataset


def test_check_flags_far_points_at_the_validation_quantile(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, val = rng.normal(size=(2000, 16)), rng.normal(size=(1000, 16))
    check = OODCheck.fit(train, val, quantile=0.99)
    fresh = rng.normal(size=(5000, 16))
    assert 0.003 < check.flags(fresh).mean() < 0.03  # about 1 % of new in-distribution data
    assert check.flags(fresh + 3.0).mean() > 0.99  # a shifted population is flagged
    check.save(tmp_path / "ood.npz")
    again = OODCheck.load(tmp_path / "ood.npz")
    np.testing.assert_allclose(again.distance(fresh[:5]), check.distance(fresh[:5]), rtol=1e-5)
    assert again.threshold == check.threshold and again.quantile == 0.99
    with pytest.raises(ValueError, match="one width"):
        OODCheck.fit(train, val[:, :3])
    with pytest.raises(ValueError, match="at least 10"):
        OODCheck.fit(train[:5], val)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TrainConfig(
        model="compact",
        size=(16, 16),
        epochs=4,
        batch_size=8,
        model_kwargs={"width": 8},
        augment=Augment(rotate_deg=5, scale=0.05),
    )
    trained = train_classifier(make_dataset(n=200), cfg, progress=False)
    assert trained.ood is not None
    return save_bundle(trained, tmp_path_factory.mktemp("ood") / "bundle")


def test_bundles_flag_noise_but_not_their_own_kind_on_both_engines(bundle_dir: Path) -> None:
    ds = make_dataset(n=200, seed=1)  # new images of the same kind
    images = load_arrays(ds, ds.indices("train")[:60], load_bundle(bundle_dir).spec).images
    noise = (np.random.default_rng(0).random(images.shape) * 255).astype(np.uint8)
    results = {}
    for engine in ("onnx", "torch"):
        bundle = load_bundle(bundle_dir, engine=engine)
        probs, dist = bundle.predict_with_ood(images)
        _, noise_dist = bundle.predict_with_ood(noise)
        assert dist is not None and noise_dist is not None
        np.testing.assert_allclose(probs, bundle.predict_arrays(images), atol=1e-6)
        threshold = bundle.ood_check.threshold  # type: ignore[union-attr]
        assert (dist > threshold).mean() < 0.1 and (noise_dist > threshold).all()
        results[engine] = dist
    np.testing.assert_allclose(results["onnx"], results["torch"], rtol=1e-3)


def test_predict_reports_the_flag_and_old_bundles_get_a_check(
    bundle_dir: Path, tmp_path: Path
) -> None:
    noise = (np.random.default_rng(1).random((40, 40)) * 255).astype(np.uint8)
    write_image(MedicalImage(noise), tmp_path / "noise.png")
    rows = predict_paths(load_bundle(bundle_dir), [tmp_path / "noise.png"], progress=False)
    assert rows[0]["ood"] is True and rows[0]["ood_distance"] > 0
    # a bundle saved before the check existed: fit it afterwards from its training data
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    (old / "ood.npz").unlink()
    meta = json.loads((old / "bundle.json").read_text())
    meta["ood"] = None
    (old / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(old).ood_check is None
    assert load_bundle(old).predict_with_ood(np.zeros((1, 1, 16, 16), np.uint8))[1] is None
    check = add_ood_check(old, make_dataset(n=200))
    reloaded = load_bundle(old)
    assert reloaded.ood_check is not None and reloaded.ood_check.threshold == check.threshold
    assert "Out-of-distribution check" in (old / "MODEL_CARD.md").read_text()


def test_evaluation_counts_flagged_images_and_scores_the_rest(
    bundle_dir: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from medlabel.classify.evaluation import evaluate_bundle

    bundle = load_bundle(bundle_dir)
    same_kind = make_dataset(n=80, seed=2)
    plain = evaluate_bundle(bundle, same_kind, out_dir=tmp_path / "same", progress=False)
    assert plain["out_of_distribution"]["excess"] is False
    assert not any("training distribution" in note for note in plain["notes"])

    # half the test images replaced by noise: flagged, and the rest scored on their own
    rng = np.random.default_rng(3)
    test = set(same_kind.indices("test").tolist()[::2])
    noise = {i: (rng.random((16, 16)) * 255).astype(np.uint8) for i in test}
    base = same_kind.loader
    mixed = replace(same_kind, loader=lambda i: MedicalImage(noise[i]) if i in noise else base(i))
    metrics = evaluate_bundle(bundle, mixed, out_dir=tmp_path / "mixed", progress=False)
    ood = metrics["out_of_distribution"]
    assert ood["excess"] is True and ood["flagged"] >= len(noise)
    assert ood["inside"]["n"] == metrics["n"] - ood["flagged"]
    assert ood["inside"]["accuracy"] > 0.9
    assert any("outside the model's training distribution" in n for n in metrics["notes"])
    assert "training distribution" in (tmp_path / "mixed" / "report.html").read_text()
