"""The command line: info/convert/preprocess/preview, and one clear line for every bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.image import MedicalImage
from medlabel.io import read_image, write_image

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------------------------ geometry
def check_info_against_sitk(folder: Path) -> None:
    result = run("info", folder, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    ref = sitk_series(folder)
    assert info["size"] == list(ref.GetSize())
    np.testing.assert_allclose(info["spacing"], ref.GetSpacing(), rtol=1e-9)
    np.testing.assert_allclose(info["origin"], ref.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(info["direction"], ref.GetDirection(), atol=1e-6)
    arr = sitk.GetArrayFromImage(ref)
    assert info["min"] == arr.min() and info["max"] == arr.max()
    assert info["dtype"] == str(arr.dtype)


def check_convert_against_sitk(folder: Path, out: Path) -> None:
    result = run("convert", folder, out)
    assert result.exit_code == 0, result.output
    ref = sitk_series(folder)
    written = sitk.ReadImage(str(out))
    assert written.GetSize() == ref.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), ref.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(ref))
    if out.name.endswith((".nii", ".nii.gz")):
        # what 3D Slicer and nibabel see: the RAS affine is the LPS one with x and y negated
        img = read_image(folder)
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine()
        np.testing.assert_allclose(nib.load(out).affine, ras, atol=1e-4)


def test_info_and_convert_synthetic_oblique_series(make_series, tmp_path):
    make_series(n=5, step=1.5, iop=(0.8660254, 0.5, 0, -0.35355339, 0.61237244, 0.70710678))
    check_info_against_sitk(tmp_path / "series")
    for ext in ("nii.gz", "nrrd", "mha"):
        check_convert_against_sitk(tmp_path / "series", tmp_path / f"out.{ext}")


@pytest.mark.realdata
def test_info_and_convert_real_ct_series(shared_data, tmp_path):
    folder = shared_data / "ct-abdomen" / "dicom-series"
    check_info_against_sitk(folder)
    check_convert_against_sitk(folder, tmp_path / "ct.nii.gz")


def test_info_lists_series_of_a_mixed_folder(make_series, tmp_path):
    make_series("mixed", n=3, series_uid="1.2.3.10")
    make_series("mixed", n=2, series_uid="1.2.3.20", prefix="B")
    result = run("info", tmp_path / "mixed", "--json")
    assert result.exit_code == 0
    listing = json.loads(result.stdout)["series"]
    assert {s["uid"] for s in listing} == {"1.2.3.10", "1.2.3.20"}
    result = run("info", tmp_path / "mixed", "--series", "1.2.3.20", "--json")
    assert json.loads(result.stdout)["size"][2] == 2


def test_info_medmnist_summary(tmp_path):
    path = tmp_path / "toy.npz"
    np.savez(
        path,
        train_images=np.zeros((5, 28, 28), np.uint8),
        train_labels=np.array([[0], [1], [1], [0], [1]]),
    )
    result = run("info", path, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["splits"]["train"]["labels"] == {"0": 2, "1": 3}
    result = run("info", path, "--index", "2", "--split", "train", "--json")
    assert json.loads(result.stdout)["size"] == [28, 28]


def test_info_says_when_a_file_gives_no_pixel_size(tmp_path):
    from PIL import Image

    arr = np.zeros((8, 10), np.uint8)
    Image.fromarray(arr).save(tmp_path / "plain.png")
    Image.fromarray(arr).save(tmp_path / "screen.jpg", dpi=(96, 96))
    Image.fromarray(arr).save(tmp_path / "scan.tif", dpi=(300, 300))
    plain = json.loads(run("info", tmp_path / "plain.png", "--json").stdout)
    assert plain["spacing_known"] is False and "1 assumed" in plain["warnings"][0]
    screen = json.loads(run("info", tmp_path / "screen.jpg", "--json").stdout)
    assert screen["spacing"] == pytest.approx([25.4 / 96] * 2)
    assert screen["spacing_known"] is False and "screen default" in screen["warnings"][0]
    scan = json.loads(run("info", tmp_path / "scan.tif", "--json").stdout)
    assert "spacing_known" not in scan and "warnings" not in scan
    # a resized copy of an image without a pixel size: relative spacing, no dpi at all
    resized = run("preprocess", tmp_path / "plain.png", tmp_path / "small.png", "--size", "4,5")
    assert resized.exit_code == 0, resized.output
    small = json.loads(run("info", tmp_path / "small.png", "--json").stdout)
    assert small["spacing"] == pytest.approx([2.5, 1.6]) and small["spacing_known"] is False
    assert "no physical pixel size" in small["warnings"][0]
    assert "screen" not in small["warnings"][0]


def test_a_4d_file_needs_a_volume_index(tmp_path):
    series = np.arange(3 * 4 * 5 * 6, dtype=np.int16).reshape(3, 4, 5, 6)
    sitk.WriteImage(sitk.GetImageFromArray(series, isVector=False), str(tmp_path / "t.nii.gz"))
    assert_one_line_error(run("info", tmp_path / "t.nii.gz"), "3 volumes", "--index 0..2")
    result = run("info", tmp_path / "t.nii.gz", "--index", "2", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["size"] == [6, 5, 4]
    result = run("convert", tmp_path / "t.nii.gz", tmp_path / "v1.nrrd", "--index", "1")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_image(tmp_path / "v1.nrrd").array, series[1])


# ------------------------------------------------------------------------------ preprocess
def ct_phantom(tmp_path: Path) -> Path:
    _z, y, x = np.mgrid[:16, :40, :40]
    body = ((y - 20) ** 2 + (x - 20) ** 2 < 15**2).astype(np.int16)
    arr = np.where(body, 40, -1000).astype(np.int16)
    arr[:, 18:22, 18:22] = 700  # "bone"
    img = MedicalImage(arr, spacing=(0.8, 0.8, 2.5), origin=(10, -5, 3), modality="CT")
    path = tmp_path / "ct.nii.gz"
    write_image(img, path)
    return path


def test_preprocess_window_resample_and_saved_pipeline(tmp_path):
    src = ct_phantom(tmp_path)
    out = tmp_path / "pre.nii.gz"
    steps = tmp_path / "steps.json"
    result = run(
        "preprocess",
        src,
        out,
        "--spacing",
        "1.6,1.6,2.5",
        "--window",
        "bone",
        "--save-pipeline",
        steps,
    )
    assert result.exit_code == 0, result.output
    img = read_image(out)
    assert img.size == (20, 20, 16)
    assert img.spacing == pytest.approx((1.6, 1.6, 2.5))
    assert img.array.min() >= 0.0 and img.array.max() <= 1.0
    # re-applying the saved pipeline gives the same voxels: one code path for train and infer
    again = tmp_path / "again.nii.gz"
    assert run("preprocess", src, again, "--pipeline", steps).exit_code == 0
    np.testing.assert_array_equal(read_image(again).array, img.array)


def test_preprocess_png_output_of_an_xray(tmp_path):
    arr = (np.outer(np.linspace(0, 1, 64), np.linspace(0, 1, 48)) * 4000).astype(np.uint16)
    src = tmp_path / "xray.png"
    write_image(MedicalImage(arr, spacing=(0.2, 0.2), modality="DX"), src)
    out = tmp_path / "xray_clahe.png"
    result = run("preprocess", src, out, "--clahe", "--size", "32,32")
    assert result.exit_code == 0, result.output
    img = read_image(out)
    assert img.size == (32, 32) and img.dtype == np.uint8
    assert img.spacing == pytest.approx((0.3, 0.4))


def test_preview_with_mask(tmp_path):
    src = ct_phantom(tmp_path)
    mask = read_image(src).array > 500
    mask_path = tmp_path / "mask.nii.gz"
    write_image(read_image(src).with_array(mask.astype(np.uint8), is_label=True), mask_path)
    out = tmp_path / "preview.png"
    result = run("preview", src, out, "--mask", mask_path, "--window", "bone", "--slices", "4")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


# ------------------------------------------------------------------------------ bad input
def test_missing_path(tmp_path):
    assert_one_line_error(run("info", tmp_path / "nope.nii.gz"), "nope.nii.gz", "no such file")


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert_one_line_error(run("info", path), "notes.txt", "unknown file type")


def test_corrupt_nifti(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    before = digest(tmp_path)
    assert_one_line_error(run("convert", path, tmp_path / "out.nrrd"), "broken.nii.gz")
    assert digest(tmp_path) == before  # input unchanged, no output, no temp file left


def test_corrupt_dicom_file(make_series, tmp_path):
    paths = make_series(n=1)
    paths[0].write_bytes(paths[0].read_bytes()[:200])
    assert_one_line_error(run("info", paths[0]), paths[0].name)


def test_truncated_pixel_buffer(make_series, tmp_path):
    paths = make_series(n=1, shape=(64, 64))
    paths[0].write_bytes(paths[0].read_bytes()[:-2000])
    assert_one_line_error(run("info", paths[0]), paths[0].name, "truncated")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("convert", tmp_path / "empty", tmp_path / "x.nii.gz"), "empty")


def test_mixed_series_folder(make_series, tmp_path):
    make_series("mixed", n=3, series_uid="1.2.3.10")
    make_series("mixed", n=2, series_uid="1.2.3.20", prefix="B")
    result = run("convert", tmp_path / "mixed", tmp_path / "x.nii.gz")
    assert_one_line_error(result, "mixed", "2 series", "--series")
    assert not (tmp_path / "x.nii.gz").exists()


def test_mismatched_mask_geometry(tmp_path):
    src = ct_phantom(tmp_path)
    img = read_image(src)
    shifted = MedicalImage(
        np.zeros(img.array.shape, np.uint8), spacing=img.spacing, origin=(0, 0, 0), is_label=True
    )
    mask_path = tmp_path / "mask.nii.gz"
    write_image(shifted, mask_path)
    result = run("preview", src, tmp_path / "p.png", "--mask", mask_path)
    assert_one_line_error(result, "mask.nii.gz", "origin")
    assert not (tmp_path / "p.png").exists()


def test_write_failure_leaves_nothing_behind(tmp_path):
    src = ct_phantom(tmp_path)
    before = set(tmp_path.iterdir())
    result = run("convert", src, tmp_path / "volume.png")  # a 3D volume cannot be a PNG
    assert_one_line_error(result, "volume.png", "2D")
    assert set(tmp_path.iterdir()) == before


def test_refuses_to_overwrite_its_input(tmp_path):
    src = ct_phantom(tmp_path)
    before = digest(tmp_path)
    assert_one_line_error(run("convert", src, src), "overwrite the input")
    assert digest(tmp_path) == before


def test_bad_option_value(tmp_path):
    src = ct_phantom(tmp_path)
    result = run("preprocess", src, tmp_path / "o.nii.gz", "--window", "nonsense")
    assert_one_line_error(result, "nonsense")


# ------------------------------------------------------------------------------ audit fixes
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--tile", "100000"], "--tile: must be 16 to 4096 pixels, got 100000"),
        (["--tile", "0"], "--tile: must be 16 to 4096 pixels, got 0"),
        (["--slices", "0"], "--slices: must be at least 1, got 0"),
        (["--slices", "-3"], "--slices: must be at least 1, got -3"),
        (["--tile", "4096"], "montage of 12 tiles of 4096 px"),  # 200 megapixels
        (["--window", "foo"], "neither a preset (lung, mediastinum"),
        (["--window", "40"], "LEVEL,WIDTH"),
    ],
)
def test_preview_refuses_nonsense_before_writing(tmp_path, args, fragment):
    src = ct_phantom(tmp_path)
    before = set(tmp_path.iterdir())
    result = run("preview", src, tmp_path / "p.png", *args)
    assert_one_line_error(result, fragment)
    assert set(tmp_path.iterdir()) == before


def test_preview_window_level_width(tmp_path):
    src = ct_phantom(tmp_path)
    result = run("preview", src, tmp_path / "p.png", "--window", "40,400", "--tile", "64")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "pixels" in result.stdout


def test_preview_accepts_a_mask_stored_with_flipped_axes(tmp_path):
    # the same voxel centres, rows stored the other way (a LAS NIfTI of an LPS series)
    src = ct_phantom(tmp_path)
    img = read_image(src)
    labels = (img.array > 500).astype(np.uint8)
    flipped = MedicalImage(
        np.ascontiguousarray(labels[:, ::-1, :]),
        spacing=img.spacing,
        origin=tuple(img.index_to_world((0, img.size[1] - 1, 0))),
        direction=(1, 0, 0, 0, -1, 0, 0, 0, 1),
        is_label=True,
    )
    write_image(flipped, tmp_path / "las.nii.gz")
    write_image(img.with_array(labels, is_label=True), tmp_path / "lps.nii.gz")
    out, ref = tmp_path / "las.png", tmp_path / "lps.png"
    assert run("preview", src, ref, "--mask", tmp_path / "lps.nii.gz").exit_code == 0
    result = run("preview", src, out, "--mask", tmp_path / "las.nii.gz")
    assert result.exit_code == 0, result.output
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(ref)))


@pytest.mark.realdata
def test_preview_real_series_with_its_las_segmentation(shared_data, tmp_path):
    ct = shared_data / "ct-abdomen"
    out = tmp_path / "p.png"
    result = run(
        "preview",
        ct / "dicom-series",
        out,
        "--mask",
        ct / "dicom-series-seg.nii.gz",
        "--tile",
        "64",
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_preprocess_gaussian_denoise_needs_no_sigma(tmp_path):
    src = ct_phantom(tmp_path)
    out = tmp_path / "g.nii.gz"
    result = run("preprocess", src, out, "--denoise", "gaussian")
    assert result.exit_code == 0, result.output
    wider = tmp_path / "g2.nii.gz"
    result = run("preprocess", src, wider, "--denoise", "gaussian", "--sigma-mm", "3")
    assert result.exit_code == 0, result.output
    assert read_image(wider).array.std() < read_image(out).array.std()
    result = run("preprocess", src, tmp_path / "m.nii.gz", "--denoise", "median", "--sigma-mm", "3")
    assert_one_line_error(result, "--sigma-mm", "--denoise gaussian")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--percentile", "5"], "--percentile: expected LOWER,UPPER percentiles"),
        (["--percentile", "99,1"], "0 <= LOWER < UPPER <= 100"),
        (["--spacing", "1"], "--spacing: expected 2 or 3 spacings"),
        (["--spacing", "0,1,1"], "spacings must be > 0"),
        (["--size", "0,10"], "whole numbers >= 1"),
        (["--denoise", "wiener"], "'wiener' is not one of gaussian, median, nlm"),
        (["--crop-foreground", "--crop-threshold", "dark"], "auto, otsu, nonzero or a number"),
    ],
)
def test_preprocess_option_values_are_checked_first(tmp_path, args, fragment):
    src = ct_phantom(tmp_path)
    before = set(tmp_path.iterdir())
    assert_one_line_error(run("preprocess", src, tmp_path / "o.nii.gz", *args), fragment)
    assert set(tmp_path.iterdir()) == before


def test_preprocess_refuses_a_resampling_too_large_for_memory(tmp_path):
    src = ct_phantom(tmp_path)
    result = run("preprocess", src, tmp_path / "o.nii.gz", "--spacing", "0.001,0.001,0.001")
    assert_one_line_error(
        result, f"{src}: pipeline step 0 (resample)", "32000 x 32000 x 40000 image", "memory"
    )
    assert not (tmp_path / "o.nii.gz").exists()


def test_pipeline_errors_name_the_input(tmp_path):
    src = ct_phantom(tmp_path)
    result = run("preprocess", src, tmp_path / "o.nii.gz", "--orient", "XYZ")
    assert_one_line_error(result, f"error: {src}: pipeline step 0 (reorient)")
    steps = tmp_path / "bad.json"
    steps.write_text('[{"op": "sharpen"}]')
    result = run("preprocess", src, tmp_path / "o.nii.gz", "--pipeline", steps)
    assert_one_line_error(result, f"error: {steps}: pipeline step 0: unknown op 'sharpen'")


def test_output_under_a_file_is_a_clear_error(tmp_path):
    src = ct_phantom(tmp_path)
    (tmp_path / "somefile.py").write_text("x = 1")
    for command in ("convert", "preprocess"):
        result = run(command, src, tmp_path / "somefile.py" / "x.nii.gz")
        assert_one_line_error(result, "somefile.py is a file, not a folder")
    result = run("preview", src, tmp_path / "somefile.py" / "x.png")
    assert_one_line_error(result, "somefile.py is a file, not a folder")


def one_slice_ct(tmp_path: Path) -> Path:
    yy, xx = np.mgrid[:64, :48]
    arr = (xx * 10 + yy).astype(np.int16)[None]
    path = tmp_path / "slice.nii.gz"
    write_image(MedicalImage(arr, spacing=(0.5, 0.5, 5.0), origin=(1, 2, 3), modality="CT"), path)
    return path


def test_preprocess_resizes_a_one_slice_volume_in_plane(tmp_path):
    src = one_slice_ct(tmp_path)
    out = tmp_path / "small.nii.gz"
    result = run("preprocess", src, out, "--size", "24,32")
    assert result.exit_code == 0, result.output
    img = read_image(out)
    assert img.size == (24, 32, 1)
    assert img.spacing == pytest.approx((1.0, 1.0, 5.0))  # the same 24 x 32 mm field of view
    # a volume of several slices: the message says what the two forms of --size do
    result = run("preprocess", ct_phantom(tmp_path), tmp_path / "v.nii.gz", "--size", "20,20")
    assert_one_line_error(result, "ct.nii.gz", "--size X,Y resizes a 2D image or a one-slice")


@pytest.mark.realdata
def test_preprocess_resizes_a_single_dicom_slice(shared_data, tmp_path):
    src = shared_data / "dicom-samples" / "693_UNCR.dcm"
    out = tmp_path / "small.nii.gz"
    result = run("preprocess", src, out, "--size", "256,256")
    assert result.exit_code == 0, result.output
    before, after = read_image(src), read_image(out)
    assert after.size == (256, 256, 1)
    assert after.spacing[0] * 256 == pytest.approx(before.spacing[0] * 512)


def test_crop_foreground_finds_the_body_in_ct(tmp_path):
    src = ct_phantom(tmp_path)  # air is -1000 HU: nothing is zero
    out = tmp_path / "body.nii.gz"
    result = run("preprocess", src, out, "--crop-foreground")
    assert result.exit_code == 0, result.output
    assert read_image(out).size == (29, 29, 16)  # the disc of radius 15 around (20, 20)
    result = run(
        "preprocess", src, out, "--crop-foreground", "--crop-threshold", "500"
    )  # only the "bone"
    assert result.exit_code == 0, result.output
    assert read_image(out).size == (4, 4, 16)


def test_picture_outputs_say_what_was_stored(tmp_path):
    arr = (np.outer(np.linspace(0, 1, 64), np.linspace(0, 1, 48)) * 4000).astype(np.uint16)
    src = tmp_path / "xray.png"
    write_image(MedicalImage(arr, spacing=(0.2, 0.2), modality="DX"), src)
    result = run("preprocess", src, tmp_path / "o.png", "--percentile", "1,99")
    assert result.exit_code == 0, result.output
    assert "48x64, uint8 (converted from float32)" in result.stdout
    result = run("convert", src, tmp_path / "c.png")
    assert "48x64, uint16)" in result.stdout
