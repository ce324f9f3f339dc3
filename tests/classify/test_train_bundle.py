"""Training, bundles (ONNX and torch agree), ensembles, classic models, bad bundles."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medlabel.classify.augment import Augment
from medlabel.classify.bundle import BundleError, load_bundle, save_bundle, save_classic_bundle
from medlabel.classify.classic import train_classic
from medlabel.classify.ensemble import calibrate_ensemble
from medlabel.classify.evaluation import evaluate_bundle
from medlabel.classify.train import TrainConfig, fit_calibration, train_classifier
from medlabel.data.arrays import load_arrays
from medlabel.data.dataset import DatasetError
from medlabel.data.sources import from_csv, from_folder
from medlabel.image import MedicalImage

from .conftest import blob_images, make_dataset


def quick_config(**kw) -> TrainConfig:
    base = dict(
        model="compact",
        size=(16, 16),
        epochs=6,
        batch_size=8,
        lr=3e-3,
        patience=10,
        model_kwargs={"width": 8},
        augment=Augment(rotate_deg=5, scale=0.05),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained():
    return train_classifier(make_dataset(), quick_config(), progress=False)


def test_training_learns_and_records_history(trained):
    assert trained.val_metrics["auc"] > 0.95
    assert len(trained.history) >= 1 and "val_auc" in trained.history[0]
    assert trained.temperature > 0 and 0 <= trained.threshold <= 1
    assert trained.data["counts"]["val"]  # a validation split was carved out of train


def test_bundle_onnx_and_torch_agree(trained, tmp_path):
    path = save_bundle(trained, tmp_path / "model", licence="CC0", command="test")
    meta = json.loads((path / "bundle.json").read_text())
    for key in (
        "task",
        "class_names",
        "input",
        "temperature",
        "threshold",
        "members",
        "train_config",
    ):
        assert key in meta
    assert (path / "MODEL_CARD.md").read_text().count("CC0") >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders
    ds = make_dataset()
    arrays = load_arrays(ds, ds.indices("test"), trained.spec, progress=False)
    onnx = load_bundle(path).predict_arrays(arrays.images)
    torch_ = load_bundle(path, engine="torch").predict_arrays(arrays.images)
    np.testing.assert_allclose(onnx, torch_, atol=1e-4)
    np.testing.assert_allclose(onnx.sum(1), 1.0, atol=1e-5)
    assert (load_bundle(path).decide(onnx) == arrays.labels).mean() > 0.9


def test_half_precision_bundle_is_half_the_size_and_predicts_the_same(trained, tmp_path):
    full = save_bundle(trained, tmp_path / "full")
    half = save_bundle(trained, tmp_path / "half", half=True)
    for name in ("member-0.pt", "member-0.onnx"):
        ratio = (half / name).stat().st_size / (full / name).stat().st_size
        assert 0.4 < ratio < 0.6, (name, ratio)
    ds = make_dataset()
    x = load_arrays(ds, ds.indices("test"), trained.spec, progress=False).images
    reference = load_bundle(full).predict_arrays(x)
    for engine in ("onnx", "torch"):
        probs = load_bundle(half, engine=engine).predict_arrays(x)
        np.testing.assert_allclose(probs, reference, atol=5e-3)
    np.testing.assert_allclose(
        load_bundle(half, engine="onnx").predict_arrays(x),
        load_bundle(half, engine="torch").predict_arrays(x),
        atol=1e-4,
    )


def test_per_image_normalisation_exports_identically(tmp_path):
    out = train_classifier(
        make_dataset(), quick_config(epochs=1, normalize="image"), progress=False
    )
    path = save_bundle(out, tmp_path / "img-norm")
    assert sorted(p.name for p in path.iterdir()) == [
        "MODEL_CARD.md",
        "bundle.json",
        "member-0.onnx",
        "member-0.pt",
    ]
    x = np.random.default_rng(1).integers(0, 255, (5, 1, 16, 16)).astype(np.uint8)
    a = load_bundle(path).predict_arrays(x)
    b = load_bundle(path, engine="torch").predict_arrays(x)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # per-image normalisation: a global brightness/contrast change does not change the answer
    brighter = np.clip(x.astype(np.float32) * 0.5 + 40, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(load_bundle(path).predict_arrays(brighter), a, atol=0.02)


def test_bundle_accepts_any_image_size_and_type(trained, tmp_path):
    bundle = load_bundle(save_bundle(trained, tmp_path / "m"))
    big = np.zeros((64, 64), np.uint16)
    big[:32, :32] = 4000  # class 0: top-left bright
    probs = bundle.predict_images([MedicalImage(big)])
    assert probs.shape == (1, 2) and probs[0, 0] > 0.5


def test_deep_features(trained, tmp_path):
    bundle = load_bundle(save_bundle(trained, tmp_path / "m"))
    feats = bundle.embed(np.zeros((3, 1, 16, 16), np.uint8))
    assert feats.shape == (3, 64)  # compact width 8: 8 * 8 channels before the head


def test_ensemble_bundle(trained, tmp_path):
    other = train_classifier(make_dataset(), quick_config(seed=1), progress=False)
    temperature, threshold = calibrate_ensemble([trained, other])
    path = save_bundle(
        [trained, other], tmp_path / "ens", temperature=temperature, threshold=threshold
    )
    bundle = load_bundle(path)
    assert len(bundle.meta["members"]) == 2
    x = np.random.default_rng(0).integers(0, 255, (4, 1, 16, 16)).astype(np.uint8)
    single = [
        load_bundle(save_bundle(m, tmp_path / f"m{i}")) for i, m in enumerate((trained, other))
    ]
    mean = (single[0].logits(x) + single[1].logits(x)) / 2
    np.testing.assert_allclose(bundle.logits(x), mean, atol=1e-4)


def test_evaluate_writes_metrics_and_report(trained, tmp_path):
    bundle = load_bundle(save_bundle(trained, tmp_path / "m"))
    metrics = evaluate_bundle(
        bundle, make_dataset(), split="test", out_dir=tmp_path / "ev", progress=False
    )
    assert metrics["n"] == 12 and metrics["accuracy"] > 0.8
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["threshold"] == pytest.approx(bundle.threshold)
    assert "<img" in (tmp_path / "ev" / "report.html").read_text()


def test_evaluate_matches_classes_by_name_in_any_order_and_case(trained, tmp_path):
    bundle = load_bundle(save_bundle(trained, tmp_path / "m"))
    data = make_dataset()
    named = evaluate_bundle(bundle, data, split="test", out_dir=tmp_path / "a", progress=False)
    # the same images, their classes listed the other way round and in capitals
    swapped = replace(data, class_names=["C1", "C0"], labels=1 - data.labels)
    again = evaluate_bundle(bundle, swapped, split="test", out_dir=tmp_path / "b", progress=False)
    assert again["confusion_matrix"] == named["confusion_matrix"]
    assert again["auc"] == pytest.approx(named["auc"])
    with pytest.raises(DatasetError, match="differ from the model's"):
        evaluate_bundle(
            bundle,
            replace(data, class_names=["c0", "other"]),
            split="test",
            out_dir=tmp_path / "c",
            progress=False,
        )
    assert not (tmp_path / "c").exists()


def test_multiclass_multilabel_and_3d_train():
    ds3 = make_dataset(n=48, k=3)
    out = train_classifier(ds3, quick_config(epochs=2), progress=False)
    assert out.task == "multiclass" and out.threshold is None
    multi = make_dataset(n=40)
    multi.labels = np.stack([multi.labels, 1 - multi.labels], axis=1)
    multi.task = "multilabel"
    out = train_classifier(multi, quick_config(epochs=2), progress=False)
    assert out.task == "multilabel" and out.temperature == 1.0
    vols = [np.full((8, 8, 8), 40 + 150 * (i % 2), np.uint8) for i in range(24)]
    from medlabel.data.dataset import ClassificationDataset

    ds_3d = ClassificationDataset(
        "vols",
        ["a", "b"],
        [str(i) for i in range(24)],
        np.arange(24) % 2,
        np.array(["train"] * 24),
        loader=lambda i: MedicalImage(vols[i], spacing=(1, 1, 1)),
    )
    out = train_classifier(
        ds_3d, quick_config(size=(8, 8, 8), epochs=2, batch_size=4), progress=False
    )
    assert out.spec.dims == 3


def test_unreadable_training_image_is_skipped_and_reported():
    ds = make_dataset()
    good = ds.loader

    def loader(i):
        if i == 3:
            raise OSError("disk says no")
        return good(i)

    ds.loader = loader
    out = train_classifier(ds, quick_config(epochs=1), progress=False)
    assert any(sample == "img3" and "disk says no" in why for sample, why in out.failures)


def test_classic_bundle(tmp_path):
    model = train_classic(make_dataset(n=64), estimator="logistic", size=(16, 16), progress=False)
    assert model.val_metrics["auc"] > 0.9
    bundle = load_bundle(save_classic_bundle(model, tmp_path / "classic"))
    assert bundle.kind == "sklearn"
    x = np.stack([np.full((1, 16, 16), 20, np.uint8)] * 2)
    assert bundle.predict_arrays(x).shape == (2, 2)
    # classic bundles record their training images' sizes too (16 px images, 16 px input)
    assert bundle.training_sizes == {"min": [16, 16], "max": [16, 16]}
    assert bundle.low_resolution(np.array([[8, 8], [16, 16]])).tolist() == [True, False]


def test_classic_refuses_a_class_with_one_image_before_training():
    ds = make_dataset(n=25, k=3)
    ds.labels = np.array([0, 1] * 12 + [2])
    ds.class_names = ["c0", "c1", "OTHER"]
    ds.splits[:] = "train"
    ds.loader = lambda i: pytest.fail("an image was read")
    message = "class 'OTHER' has 1 image: each class needs at least 2"
    with pytest.raises(DatasetError, match=message):
        train_classic(ds, estimator="logistic", size=(16, 16), progress=False)
    # two images: one validates, the other is all cross-validation could train on
    ds.labels[-2] = 2
    with pytest.raises(DatasetError, match="'OTHER' has 1 training image once validation"):
        train_classic(ds, estimator="logistic", size=(16, 16), progress=False)


def test_every_class_is_validated_and_bundle_json_is_strict_json(tmp_path):
    ds = make_dataset(n=24, k=3)
    ds.labels = np.array([0, 1] * 11 + [2, 2])  # a class of 2 images
    ds.splits[:] = "train"
    out = train_classifier(ds, quick_config(epochs=1), progress=False)
    assert out.data["counts"]["val"]["c2"] == 1 and out.val_metrics["auc"] is not None
    bundle = save_bundle(out, tmp_path / "b")
    text = (bundle / "bundle.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in bundle.json"))
    # the source's own validation split lacks a class: refused, naming the class and split
    own = make_dataset(n=24)
    own.splits = np.array(["train"] * 20 + ["val"] * 4, dtype=object)
    own.labels = np.array([0, 1] * 10 + [0] * 4)
    with pytest.raises(DatasetError, match=r"class 'c1' has 10 training image.* none in the 'val'"):
        train_classifier(own, quick_config(epochs=1), progress=False)


def test_skipped_files_are_recorded_in_the_bundle_and_its_card(tmp_path):
    ds = make_dataset()
    ds.skipped = [("notes.txt", "not an image file medlabel reads")]
    good = ds.loader
    ds.loader = lambda i: (_ for _ in ()).throw(OSError("disk says no")) if i == 3 else good(i)
    out = train_classifier(ds, quick_config(epochs=1), progress=False)
    assert out.data["skipped"] == 2
    assert {"path": "img3", "reason": "OSError: disk says no"} in out.data["skipped_files"]
    assert out.data["train_used"] + out.data["val_used"] == 35  # 36 found, one unreadable
    bundle = save_bundle(out, tmp_path / "b")
    assert json.loads((bundle / "bundle.json").read_text())["data"]["skipped"] == 2
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Skipped files" in card and "`img3`: OSError: disk says no" in card
    assert "`notes.txt`" in card


def test_bad_bundles(trained, tmp_path):
    with pytest.raises(BundleError, match=r"no bundle\.json"):
        load_bundle(tmp_path)
    path = save_bundle(trained, tmp_path / "m")
    meta = json.loads((path / "bundle.json").read_text())
    meta["format_version"] = 99
    meta["medlabel_version"] = "9.0"
    future = tmp_path / "future"
    shutil.copytree(path, future)
    (future / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"format 99 \(made by medlabel 9\.0\)"):
        load_bundle(future)
    (path / "member-0.onnx").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(path)


def test_weight_averaging_keeps_the_averaged_weights():
    ds = make_dataset()
    plain = train_classifier(ds, quick_config(epochs=3), progress=False)
    averaged = train_classifier(ds, quick_config(epochs=3, ema=0.9), progress=False)
    assert averaged.config.ema == 0.9 and TrainConfig.from_dict(averaged.config.to_dict()).ema
    # same seed, same steps: only the averaging differs, so the kept weights differ
    a, b = plain.net.state_dict(), averaged.net.state_dict()
    assert a.keys() == b.keys() and any(not np.allclose(a[k], b[k]) for k in a)
    assert averaged.val_metrics["auc"] > 0.9
    with pytest.raises(ValueError, match="ema must be in"):
        train_classifier(ds, quick_config(epochs=1, ema=1.5), progress=False)


def test_bf16_training_keeps_float32_weights_and_learns():
    ds = make_dataset()
    trained = train_classifier(ds, quick_config(epochs=3, bf16=True), progress=False)
    assert trained.config.bf16 and TrainConfig.from_dict(trained.config.to_dict()).bf16
    assert all(p.dtype == torch.float32 for p in trained.net.parameters())
    assert trained.val_metrics["auc"] > 0.9


def test_mixup_blends_batches_and_still_learns():
    ds = make_dataset()
    plain = train_classifier(ds, quick_config(epochs=3), progress=False)
    mixed = train_classifier(ds, quick_config(epochs=3, mixup=0.4), progress=False)
    assert TrainConfig.from_dict(mixed.config.to_dict()).mixup == 0.4
    # same seed and steps: only the blending differs, so the training losses differ
    assert [h["train_loss"] for h in plain.history] != [h["train_loss"] for h in mixed.history]
    assert mixed.val_metrics["auc"] > 0.9
    with pytest.raises(ValueError, match="mixup must be >= 0"):
        train_classifier(ds, quick_config(epochs=1, mixup=-0.1), progress=False)


def test_fine_tuning_starts_from_the_bundle(trained, tmp_path):
    first = save_bundle(trained, tmp_path / "v1", licence="CC0", command="test")
    start = load_bundle(first, engine="torch").torch_member(0)
    # the run's own network, size and normalisation differ; the bundle's win, and a
    # vanishing rate leaves its weights in place
    still = quick_config(
        model_kwargs={"width": 4}, size=(20, 20), normalize="image", epochs=1, lr=1e-12, seed=5
    )
    swapped = make_dataset()
    swapped = swapped.with_classes(["c1", "c0"])  # the same images, classes in another order
    tuned = train_classifier(swapped, replace(still, init_from=str(first)), progress=False)
    cfg = tuned.config
    assert (cfg.model_kwargs, cfg.size, cfg.normalize) == ({"width": 8}, (16, 16), "dataset")
    assert (tuned.mean, tuned.std) == (start.mean, start.std)
    assert tuned.class_names == ["c0", "c1"]  # the bundle's order, labels mapped onto it
    assert cfg.learning_rate() == pytest.approx(1e-13) and cfg.init_from == str(first)
    weights = dict(start.net.named_parameters())
    for name, value in tuned.net.named_parameters():
        torch.testing.assert_close(value, weights[name], rtol=1e-6, atol=1e-6)
    assert tuned.val_metrics["auc"] > 0.95  # still the trained model, on remapped labels
    card = (save_bundle(tuned, tmp_path / "v2") / "MODEL_CARD.md").read_text()
    assert f"Fine-tuned from: {first}" in card

    other = make_dataset(k=3)  # a class the bundle does not know
    with pytest.raises(DatasetError, match=r"classes \['c2'\] are not shared"):
        train_classifier(other, replace(still, init_from=str(first)), progress=False)
    model = train_classic(make_dataset(), estimator="logistic", size=(16, 16), progress=False)
    classic = save_classic_bundle(model, tmp_path / "classic")
    with pytest.raises(BundleError, match="starts from a CNN bundle"):
        train_classifier(make_dataset(), replace(still, init_from=str(classic)), progress=False)


def test_fine_tuning_validates_on_samples_new_to_the_bundle(trained, tmp_path):
    first = save_bundle(trained, tmp_path / "v1")
    recorded = json.loads((first / "bundle.json").read_text())["data"]
    seen = set(recorded["train_ids"])
    assert seen == set(trained.data["train_ids"]) and len(seen) == trained.data["train_used"]
    assert not seen & set(trained.data["val_ids"])
    grown = make_dataset(n=96)  # the same ids and more: a review round's cumulative export
    cfg = quick_config(epochs=1)
    plain = grown.with_validation_split(cfg.val_fraction, seed=cfg.split_seed)
    assert {grown.ids[i] for i in plain.indices("val")} & seen  # what fine-tuning must avoid
    tuned = train_classifier(grown, replace(cfg, init_from=str(first)), progress=False)
    assert tuned.data["val_ids"] and not set(tuned.data["val_ids"]) & seen
    assert seen <= set(tuned.data["train_ids"])


def test_fine_tuning_an_ensemble_starts_each_member_from_its_own(trained, tmp_path):
    other = train_classifier(make_dataset(), quick_config(seed=1, epochs=2), progress=False)
    pair = load_bundle(save_bundle([trained, other], tmp_path / "pair"), engine="torch")
    still = quick_config(epochs=1, lr=1e-12, init_from=str(pair.path))
    for k in (1, 2):  # member 2 of a pair is member 0 again
        tuned = train_classifier(make_dataset(), replace(still, init_member=k), progress=False)
        expected = dict(pair.torch_member(k % 2).net.named_parameters())
        for name, value in tuned.net.named_parameters():
            torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-6)


def test_calibration_is_fitted_only_where_validation_can_carry_it():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    sign = labels * 2.0 - 1
    logits = np.stack([-sign + rng.normal(0, 1, 60), sign + rng.normal(0, 1, 60)], 1)
    t, threshold, note = fit_calibration(logits, labels, "binary")
    assert note is None and t != 1.0 and 0 < threshold < 1
    t, threshold, note = fit_calibration(logits[:10], labels[:10], "binary")
    assert (t, threshold) == (1.0, 0.5) and note.startswith("not calibrated: 10 validation")
    one_class = fit_calibration(logits[labels == 1], labels[labels == 1], "binary")
    assert one_class[2] and "5 of each class" in one_class[2]
    separable = np.stack([-50 * sign, 50 * sign], 1)  # the fit runs to its bound
    t, threshold, note = fit_calibration(separable, labels, "binary", fallback=(0.7, 0.6))
    assert (t, threshold) == (0.7, 0.6) and "search bound" in note and "starting bundle" in note


def test_fine_tuning_keeps_the_start_calibration_and_knows_its_training_images(trained, tmp_path):
    first = save_bundle(trained, tmp_path / "v1", licence="CC0", command="test")
    start = load_bundle(first)
    few = make_dataset(n=24, seed=3)
    few = replace(few, ids=[f"new{i}" for i in range(24)])  # images the start never saw
    tuned = train_classifier(few, quick_config(epochs=1, init_from=str(first)), progress=False)
    assert tuned.val_metrics["n"] < 30
    assert (tuned.temperature, tuned.threshold) == (start.temperature, start.threshold)
    assert "kept from the starting bundle" in tuned.val_metrics["calibration"]
    assert set(trained.data["train_ids"]) <= set(tuned.data["train_ids"])
    assert tuned.data["init_train_ids"] == len(set(trained.data["train_ids"]))
    # evaluating the tuned bundle on the start's training images says they trained it
    v2 = load_bundle(save_bundle(tuned, tmp_path / "v2"))
    report = evaluate_bundle(v2, make_dataset(), split="train", out_dir=tmp_path / "ev")
    assert report["trained_on"] == len(trained.data["train_ids"])  # every one the start saw


def test_save_refuses_what_is_not_a_classification_bundle(trained, tmp_path):
    keep = tmp_path / "keepdir"
    keep.mkdir()
    (keep / "notes.txt").write_text("important")
    with pytest.raises(BundleError, match=r"no bundle\.json") as err:
        save_bundle(trained, keep)
    assert err.value.path == keep and [p.name for p in keep.iterdir()] == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "important"
    plain = tmp_path / "f.txt"
    plain.write_text("important")
    with pytest.raises(BundleError, match="a file, not a bundle folder"):
        save_bundle(trained, plain)
    assert plain.read_text() == "important"
    seg = tmp_path / "seg"
    seg.mkdir()
    record = '{"format": "medlabel.bundle", "format_version": 1, "kind": "segmentation"}'
    (seg / "bundle.json").write_text(record)
    with pytest.raises(BundleError, match="kind 'segmentation', not cnn/sklearn"):
        save_classic_bundle(None, seg)  # refused before the model is looked at
    assert (seg / "bundle.json").read_text() == record


def test_save_replaces_a_classification_bundle_and_fills_an_empty_folder(trained, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_bundle(save_bundle(trained, empty)).name == "empty"
    (empty / "stale.txt").write_text("left from v1")
    again = load_bundle(save_bundle(trained, empty, name="v2"))  # the retrain flow
    assert again.name == "v2" and not (empty / "stale.txt").exists()


def test_a_bundle_saved_without_a_licence_records_the_data_licence(trained, tmp_path):
    meta = json.loads((save_bundle(trained, tmp_path / "m") / "bundle.json").read_text())
    assert meta["licence"] == "CC0"  # the synthetic source's, as the card says
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "- Licence: CC0" in card
    given = save_bundle(trained, tmp_path / "n", licence="CC BY 4.0")
    assert json.loads((given / "bundle.json").read_text())["licence"] == "CC BY 4.0"


def test_copies_of_training_images_under_other_names_are_recognised(blob_folder, tmp_path):
    # a review export copies the archive's files under new names into other folders
    source = from_folder(blob_folder)
    cnn = train_classifier(source, quick_config(epochs=1), progress=False)
    first = save_bundle(cnn, tmp_path / "v1", licence="CC0", command="test")
    recorded = json.loads((first / "bundle.json").read_text())["data"]
    assert len(recorded["train_digests"]) == recorded["train_used"]
    classic = train_classic(source, estimator="logistic", size=(16, 16), progress=False)
    assert len(classic.data["train_ids"]) == classic.data["train_used"]
    export = tmp_path / "export"
    export.mkdir()
    rows = ["path,label"]
    for k, sample in enumerate(sorted(recorded["train_ids"])):
        copy = export / f"study-{k:03d}.png"  # neither its folder nor its name says what it is
        shutil.copy(blob_folder / sample, copy)
        rows.append(f"{copy.name},{sample.split('/')[0]}")
    for k, img in enumerate(blob_images(np.arange(12) % 2, seed=7)):  # new images
        Image.fromarray(img).save(export / f"new-{k:02d}.png")
        rows.append(f"new-{k:02d}.png,{'normal' if k % 2 == 0 else 'abnormal'}")
    (export / "labels.csv").write_text("\n".join(rows) + "\n")
    exported = from_csv(export / "labels.csv")
    n_copies = len(recorded["train_ids"])
    assert not set(exported.ids) & set(recorded["train_ids"])  # no id gives them away

    tuned = train_classifier(exported, quick_config(epochs=1, init_from=str(first)), progress=False)
    assert tuned.data["val_ids"]
    assert all(Path(sample).name.startswith("new-") for sample in tuned.data["val_ids"])
    assert set(recorded["train_digests"]) <= set(tuned.data["train_digests"])

    for model in (first, save_classic_bundle(classic, tmp_path / "classic")):
        metrics = evaluate_bundle(
            load_bundle(model), exported, split="all", out_dir=tmp_path / "eval", progress=False
        )
        expected = n_copies if model == first else len(classic.data["train_ids"])
        assert metrics["trained_on"] == expected
        assert any("trained this model" in note for note in metrics["notes"])
