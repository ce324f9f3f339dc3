"""Self-configuration, the native-grid round trip, training, bundles and inference."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medlabel.devices import native_bf16
from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage, same_grid
from medlabel.io import read_image
from medlabel.models.files import BundleError, trained_ids
from medlabel.segment.api import Segmenter
from medlabel.segment.bundle import load_segmentation_bundle, save_segmentation_bundle
from medlabel.segment.dataset import open_segmentation_dataset
from medlabel.segment.evaluation import choose_cases
from medlabel.segment.fingerprint import Fingerprint, fingerprint_cases
from medlabel.segment.infer import postprocess, predict_probabilities
from medlabel.segment.plan import Plan, make_plan
from medlabel.segment.preprocessing import to_native, to_network
from medlabel.segment.train import SegTrainConfig, TrainedSegmenter, train_segmenter


def _fp(
    dims: int, spacings: list[tuple[float, ...]], sizes: list[tuple[int, ...]], modality: str | None
) -> Fingerprint:
    return Fingerprint(dims, modality, 0, spacings, sizes, 40.0, 100.0, -900.0, 600.0)


def _assert_engines_agree(onnx_probs: np.ndarray, torch_probs: np.ndarray) -> None:
    """ONNX holds float16 weights: probabilities agree closely, and so do the labels wherever
    the network is not torn between two classes (an undertrained network has many near-ties)."""
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=0.02)
    top2 = np.sort(torch_probs, axis=0)[-2:]
    clear = top2[1] - top2[0] > 0.01
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(onnx_probs.argmax(0)[clear], torch_probs.argmax(0)[clear])


def test_plan_2d_radiograph_and_3d_anisotropic_ct() -> None:
    p2 = make_plan(_fp(2, [(0.14, 0.14)] * 4, [(2000, 2500)] * 4, "DX"), {1: "lung_left"})
    assert p2.fit == "size" and max(p2.target) <= 256 and p2.mirror_axes == ()
    assert all(t % 16 == 0 for t in p2.target) and p2.normalization == "zscore"
    spacings = [(0.8, 0.8, 5.0), (0.7, 0.7, 2.5), (0.8, 0.8, 5.0)]
    p3 = make_plan(_fp(3, spacings, [(512, 512, 60)] * 3, "CT"), {1: "kidney_left", 2: "liver"})
    assert p3.fit == "spacing" and p3.target[2] < 5.0  # coarse axis takes the 10th percentile
    assert p3.normalization == "ct" and p3.clip == (-900.0, 600.0)
    assert np.prod(p3.patch_size) <= 96**3
    assert p3.mirror_axes == ()  # lateral classes: never mirrored
    assert Plan.from_dict(p3.to_dict()) == p3
    assert p3.network["kwargs"]["channels"][0] == 16
    assert max(p3.network["kwargs"]["channels"]) == 128
    wide = make_plan(_fp(3, spacings, [(512, 512, 60)] * 3, "CT"), {1: "liver"}, width=32)
    assert wide.network["kwargs"]["channels"][:2] == [32, 64]
    assert max(wide.network["kwargs"]["channels"]) == 256
    with pytest.raises(ValueError, match="width"):
        make_plan(_fp(2, [(1.0, 1.0)], [(64, 64)], None), {1: "x"}, width=0)


def test_full_res_plan_adds_a_level_that_keeps_the_input_grid() -> None:
    from medlabel.segment.networks import build_segmentation_network

    fp = _fp(3, [(1.0, 1.0, 1.0)] * 3, [(36, 50, 35)] * 3, "MR")
    base = make_plan(fp, {1: "anterior", 2: "posterior"})
    full = make_plan(fp, {1: "anterior", 2: "posterior"}, full_res=True)
    assert full.patch_size == base.patch_size and full.batch_size == base.batch_size
    kb, kf = base.network["kwargs"], full.network["kwargs"]
    assert kb["strides"][0] == 2 and kf["strides"] == [1, *kb["strides"]]
    assert kf["channels"][:2] == [16, 32] and len(kf["channels"]) == len(kb["channels"]) + 1
    net = build_segmentation_network("unet", 3, 1, 3, **kf)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.stride == (1, 1, 1)
    x = torch.zeros(1, 1, *full.patch_size)
    assert net(x).shape == (1, 3, *full.patch_size)
    assert SegTrainConfig(full_res=True).to_dict()["full_res"] is True


@pytest.mark.parametrize("name", ["dynunet", "resunet"])
def test_dynunets_train_with_deep_supervision_and_infer_one_output(
    name: str, png_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    from medlabel.segment.networks import build_segmentation_network

    fp = _fp(3, [(1.0, 1.0, 1.0)] * 3, [(36, 50, 35)] * 3, "MR")
    plan = make_plan(fp, {1: "anterior", 2: "posterior"}, network=name)
    kwargs = plan.network["kwargs"]
    assert kwargs["deep_supervision"] is True
    net = build_segmentation_network(name, 3, 1, 3, **kwargs)
    x = torch.zeros(2, 1, *plan.patch_size)
    heads = len(kwargs["channels"]) - 1  # the final output and one per coarser decoder level
    assert net.train()(x).shape == (2, heads, 3, *plan.patch_size)
    assert net.eval()(x).shape == (2, 3, *plan.patch_size)
    assert "deep_supervision" not in make_plan(fp, {1: "a"}).network["kwargs"]  # unet: none
    # trains (every head in the loss), exports and predicts through the bundle
    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=2, iterations_per_epoch=2, network=name)
    trained = train_segmenter(ds, cfg, progress=False)
    assert np.isfinite(trained.history[-1]["loss"]) and trained.plan.network["name"] == name
    bundle = load_segmentation_bundle(save_segmentation_bundle(trained, tmp_path / name))
    image, _ = ds.load(0)
    assert same_grid(bundle.predict(image), image)
    torch_bundle = load_segmentation_bundle(tmp_path / name, engine="torch")
    _assert_engines_agree(bundle.probabilities(image)[0], torch_bundle.probabilities(image)[0])


def test_plan_mirrors_only_left_right_in_any_stored_axis_order() -> None:
    from medlabel.image import MedicalImage
    from medlabel.segment.fingerprint import fingerprint_cases

    axial = MedicalImage(np.zeros((8, 10, 12), np.float32))  # x runs left-right: NumPy axis 2
    # the same anatomy stored sagittal-first: world x is the slowest index axis
    sagittal = MedicalImage(
        np.zeros((12, 10, 8), np.float32), direction=(0, 0, 1, 0, 1, 0, 1, 0, 0)
    )
    one = fingerprint_cases([(axial, None)] * 2)
    assert make_plan(one, {1: "hippocampus"}).mirror_axes == (2,)
    # plans work in one orientation (RAS), where left-right is always the last NumPy axis,
    # so cases stored in other axis orders agree once reoriented
    assert make_plan(fingerprint_cases([(sagittal, None)]), {1: "x"}).mirror_axes == (2,)
    mixed = fingerprint_cases([(axial, None), (sagittal, None)])
    assert mixed.lr_axis == 2 and make_plan(mixed, {1: "x"}).mirror_axes == (2,)
    assert make_plan(one, {1: "lung_left"}).mirror_axes == ()  # lateral classes: never
    # asked for: every axis (nnU-Net's choice), even with lateral classes, or none at all
    assert make_plan(one, {1: "lung_left"}, mirror="all").mirror_axes == (0, 1, 2)
    assert make_plan(one, {1: "x"}, mirror="none").mirror_axes == ()
    assert make_plan(one, {1: "x"}, mirror="all", dims=2).mirror_axes == (1, 2)  # in-plane
    with pytest.raises(ValueError, match="mirror must be one of"):
        make_plan(one, {1: "x"}, mirror="sideways")


def test_round_trip_returns_to_the_exact_native_grid() -> None:
    c, s = np.cos(0.4), np.sin(0.4)
    img = MedicalImage(
        np.random.default_rng(0).normal(size=(9, 30, 27)).astype(np.float32),
        spacing=(0.7, 0.9, 3.0),
        origin=(5, -3, 2),
        direction=(c, -s, 0, s, c, 0, 0, 0, 1),
        modality="MR",
    )
    truth = (img.array > 0.5).astype(np.uint8)
    plan = make_plan(fingerprint_cases([(img, img.with_array(truth, is_label=True))]), {1: "x"})
    plan.target = (1.5, 1.5, 1.5)
    x, grid = to_network(img, plan)
    assert x.shape != img.array.shape
    # the truth carried to the work grid and back (as probabilities) must give the same grid
    work = sitk.Resample(
        img.with_array(truth.astype(np.float32)).to_sitk(), grid.metadata["_work_grid"].to_sitk()
    )
    p1 = sitk.GetArrayFromImage(work)
    seg = to_native(np.stack([1 - p1, p1]), grid, plan)
    assert same_grid(seg, img) and seg.is_label and seg.array.shape == img.array.shape


def test_postprocess_keeps_largest_and_fills_only_background() -> None:
    lab = np.zeros((10, 10), np.uint8)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 2  # another class inside: must stay
    lab[2, 2] = 0  # a hole: filled
    lab[8, 8] = 1  # a speck: removed
    out = postprocess(lab, {1: {"largest_component": True, "fill_holes": True}})
    assert out[8, 8] == 0 and out[2, 2] == 1 and out[3, 3] == 2


def test_sliding_window_blends_and_mirrors() -> None:
    calls: list[tuple[int, ...]] = []

    def net(x: np.ndarray) -> np.ndarray:
        calls.append(tuple(x.shape))
        return np.concatenate([-x, x], axis=1)  # class 1 where the image is positive

    x = np.zeros((50, 70), np.float32)
    x[:, 35:] = 3.0
    probs = predict_probabilities(net, x, (32, 32), mirror_axes=(1,), batch_size=2)
    assert probs.shape == (2, 50, 70)
    assert (np.argmax(probs, 0)[:, 40:] == 1).all() and (np.argmax(probs, 0)[:, :30] == 0).all()
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert all(c[2:] == (32, 32) for c in calls)


@pytest.mark.slow
def test_train_bundle_predict_on_2d_pairs(png_pairs: Callable[..., Path], tmp_path: Path) -> None:
    ds = open_segmentation_dataset(png_pairs(16), "100=disc,200=square")
    # a fixed amount of work (not a time budget), so a busy machine gets the same model
    cfg = SegTrainConfig(
        budget_minutes=30,
        max_epochs=15,
        iterations_per_epoch=4,
        val_every=3,
        val_fraction=0.25,
        num_threads=2,
    )
    trained = train_segmenter(ds, cfg, progress=False)
    assert trained.plan.fit == "size" and len(trained.history) == 15
    assert trained.history[-1]["lr"] < cfg.learning_rate() * 0.2  # the schedule ran to its end
    disc = trained.val_metrics["classes"]["disc"]["dice"]["mean"]
    assert disc > 0.6, trained.val_metrics  # an easy task: a bright disc
    bundle_dir = save_segmentation_bundle(trained, tmp_path / "bundle", licence="synthetic")
    assert (bundle_dir / "model.onnx").is_file() and "synthetic" in (
        bundle_dir / "MODEL_CARD.md"
    ).read_text()
    import onnx

    weights = [t for t in onnx.load(str(bundle_dir / "model.onnx")).graph.initializer if t.dims]
    halved = [t for t in weights if np.prod(t.dims) >= 256]
    assert halved and all(t.data_type == onnx.TensorProto.FLOAT16 for t in halved)
    onnx = load_segmentation_bundle(bundle_dir)
    torch_bundle = load_segmentation_bundle(bundle_dir, engine="torch")
    image, _mask = ds.load(
        ds.cases.index(next(c for c in ds.cases if c.id == trained.data["val_ids"][0]))
    )
    a = onnx.predict(image)
    assert same_grid(a, image)
    # the plausibility check's references travel with the bundle
    exp = onnx.expectations
    assert exp is not None and exp.measure == "share" and set(exp.sizes) == {1, 2}
    assert exp.entropy_max == trained.val_metrics["structure_entropy"]["max"] > 0
    assert trained.val_metrics["structure_entropy"]["n"] == trained.data["n_val"]
    assert isinstance(onnx.predict_detailed(image)[1]["implausible"], list)
    _assert_engines_agree(onnx.probabilities(image)[0], torch_bundle.probabilities(image)[0])
    # a larger image with other spacing: the mask comes back on its own grid
    big = MedicalImage(np.kron(image.array, np.ones((2, 3))), spacing=(0.2, 0.3), origin=(4, 5))
    pred = onnx.predict(big)
    assert same_grid(pred, big) and pred.metadata["labels"] == {1: "disc", 2: "square"}
    with pytest.raises(MedlabelError, match="segments 2D images"):
        onnx.predict(MedicalImage(np.zeros((4, 48, 48), np.float32)))


def _train_briefly(png_pairs: Callable[..., Path], **settings: Any) -> TrainedSegmenter:
    """18 small steps on synthetic discs and squares; the loss must fall."""
    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    cfg = SegTrainConfig(
        budget_minutes=30, max_epochs=6, iterations_per_epoch=3, val_every=3, width=8, **settings
    )
    trained = train_segmenter(ds, cfg, progress=False)
    losses = [row["loss"] for row in trained.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    return trained


def test_bf16_training_keeps_float32_weights_and_learns(
    png_pairs: Callable[..., Path],
) -> None:
    assert SegTrainConfig(bf16=False).use_bf16() is False
    assert SegTrainConfig(bf16=True).use_bf16() is True
    auto = SegTrainConfig().torch_device().type
    assert auto == ("cuda" if torch.cuda.is_available() else "cpu")
    trained = _train_briefly(png_pairs, bf16=True)
    assert trained.plan.network["kwargs"]["channels"][0] == 8
    assert trained.config.bf16 is True and trained.config.device == auto
    assert all(p.dtype == torch.float32 for p in trained.net.parameters())


def test_sgd_training_learns_at_its_own_rate(png_pairs: Callable[..., Path]) -> None:
    assert SegTrainConfig().learning_rate() == 2e-3
    assert SegTrainConfig(optimizer="sgd").learning_rate() == 1e-2
    assert SegTrainConfig(optimizer="sgd", lr=0.05).learning_rate() == 0.05
    with pytest.raises(ValueError, match="adamw, sgd"):
        train_segmenter(
            open_segmentation_dataset(png_pairs(2), "100=disc,200=square"),
            SegTrainConfig(optimizer="adam"),
            progress=False,
        )
    trained = _train_briefly(png_pairs, optimizer="sgd")
    assert trained.config.optimizer == "sgd" and trained.config.lr == 1e-2  # recorded


@pytest.mark.slow
def test_train_3d_msd_geometry_matches_simpleitk(msd_folder: Path, tmp_path: Path) -> None:
    ds = open_segmentation_dataset(msd_folder)
    trained = train_segmenter(
        ds, SegTrainConfig(budget_minutes=0.2, val_fraction=0.34), progress=False
    )
    assert trained.plan.fit == "spacing" and trained.plan.dims == 3
    bundle = load_segmentation_bundle(save_segmentation_bundle(trained, tmp_path / "b3"))
    case = ds.cases[0].image
    seg = bundle.predict(read_image(case))
    out = tmp_path / "seg.nii.gz"
    from medlabel.io import write_image

    write_image(seg, out)
    ref, got = sitk.ReadImage(str(case)), sitk.ReadImage(str(out))
    assert got.GetSize() == ref.GetSize()
    np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)


def test_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no bundle\.json"):
        load_segmentation_bundle(tmp_path)
    from medlabel.models import resolve_model

    classifier = resolve_model("cxr-pneumonia")
    with pytest.raises(BundleError, match="does not fit"):
        load_segmentation_bundle(classifier)


def test_a_bundle_refuses_images_of_another_declared_modality() -> None:
    bundle = load_segmentation_bundle("cxr-lungs")  # made for CR/DX
    assert bundle.modalities == ("CR", "DX")
    slice_ = np.zeros((64, 64), np.int16)
    for image in (MedicalImage(slice_, modality="CT"), MedicalImage(slice_, modality="US")):
        for run in (bundle.predict, bundle.predict_detailed):
            with pytest.raises(MedlabelError, match="made for CR/DX images; this one is"):
                run(image)
        with pytest.raises(MedlabelError, match="made for CR/DX images"):
            bundle.predict_detailed_many([image, image])


@pytest.mark.slow
def test_too_large_volume_is_refused_with_the_memory_it_needs(
    msd_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medlabel.segment.bundle as bundle_module

    ds = open_segmentation_dataset(msd_folder)
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=1, iterations_per_epoch=1, val_fraction=0.34)
    bundle = load_segmentation_bundle(
        save_segmentation_bundle(train_segmenter(ds, cfg, progress=False), tmp_path / "b")
    )
    image, _ = ds.load(0)
    assert 0 < bundle.memory_needed(image) < 50 * 2**20
    monkeypatch.setattr(bundle_module, "available_memory", lambda: 1000)
    with pytest.raises(MedlabelError, match=r"needs about .* GiB of memory"):
        bundle.predict(image)


@pytest.mark.slow
def test_slice_wise_2d_model_on_volumes(msd_folder: Path, tmp_path: Path) -> None:
    ds = open_segmentation_dataset(msd_folder)
    cfg = SegTrainConfig(
        budget_minutes=30,
        max_epochs=2,
        iterations_per_epoch=2,
        val_fraction=0.34,
        dims=2,
        mirror="all",
    )
    trained = train_segmenter(ds, cfg, progress=False)
    plan = trained.plan
    assert plan.dims == 3 and plan.network_dims == 2 and plan.slice_axis == 0  # 2 mm slices
    assert plan.patch_size[0] == 1 and len(plan.network_patch) == 2
    assert plan.mirror_axes == (1, 2)  # volume axes; training flips the slices' two axes
    bundle = load_segmentation_bundle(save_segmentation_bundle(trained, tmp_path / "b2"))
    image, _ = ds.load(1)
    seg = bundle.predict(image)
    assert same_grid(seg, image) and same_grid(bundle.predict(image, tta=True), image)
    torch_bundle = load_segmentation_bundle(tmp_path / "b2", engine="torch")
    _assert_engines_agree(bundle.probabilities(image)[0], torch_bundle.probabilities(image)[0])


@pytest.mark.slow
def test_cross_validation_ensemble_bundle(png_pairs: Callable[..., Path], tmp_path: Path) -> None:
    from medlabel.segment.train import train_ensemble

    ds = open_segmentation_dataset(png_pairs(9), "100=disc,200=square")
    folds = ds.folds(3, seed=0)
    val_sets = [{f.cases[i].id for i in f.indices("val")} for f in folds]
    assert set().union(*val_sets) == {c.id for c in ds.cases} and sum(map(len, val_sets)) == 9
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=2, iterations_per_epoch=2)
    members = train_ensemble(ds, cfg, folds=3, progress=False)
    assert len(members) == 3 and len({m.config.seed for m in members}) == 3
    assert members[0].val_metrics["n"] == 9  # every case predicted once, out of fold
    bundle = load_segmentation_bundle(save_segmentation_bundle(members, tmp_path / "ens"))
    assert [m["onnx"] for m in bundle.members] == ["model-0.onnx", "model-1.onnx", "model-2.onnx"]
    image, _ = ds.load(0)
    probs, _ = bundle.probabilities(image)
    singles = [
        load_segmentation_bundle(save_segmentation_bundle(m, tmp_path / f"m{k}")).probabilities(
            image
        )[0]
        for k, m in enumerate(members)
    ]
    np.testing.assert_allclose(probs, np.mean(singles, axis=0), atol=1e-5)
    # the batched path of whole-image models averages the members' probabilities too
    images = [image, ds.load(1)[0]]
    for (batched, info), alone in zip(bundle.predict_detailed_many(images), images, strict=True):
        labels, detail = bundle.predict_detailed(alone)[:2]
        assert np.array_equal(batched.array, labels.array)
        assert info["entropy"]["all"] == pytest.approx(detail["entropy"]["all"], abs=1e-5)
    card = (tmp_path / "ens" / "MODEL_CARD.md").read_text()
    assert "ensemble of 3 members" in card
    assert "9 cases in 3 folds, each member trained on 6 and validated on the other 3" in card
    assert set(bundle.meta["data"]["train_ids"]) == {c.id for c in ds.cases}
    # fine-tuning the ensemble on a grown set: the folds are made of the new cases only
    grown = open_segmentation_dataset(png_pairs(12), "100=disc,200=square")
    tuned = train_ensemble(grown, replace(cfg, init_from=str(tmp_path / "ens")), folds=3)
    held = sorted(i for m in tuned for i in m.data["val_ids"])
    assert held == ["case09", "case10", "case11"] and all(
        len(m.data["val_ids"]) == 1 for m in tuned
    )


def test_auto_engine_uses_torch_for_many_3d_windows_with_the_same_labels() -> None:
    auto = load_segmentation_bundle("mri-hippocampus", precision="fp32")
    onnx = load_segmentation_bundle("mri-hippocampus", engine="onnx")
    assert auto.engine == "auto" and onnx.engine_for((120, 200, 200)) == ("onnx", 9)
    assert auto.engine_for(auto.plan.patch_size) == ("onnx", auto.plan.batch_size)
    assert auto.engine_for((120, 200, 200)) == ("torch", 4)
    rng = np.random.default_rng(0)
    # a brain-like blob larger than one window: several windows, so the torch path runs
    zz, yy, xx = np.mgrid[:60, :80, :56]
    blob = np.exp(-(((zz - 30) / 14) ** 2 + ((yy - 40) / 20) ** 2 + ((xx - 28) / 12) ** 2))
    image = MedicalImage((blob * 400 + rng.normal(0, 20, blob.shape)).astype(np.float32))
    a, b = auto.predict(image), onnx.predict(image)
    assert set(auto._runners) == {"torch"} and set(onnx._runners) == {"onnx"}
    assert same_grid(a, image) and (a.array == b.array).mean() > 0.999
    with pytest.raises(BundleError, match="engine must be auto, onnx or torch"):
        load_segmentation_bundle("mri-hippocampus", engine="tensorrt")


def test_bfloat16_inference_runs_on_torch_and_draws_the_same_labels() -> None:
    bf16 = load_segmentation_bundle("mri-hippocampus", precision="bf16")
    fp32 = load_segmentation_bundle("mri-hippocampus", precision="fp32")
    assert bf16.bf16 and not fp32.bf16
    # auto: bfloat16 exactly where the CPU computes in it natively, and never on ONNX Runtime
    assert load_segmentation_bundle("mri-hippocampus").bf16 == native_bf16(torch.device("cpu"))
    assert bf16.engine_for(bf16.plan.patch_size) == ("torch", bf16.plan.batch_size)
    assert bf16.engine_for((120, 200, 200)) == ("torch", bf16.plan.batch_size)
    assert load_segmentation_bundle("mri-hippocampus", engine="onnx", precision="bf16").engine_for(
        (36, 50, 36)
    ) == ("onnx", 9)
    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:60, :80, :56]
    blob = np.exp(-(((zz - 30) / 14) ** 2 + ((yy - 40) / 20) ** 2 + ((xx - 28) / 12) ** 2))
    image = MedicalImage((blob * 400 + rng.normal(0, 20, blob.shape)).astype(np.float32))
    a, b = bf16.predict(image), fp32.predict(image)
    assert set(bf16._runners) == {"torch"} and same_grid(a, image)
    assert (a.array == b.array).mean() > 0.99
    with pytest.raises(BundleError, match="precision must be auto, fp32 or bf16"):
        load_segmentation_bundle("mri-hippocampus", precision="fp16")
    # one image alone (medlabel segment): float32 on ONNX Runtime unless it needs many windows
    auto = load_segmentation_bundle("mri-hippocampus")
    crop = MedicalImage(np.zeros((36, 50, 36), np.float32))
    assert auto.precision_for_one(crop) == "fp32"
    assert auto.precision_for_one(image) == "auto"  # 60 x 80 x 56: several windows
    assert bf16.precision_for_one(crop) == "bf16"  # asked for: kept


def test_bundles_run_on_the_device_asked_for() -> None:
    cpu = load_segmentation_bundle("mri-hippocampus", device="cpu", precision="fp32")
    assert cpu.device == "cpu" and cpu.engine_for((36, 50, 36)) == ("onnx", 9)
    auto = load_segmentation_bundle("mri-hippocampus", device="auto")
    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MedlabelError, match="unknown device 'gpu'"):
        load_segmentation_bundle("mri-hippocampus", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(MedlabelError, match="sees no CUDA GPU"):
            load_segmentation_bundle("mri-hippocampus", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["mri-hippocampus", "cxr-lungs"])
def test_a_gpu_draws_the_labels_the_cpu_draws(name: str) -> None:
    cpu = load_segmentation_bundle(name)
    gpu = load_segmentation_bundle(name, device="cuda")
    assert gpu.engine_for(gpu.plan.patch_size)[0] == "torch"
    rng = np.random.default_rng(0)
    shape = (60, 80, 56) if cpu.plan.dims == 3 else (256, 240)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    blob = np.exp(-sum(g**2 for g in grids) * 3)
    image = MedicalImage((blob * 400 + rng.normal(0, 20, shape)).astype(np.float32))
    a, b = cpu.predict(image), gpu.predict(image)
    assert set(gpu._runners) == {"torch"} and same_grid(b, image)
    assert (a.array == b.array).mean() > 0.999
    with pytest.raises(BundleError, match="ONNX Runtime runs on the CPU here"):
        load_segmentation_bundle(name, engine="onnx", device="cuda")


@pytest.mark.slow
def test_bundle_without_onnx_runs_on_torch(png_pairs: Callable[..., Path], tmp_path: Path) -> None:
    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=2, iterations_per_epoch=2)
    trained = train_segmenter(ds, cfg, progress=False)
    small = save_segmentation_bundle(trained, tmp_path / "small", onnx=False)
    assert not list(small.glob("*.onnx"))
    bundle = load_segmentation_bundle(small)
    image, _ = ds.load(0)
    assert bundle.engine_for(bundle.plan.patch_size)[0] == "torch"
    full = load_segmentation_bundle(save_segmentation_bundle(trained, tmp_path / "full"))
    _assert_engines_agree(full.probabilities(image)[0], bundle.probabilities(image)[0])
    assert len(bundle.predict_detailed_many([image, image])) == 2  # the batched 2D path too
    with pytest.raises(BundleError, match="no onnx files"):
        load_segmentation_bundle(small, engine="onnx")


def test_slim_bundle_keeps_one_engine_with_the_same_results(
    png_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    from medlabel.segment.bundle import slim_bundle

    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=1, iterations_per_epoch=2)
    trained = train_segmenter(ds, cfg, progress=False)
    full = save_segmentation_bundle(trained, tmp_path / "full")
    image, _ = ds.load(0)
    before = load_segmentation_bundle(full, precision="fp32").probabilities(image)[0]
    onnx_only = slim_bundle(save_segmentation_bundle(trained, tmp_path / "b"), keep="onnx")
    assert sorted(p.name for p in onnx_only.iterdir()) == [
        "MODEL_CARD.md",
        "bundle.json",
        "model.onnx",
    ]
    bundle = load_segmentation_bundle(onnx_only, precision="fp32")
    np.testing.assert_allclose(bundle.probabilities(image)[0], before, atol=1e-6)
    assert "Files: ONNX exports only" in (onnx_only / "MODEL_CARD.md").read_text()
    # torch rebuilds the weights from the exports: the same values as the full bundle's
    shipped = load_segmentation_bundle(full).network().state_dict()
    rebuilt = load_segmentation_bundle(onnx_only, engine="torch", precision="fp32")
    for key, value in rebuilt.network().state_dict().items():
        np.testing.assert_allclose(value.numpy(), shipped[key].numpy(), rtol=1e-3, atol=1e-6)
    # the exports keep small tensors (PReLU slopes) in float32, so the rebuilt network
    # computes what ONNX Runtime does, to float32 rounding
    np.testing.assert_allclose(rebuilt.probabilities(image)[0], before, atol=1e-5)
    with pytest.raises(BundleError, match="no torch files to keep"):
        slim_bundle(onnx_only, keep="torch")
    torch_only = slim_bundle(save_segmentation_bundle(trained, tmp_path / "t"), keep="torch")
    assert not list(torch_only.glob("*.onnx"))
    assert "Files: torch weights only" in (torch_only / "MODEL_CARD.md").read_text()
    torch_fp32 = load_segmentation_bundle(torch_only, precision="fp32")
    _assert_engines_agree(before, torch_fp32.probabilities(image)[0])
    with pytest.raises(BundleError, match="no onnx files; use engine auto or torch"):
        load_segmentation_bundle(torch_only, engine="onnx")


def test_onnx_export_of_another_network_is_refused_by_the_torch_engine(
    png_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    import json

    from medlabel.segment.bundle import slim_bundle

    def wider(folder: Path) -> Path:  # the plan now describes another network
        meta = json.loads((folder / "bundle.json").read_text())
        kwargs = meta["plan"]["network"]["kwargs"]
        kwargs["channels"] = [2 * c for c in kwargs["channels"]]
        (folder / "bundle.json").write_text(json.dumps(meta))
        return folder

    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=1, iterations_per_epoch=2)
    trained = train_segmenter(ds, cfg, progress=False)
    full = wider(save_segmentation_bundle(trained, tmp_path / "full"))
    with pytest.raises(BundleError, match=r"holds no value for .*keep both engines' files"):
        slim_bundle(full)
    assert (full / "model.pt").is_file()  # nothing was changed
    onnx_only = wider(slim_bundle(save_segmentation_bundle(trained, tmp_path / "b")))
    bundle = load_segmentation_bundle(onnx_only, engine="torch")
    with pytest.raises(BundleError, match=r"cannot rebuild torch weights: model\.onnx holds no"):
        bundle.network()
    image, _ = ds.load(0)
    # auto falls back on the exports, even where it would prefer torch (bfloat16)
    for precision in ("fp32", "bf16"):
        auto = load_segmentation_bundle(onnx_only, precision=precision)
        assert auto.probabilities(image)[0].shape[0] == 3


def test_fine_tuning_starts_from_the_bundle(png_pairs: Callable[..., Path], tmp_path: Path) -> None:
    from medlabel.segment.bundle import slim_bundle

    ds = open_segmentation_dataset(png_pairs(8), "100=disc,200=square")
    base = SegTrainConfig(budget_minutes=30, max_epochs=2, iterations_per_epoch=2)
    first = slim_bundle(
        save_segmentation_bundle(train_segmenter(ds, base, progress=False), tmp_path / "v1")
    )  # ONNX only: the weights to start from are rebuilt from the export
    start = load_segmentation_bundle(first).network().state_dict()
    # the run's own plan would differ (width 8); a vanishing rate leaves the weights in place
    still = SegTrainConfig(
        budget_minutes=30, max_epochs=1, iterations_per_epoch=1, width=8, lr=1e-12, seed=5
    )
    tuned = train_segmenter(ds, replace(still, init_from=str(first)), progress=False)
    assert tuned.plan.network == load_segmentation_bundle(first).plan.network
    for key, value in tuned.net.state_dict().items():
        torch.testing.assert_close(value, start[key], rtol=1e-6, atol=1e-6)
    scratch = train_segmenter(ds, still, progress=False)  # the same run without a start
    assert scratch.plan.network != tuned.plan.network
    assert tuned.config.init_from == str(first)
    # never validated on the cases the bundle was trained on
    v1 = json.loads((first / "bundle.json").read_text())["data"]
    assert len(v1["train_ids"]) == 6 and not set(v1["train_ids"]) & set(v1["val_ids"])
    assert tuned.data["val_ids"] and not set(tuned.data["val_ids"]) & set(v1["train_ids"])
    assert SegTrainConfig(init_from="x").learning_rate() == pytest.approx(2e-4)
    card = (save_segmentation_bundle(tuned, tmp_path / "v2") / "MODEL_CARD.md").read_text()
    assert f"Fine-tuned from: {first}" in card
    # tuned on other cases, it still counts the start's training cases as its own
    fewer = tmp_path / "fewer"
    keep = [*v1["val_ids"], v1["train_ids"][0]]
    for part in ("images", "masks"):
        (fewer / part).mkdir(parents=True)
        for case in keep:
            name = f"{Path(case).name}.png" if not case.endswith(".png") else Path(case).name
            shutil.copy(tmp_path / "pairs" / part / name, fewer / part / name)
    small = open_segmentation_dataset(fewer, "100=disc,200=square")
    again = train_segmenter(small, replace(still, init_from=str(first)), progress=False)
    assert set(v1["train_ids"]) <= set(again.data["train_ids"])
    other = open_segmentation_dataset(png_pairs(8), "100=disc,200=box")
    with pytest.raises(MedlabelError, match="fine-tuning needs the bundle's classes"):
        train_segmenter(other, replace(still, init_from=str(first)), progress=False)

    # its training cases copied under new names (a review export) are still recognised
    renamed = tmp_path / "renamed"
    for part in ("images", "masks"):
        (renamed / part).mkdir(parents=True)
        for k, case in enumerate([*v1["train_ids"], *v1["val_ids"]]):
            shutil.copy(tmp_path / "pairs" / part / f"{case}.png", renamed / part / f"s{k}.png")
    copies = open_segmentation_dataset(renamed, "100=disc,200=square")
    assert not {c.id for c in copies.cases} & set(v1["train_ids"])  # no id gives them away
    seen = trained_ids(json.loads((first / "bundle.json").read_text()))
    new_ones = {f"s{k}" for k in range(len(v1["train_ids"]), len(copies.cases))}
    split = copies.with_validation_split(0.5, seed=0, seen=seen)
    assert {copies.cases[i].id for i in split.indices("val")} <= new_ones
    idx, why = choose_cases(copies, Segmenter("v1", bundle=load_segmentation_bundle(first)), None)
    assert {copies.cases[i].id for i in idx} == new_ones and "file content" in why


def test_save_refuses_a_classifier_bundle(tmp_path: Path) -> None:
    cnn = tmp_path / "classifier"
    cnn.mkdir()
    record = '{"format": "medlabel.bundle", "format_version": 1, "kind": "cnn"}'
    (cnn / "bundle.json").write_text(record)
    with pytest.raises(BundleError, match="kind 'cnn', not segmentation") as err:
        save_segmentation_bundle([], cnn)  # refused before the members are looked at
    assert err.value.path == cnn and (cnn / "bundle.json").read_text() == record
