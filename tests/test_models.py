"""Finding bundles by path, user-folder name or bundled name."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.models import bundled_models, resolve_model
from medlabel.models.files import BundleError


def test_resolve_prefers_paths_then_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLABEL_MODELS", str(tmp_path / "models"))
    mine = tmp_path / "models" / "my-model"
    mine.mkdir(parents=True)
    (mine / "bundle.json").write_text("{}")
    assert resolve_model("my-model") == mine
    assert resolve_model(mine) == mine
    with pytest.raises(BundleError, match="nothing-here: neither a folder nor a known") as err:
        resolve_model("nothing-here")
    assert "my-model" in str(err.value) and "cxr-lungs" in str(err.value)
    assert "ct-lungs" in str(err.value)  # recipes too
    # listed by the name --model takes (the folder), not the name it was trained under
    (mine / "bundle.json").write_text('{"kind": "cnn", "name": "trained-as"}')
    from medlabel.models import list_models

    listed = [r["name"] for r in list_models() if r["origin"] == "user"]
    assert listed == ["my-model"] and resolve_model(listed[0]) == mine


def test_bundled_models_are_complete():
    import json

    for name in bundled_models():
        folder = resolve_model(name)
        meta = json.loads((folder / "bundle.json").read_text())
        onnx = (meta.get("members") or [meta])[0]["onnx"]
        card = (folder / "MODEL_CARD.md").read_text()
        assert (folder / onnx).is_file() and "Licence" in card and "command" in card


def test_bundled_lung_model_segments_a_real_radiograph():
    import numpy as np
    from pydicom.data import get_testdata_file

    from medlabel.image import same_grid
    from medlabel.io import read_image
    from medlabel.segment.bundle import load_segmentation_bundle

    if "cxr-lungs" not in bundled_models():
        return
    assert "non-commercial" in (resolve_model("cxr-lungs") / "MODEL_CARD.md").read_text()
    image = read_image(get_testdata_file("RG1_UNCR.dcm"))  # a 1955x1841 CR it never saw
    seg = load_segmentation_bundle("cxr-lungs", engine="onnx").predict(image)
    assert same_grid(seg, image)
    share = {k: float((seg.array == k).mean()) for k in (1, 2, 3)}
    assert all(0.05 < v < 0.35 for v in share.values()), share
    # anatomy: the right lung on the image's left (PA view), the heart low and central-left
    cols = {k: np.nonzero(seg.array == k)[1].mean() / seg.array.shape[1] for k in (1, 2, 3)}
    assert cols[1] < 0.45 < 0.55 < cols[2] and 0.4 < cols[3] < 0.7
    # it ships ONNX exports only; torch rebuilds the weights and draws the same labels
    on_torch = load_segmentation_bundle("cxr-lungs", engine="torch", precision="fp32")
    assert float((on_torch.predict(image).array == seg.array).mean()) > 0.9999
    # and so, within a few boundary pixels, does bfloat16 (the default where the CPU has it)
    bf16 = load_segmentation_bundle("cxr-lungs", precision="bf16").predict(image)
    assert float((bf16.array == seg.array).mean()) > 0.999


def test_bundled_hippocampus_model_on_cases_it_did_not_train_on(shared_data):
    import json

    import SimpleITK as sitk

    from medlabel.evaluate.segmentation import mask_metrics
    from medlabel.io import read_image, read_label
    from medlabel.segment.bundle import load_segmentation_bundle

    if "mri-hippocampus" not in bundled_models():
        return
    folder = resolve_model("mri-hippocampus")
    card = (folder / "MODEL_CARD.md").read_text()
    assert "CC BY-SA 4.0" in card and "Held-out test" in card
    meta = json.loads((folder / "bundle.json").read_text())
    bundle = load_segmentation_bundle("mri-hippocampus")
    for case in sorted(meta["data"]["val_ids"])[:3]:  # validation cases: never trained on
        image_path = shared_data / "msd-hippocampus" / "imagesTr" / f"{case}.nii.gz"
        image = read_image(image_path)
        truth = read_label(shared_data / "msd-hippocampus" / "labelsTr" / f"{case}.nii.gz", image)
        seg = bundle.predict(image)
        for value in (1, 2):
            dice = mask_metrics(seg.array == value, truth.array == value, image.spacing)["dice"]
            assert dice > 0.75, (case, value, dice)
        reference = sitk.ReadImage(str(image_path))  # geometry exactly SimpleITK's
        assert seg.size == reference.GetSize()
        assert seg.origin == pytest.approx(reference.GetOrigin())
        assert seg.direction == pytest.approx(reference.GetDirection())


def test_evaluating_a_bundled_model_leaves_out_what_it_trained_on(shared_data, tmp_path):
    """The shipped bundles name their training cases: evaluation skips them unless asked, and
    counts them when asked; MSD data without a dataset.json is matched to classes by value."""
    import json

    from typer.testing import CliRunner

    from medlabel.cli import app

    meta = json.loads((resolve_model("mri-hippocampus") / "bundle.json").read_text())
    trained = sorted(meta["data"]["train_ids"])
    assert len(trained) == meta["data"]["n_train"] and not set(trained) & set(
        meta["data"]["val_ids"]
    )
    unseen = sorted(meta["data"]["val_ids"])[0]
    source = shared_data / "msd-hippocampus"
    data = tmp_path / "msd"
    for case in (*trained[:2], unseen):  # a small MSD folder: links, nothing copied
        for part in ("imagesTr", "labelsTr"):
            (data / part).mkdir(parents=True, exist_ok=True)
            (data / part / f"{case}.nii.gz").symlink_to(source / part / f"{case}.nii.gz")
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", "--model", "mri-hippocampus", "--data", str(data), "--out",
              str(tmp_path / "default")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "default" / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["trained_on"] == 0
    assert metrics["classes_by_value"] == {"label_1": "anterior", "label_2": "posterior"}
    assert metrics["summary"]["anterior"]["dice"]["mean"] > 0.75
    result = runner.invoke(
        app, ["evaluate", "--model", "mri-hippocampus", "--data", str(data), "--split", "all",
              "--out", str(tmp_path / "all")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["trained_on"] == 2
    assert "2 of these cases trained mri-hippocampus" in result.output
    # the Kermany bundle names its 4471 training radiographs the same way
    kermany = json.loads((resolve_model("cxr-pneumonia") / "bundle.json").read_text())
    assert len(kermany["data"]["train_ids"]) == kermany["data"]["train_used"] == 4471
    assert all((shared_data / "cxr-pneumonia-224" / "train" / i).is_file()
               for i in kermany["data"]["train_ids"][:: 500])  # fmt: skip


def test_evaluation_knows_training_images_laid_out_anew(shared_data, tmp_path):
    """Radiographs that trained cxr-pneumonia, moved under ``test/`` with lower-case class
    folders, are still counted as training images (the ids recorded are class/file)."""
    import json

    from typer.testing import CliRunner

    from medlabel.cli import app

    kermany = json.loads((resolve_model("cxr-pneumonia") / "bundle.json").read_text())
    trained = [i for i in kermany["data"]["train_ids"] if i.startswith("NORMAL/")][:3]
    trained += [i for i in kermany["data"]["train_ids"] if i.startswith("PNEUMONIA/")][:3]
    for sample in trained:
        cls, name = sample.split("/")
        link = tmp_path / "data" / "test" / cls.lower() / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared_data / "cxr-pneumonia-224" / "train" / sample)
    result = CliRunner().invoke(
        app, ["evaluate", "--model", "cxr-pneumonia", "--data", str(tmp_path / "data"),
              "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["trained_on"] == 6
    assert "6 of these images trained cxr-pneumonia" in result.output


def test_bundled_models_know_their_training_images_under_other_names(shared_data, tmp_path):
    """Every shipped bundle records its training files' digests, so renamed copies (a review
    export, a re-organised archive) count as training images, and unseen images do not."""
    import json

    from typer.testing import CliRunner

    from medlabel.cli import app
    from medlabel.models.files import trained_ids
    from medlabel.segment.bundle import load_segmentation_bundle

    kermany = trained_ids(json.loads((resolve_model("cxr-pneumonia") / "bundle.json").read_text()))
    assert len(kermany.digests) > 4400  # 4471 files, some byte-identical
    val = json.loads((resolve_model("cxr-pneumonia") / "bundle.json").read_text())["data"]
    source = shared_data / "cxr-pneumonia-224" / "train"
    picks = [i for i in sorted(kermany) if i.startswith("NORMAL/")][:2]
    picks += [i for i in sorted(kermany) if i.startswith("PNEUMONIA/")][:2]
    unseen = [i for i in val["val_ids"] if i not in kermany][:2]
    for k, sample in enumerate(picks + unseen):  # links under names that tell nothing
        link = tmp_path / "export" / sample.split("/")[0].lower() / f"study-{k}.jpeg"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source / sample)
    data = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["evaluate", "--model", "cxr-pneumonia", "--data", str(data), "--split", "all",
              "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["trained_on"] == 4
    # the hippocampus model's training cases, renamed, are left out of a default evaluation
    bundle = load_segmentation_bundle("mri-hippocampus")
    seen = trained_ids(bundle.meta)
    assert len(seen.digests) == len(seen) == 148
    msd = shared_data / "msd-hippocampus"
    case = sorted(seen)[0]
    assert seen.holds("renamed_001", msd / "imagesTr" / f"{case}.nii.gz")
    held = sorted(bundle.meta["data"]["val_ids"])[0]
    assert not seen.holds("renamed_002", msd / "imagesTr" / f"{held}.nii.gz")


def test_models_command_lists_user_bundles(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from medlabel.cli import app

    monkeypatch.setenv("MEDLABEL_MODELS", str(tmp_path))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "bundle.json").write_text(
        json.dumps(
            {
                "name": "mine",
                "task": "binary",
                "class_names": ["a", "b"],
                "metrics": {"validation": {"auc": 0.9}},
            }
        )
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bundle.json").write_text("{not json")
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["mine"]["validation_auc"] == 0.9 and rows["mine"]["origin"] == "user"
    assert "error" in rows["broken"]


def test_bundled_cxr_model_engines_agree():
    import numpy as np

    from medlabel.classify.bundle import load_bundle

    if "cxr-pneumonia" not in bundled_models():
        return
    x = np.random.default_rng(0).integers(0, 255, (3, 1, 128, 128)).astype(np.uint8)
    onnx = load_bundle("cxr-pneumonia").predict_arrays(x)
    torch_ = load_bundle("cxr-pneumonia", engine="torch").predict_arrays(x)
    np.testing.assert_allclose(onnx, torch_, atol=1e-4)


def test_bundled_pneumonia_model_marks_thumbnails_of_real_radiographs(shared_data, tmp_path):
    """The shipped bundle records its training radiographs' size (224 x 224), so a real
    radiograph shrunk to a PneumoniaMNIST-sized thumbnail is marked and the original is not."""
    from PIL import Image

    from medlabel.classify.bundle import load_bundle
    from medlabel.classify.predict import predict_paths

    bundle = load_bundle("cxr-pneumonia")
    assert bundle.training_sizes == {"min": [224, 224], "max": [224, 224]}
    source = sorted((shared_data / "cxr-pneumonia-224" / "train" / "NORMAL").glob("*.jpeg"))[0]
    thumb = tmp_path / "thumb.png"  # a temporary derivative, never committed
    Image.open(source).convert("L").resize((28, 28)).save(thumb)
    rows = predict_paths(bundle, [source, thumb], progress=False)
    assert [r["low_resolution"] for r in rows] == [False, True]


def test_predicting_through_onnx_runtime_never_imports_torch():
    """torch takes over a second to import on a small CPU: a classifier's ONNX path (and the
    size and feature checks) must run without it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from medlabel.classify.bundle import load_bundle\n"
        "b = load_bundle('cxr-pneumonia')\n"
        "probs, dist = b.predict_with_ood(np.zeros((2, 1, 128, 128), np.uint8))\n"
        "assert probs.shape == (2, 2) and dist is not None\n"
        "assert b.low_resolution(np.array([[28, 28], [224, 224]])).tolist() == [True, False]\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_segmenting_through_onnx_runtime_never_imports_torch(tmp_path):
    """``medlabel segment`` on an input that fits one window runs on ONNX Runtime, and so does
    ``medlabel annotate --precision fp32``: importing torch would take most of their time, so
    neither the 2D nor the 3D bundle may pull it in."""
    import subprocess
    import sys

    import nibabel as nib
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    Image.fromarray(rng.integers(0, 255, (224, 224), dtype=np.uint8)).save(tmp_path / "in/cxr.png")
    volume = rng.normal(100, 20, (36, 50, 36)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "in/brain.nii.gz")
    code = (
        "import sys\n"
        "from medlabel.cli import app\n"
        "for src, model in (('cxr.png', 'cxr-lungs'), ('brain.nii.gz', 'mri-hippocampus')):\n"
        "    out = 'mask-' + src\n"
        "    app(['segment', 'in/' + src, '--model', model, '--out', out], standalone_mode=False)\n"
        "app(['annotate', 'in', '--out', 'job', '--precision', 'fp32'], standalone_mode=False)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
    assert (tmp_path / "mask-cxr.png").is_file() and (tmp_path / "mask-brain.nii.gz").is_file()
    masks = sorted(p.name for p in (tmp_path / "job").rglob("*.nii.gz"))
    assert any("cxr-lungs" in m for m in masks) and any("hippocampus" in m for m in masks), masks


def test_bundled_hippocampus_model_segments_any_axis_order_alike(shared_data):
    """The same scan stored as LPS, with its slices reversed, or with its axes permuted gives
    the same mask in the world, and the orientation the bundle records is that of every case
    it trained and validated on."""
    import json

    import SimpleITK as sitk

    from medlabel.io import read_image
    from medlabel.preprocess.orient import orientation_code, reorient
    from medlabel.segment.bundle import load_segmentation_bundle

    if "mri-hippocampus" not in bundled_models():
        return
    folder = shared_data / "msd-hippocampus" / "imagesTr"
    meta = json.loads((resolve_model("mri-hippocampus") / "bundle.json").read_text())
    codes = set()
    for case in meta["data"]["train_ids"] + meta["data"]["val_ids"]:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(folder / f"{case}.nii.gz"))
        reader.ReadImageInformation()
        codes.add(
            sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reader.GetDirection())
        )
    assert codes == {meta["plan"]["orientation"]}
    bundle = load_segmentation_bundle("mri-hippocampus", precision="fp32")
    image = read_image(folder / f"{sorted(meta['data']['val_ids'])[0]}.nii.gz")
    reference = bundle.predict(image)
    assert {1, 2} <= set(np.unique(reference.array).tolist())
    for code in ("LPS", "RAI", "SAL"):
        stored = reorient(image, code)
        seg = bundle.predict(stored)
        assert orientation_code(seg) == code and seg.size == stored.size
        np.testing.assert_array_equal(reorient(seg, orientation_code(image)).array, reference.array)
