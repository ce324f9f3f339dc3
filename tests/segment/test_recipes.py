"""Recipes on synthetic phantoms (always) and on the shared CT and X-ray data (when present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlabel.errors import MedlabelError
from medlabel.evaluate.segmentation import mask_metrics
from medlabel.image import MedicalImage, same_grid
from medlabel.io import read_image, read_label
from medlabel.segment import RECIPES, list_recipes, run_recipe
from medlabel.segment.recipes.ct import chest_phantom
from medlabel.segment.recipes.mri import head_phantom


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def test_registry_lists_every_recipe_with_labels() -> None:
    assert {
        "ct-body",
        "ct-lungs",
        "ct-bone",
        "ct-fat",
        "ct-soft-tissue",
        "mri-head",
        "mri-brain",
        "cxr-lungs-classical",
    } <= set(list_recipes())
    for recipe in RECIPES.values():
        assert recipe.labels and recipe.description and recipe.dims in (2, 3)


def test_ct_lungs_and_bone_on_phantom() -> None:
    ct, truth = chest_phantom()
    seg = run_recipe("ct-lungs", ct)
    assert seg.is_label and same_grid(seg, ct)
    assert seg.metadata["labels"] == {1: "lung_right", 2: "lung_left"}
    assert dice(seg.array == 1, truth == 1) > 0.95
    assert dice(seg.array == 2, truth == 2) > 0.95
    bone = run_recipe("ct-bone", ct).array == 1
    assert dice(bone, truth == 3) > 0.9
    body = run_recipe("ct-body", ct).array == 1
    assert body[truth > 0].all()
    table_rows = ct.array.shape[1] * 0.88
    assert not body[:, int(table_rows), :].any()  # the table is not body


def test_ct_lung_sides_follow_patient_orientation_not_storage() -> None:
    ct, truth = chest_phantom()
    # the same patient stored with x flipped (RAS-like storage): voxels mirrored, direction -x
    flipped = MedicalImage(
        ct.array[:, :, ::-1],
        spacing=ct.spacing,
        origin=ct.index_to_world((ct.size[0] - 1, 0, 0)),
        direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1),
        modality="CT",
    )
    seg = run_recipe("ct-lungs", flipped).array[:, :, ::-1]
    assert dice(seg == 1, truth == 1) > 0.95 and dice(seg == 2, truth == 2) > 0.95


def test_ct_bone_fills_marrow_but_not_the_inside_of_the_skull() -> None:
    # axial slices of a head (skull ring around 30 HU brain), the skull base, then a
    # vertebra-like ring whose 9 cm^2 cavity is marrow; 0.5 mm pixels, 3 mm slices
    z, y, x = np.mgrid[:12, :300, :300]
    r = np.hypot(y - 150, x - 150) * 0.5  # mm
    hu = np.where(r < 70, 30.0, -1000.0)
    skull = (r >= 60) & (r < 66)
    head = z < 8
    hu[head & skull] = 1000.0
    hu[(z == 8) & (r < 66)] = 1000.0
    head |= z == 8
    vertebra = ~head & (r >= 17) & (r < 22)
    hu[vertebra] = 800.0
    marrow = ~head & (r < 17)
    hu[marrow] = 60.0
    ct = MedicalImage(hu, spacing=(0.5, 0.5, 3.0), modality="CT")
    bone = run_recipe("ct-bone", ct).array == 1
    brain = (z < 8) & (r < 58)
    assert bone[brain].mean() < 0.01  # 113 cm^2 of brain: not marrow
    assert bone[marrow & (r < 15)].mean() > 0.99  # the vertebra's marrow is filled
    assert bone[head & (r > 61) & (r < 65)].all()


@pytest.mark.realdata
def test_ct_bone_on_a_head_ct_is_the_skull(shared_data: Path) -> None:
    ct = read_image(shared_data / "dicom-samples" / "693_UNCR.dcm")
    bone = run_recipe("ct-bone", ct).array == 1
    assert bone.any() and np.mean(ct.array[bone] < 120) < 0.1  # measured 0.02 (0.77 before)


def test_ct_tissue_recipes_partition_by_hu() -> None:
    ct, _ = chest_phantom()
    fat = run_recipe("ct-fat", ct).array == 1
    soft = run_recipe("ct-soft-tissue", ct).array == 1
    assert not (fat & soft).any()
    assert np.all(ct.array[soft] >= -29) and np.all(ct.array[soft] <= 150)


def test_mri_head_and_brain_on_phantom() -> None:
    mr, truth = head_phantom()
    head = run_recipe("mri-head", mr).array == 1
    assert dice(head, truth > 0) > 0.9
    brain = run_recipe("mri-brain", mr).array == 1
    assert dice(brain, truth == 2) > 0.85


def test_nan_pixels_are_refused_with_their_count() -> None:
    from medlabel.segment.bundle import load_segmentation_bundle

    mr, _ = head_phantom()
    values = mr.array.astype(np.float32)
    values[0, 0, :3] = np.nan
    bad = mr.with_array(values)
    with pytest.raises(
        MedlabelError, match=rf"NaN or infinite values \(3 of {values.size} pixels\)"
    ):
        run_recipe("mri-head", bad)
    ct, _ = chest_phantom()
    ct_values = ct.array.astype(np.float32)
    ct_values[5, 20, 20:30] = np.nan
    ct_values[6, 20, 20] = -np.inf
    for recipe in ("ct-body", "ct-lungs", "ct-bone", "ct-fat", "ct-soft-tissue"):
        with pytest.raises(MedlabelError, match=r"NaN or infinite values \(11 of "):
            run_recipe(recipe, ct.with_array(ct_values))
    xray = np.full((64, 64), 0.5, np.float32)
    xray[10, :7] = np.nan
    with pytest.raises(MedlabelError, match=r"\(7 of 4096 pixels\)"):
        run_recipe("cxr-lungs-classical", MedicalImage(xray))
    crop = MedicalImage(np.full((36, 50, 36), 100.0, np.float32))
    crop.array[5, 5, 5] = np.inf
    with pytest.raises(MedlabelError, match=r"\(1 of 64800 pixels\)"):
        load_segmentation_bundle("mri-hippocampus").predict(crop)


def test_cxr_classical_on_two_dark_fields() -> None:
    yy, xx = np.mgrid[:256, :256]
    img = np.full((256, 256), 200.0)
    right = ((yy - 128) / 80) ** 2 + ((xx - 80) / 36) ** 2 < 1
    left = ((yy - 128) / 80) ** 2 + ((xx - 176) / 36) ** 2 < 1
    img[right | left] = 60
    seg = run_recipe("cxr-lungs-classical", MedicalImage(img, modality="DX")).array
    assert dice(seg == 1, right) > 0.9 and dice(seg == 2, left) > 0.9


def test_rgb_xray_and_single_slice_volume_are_accepted() -> None:
    yy, xx = np.mgrid[:128, :128]
    grey = np.full((128, 128), 200, np.uint8)
    grey[((yy - 64) / 40) ** 2 + ((xx - 40) / 18) ** 2 < 1] = 60
    grey[((yy - 64) / 40) ** 2 + ((xx - 88) / 18) ** 2 < 1] = 60
    rgb = MedicalImage(np.stack([grey] * 3, axis=-1), spacing=(0.5, 0.5))
    seg = run_recipe("cxr-lungs-classical", rgb)
    assert seg.array.shape == (128, 128) and seg.spacing == (0.5, 0.5)
    vol = MedicalImage(grey[None], spacing=(0.5, 0.5, 1.0), origin=(1, 2, 3))
    seg3 = run_recipe("cxr-lungs-classical", vol)
    assert seg3.array.shape == (1, 128, 128) and same_grid(seg3, vol)
    np.testing.assert_array_equal(seg3.array[0], seg.array)


def test_bad_inputs_get_clear_errors() -> None:
    ct, _ = chest_phantom()
    with pytest.raises(MedlabelError, match="unknown recipe"):
        run_recipe("ct-liver", ct)
    with pytest.raises(MedlabelError, match="made for MR"):
        run_recipe("mri-brain", ct)
    with pytest.raises(MedlabelError, match="works on 3D"):
        run_recipe("ct-lungs", MedicalImage(np.zeros((8, 8)), modality="CT"))
    with pytest.raises(MedlabelError, match="works on 2D"):
        run_recipe("cxr-lungs-classical", MedicalImage(np.zeros((4, 8, 8))))
    mr_values = MedicalImage(np.full((4, 16, 16), 300, np.int16), modality="CT")
    with pytest.raises(MedlabelError, match="Hounsfield"):
        run_recipe("ct-body", mr_values)


@pytest.mark.realdata
def test_ct_lungs_agree_with_totalsegmentator(shared_data: Path) -> None:
    folder = shared_data / "ct-abdomen"
    ct = read_image(folder / "example_ct_sm.nii.gz")
    truth = read_label(folder / "example_seg.nii.gz", reference=ct).array
    seg = run_recipe("ct-lungs", ct)
    assert same_grid(seg, ct)
    right = mask_metrics(seg.array == 1, np.isin(truth, (12, 13, 14)), ct.spacing)
    left = mask_metrics(seg.array == 2, np.isin(truth, (10, 11)), ct.spacing)
    assert right["dice"] > 0.93 and left["dice"] > 0.9  # measured 0.964 / 0.948
    bone_truth = np.isin(truth, (*range(25, 51), *range(69, 79), *range(91, 117)))
    assert dice(run_recipe("ct-bone", ct).array == 1, bone_truth) > 0.78  # measured 0.82


@pytest.mark.realdata
def test_recipe_on_dicom_series_keeps_its_geometry(shared_data: Path) -> None:
    ct = read_image(shared_data / "ct-abdomen" / "dicom-series")
    seg = run_recipe("ct-body", ct)
    assert same_grid(seg, ct) and seg.array.dtype == np.uint8
    assert 0.2 < seg.array.mean() < 0.8


@pytest.mark.realdata
def test_cxr_classical_on_jsrt_sample(shared_data: Path) -> None:
    folder = shared_data / "jsrt-lungs-224"
    scores = []
    for path in sorted((folder / "images").glob("*.png"))[:20]:
        seg = run_recipe("cxr-lungs-classical", read_image(path)).array
        mask = read_label(folder / "masks" / path.name).array
        scores.append(dice(seg > 0, np.isin(mask, (150, 200))))
    assert np.median(scores) > 0.8


@pytest.mark.realdata
def test_mask_of_real_dicom_series_lines_up_with_simpleitk(
    shared_data: Path, tmp_path: Path
) -> None:
    import SimpleITK as sitk

    from medlabel.io import write_image

    folder = shared_data / "ct-abdomen" / "dicom-series"
    out = tmp_path / "body.nii.gz"
    write_image(run_recipe("ct-body", read_image(folder)), out)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ref, mask = reader.Execute(), sitk.ReadImage(str(out))
    assert mask.GetSize() == ref.GetSize()
    np.testing.assert_allclose(mask.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(mask.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(mask.GetDirection(), ref.GetDirection(), atol=1e-6)
    # and the body really is where SimpleITK sees tissue
    hu = sitk.GetArrayFromImage(ref)
    body = sitk.GetArrayFromImage(mask) == 1
    assert np.median(hu[body]) > -200 and np.median(hu[~body]) < -900
