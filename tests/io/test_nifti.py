"""The nibabel fast path for NIfTI gives exactly SimpleITK's geometry and voxels."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medlabel.errors import ReadError
from medlabel.io import nifti as nifti_module
from medlabel.io.nifti import read_nifti


def oblique_affine(spacing=(0.8, 0.9, 2.5), origin=(12.0, -40.0, 7.5)) -> np.ndarray:
    aff = np.eye(4)
    rot = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()
    aff[:3, :3] = rot * np.asarray(spacing)
    aff[:3, 3] = origin
    return aff


def write(path: Path, data: np.ndarray, *, qform=None, sform=None, slope=None, zooms=True) -> Path:
    img = nib.Nifti1Image(data, None)
    chosen = qform if qform is not None else sform
    if zooms and chosen is not None:
        img.header.set_zooms(np.linalg.norm(chosen[:3, :3], axis=0))
    if qform is not None:
        img.set_qform(qform, code=1)
    else:
        img.set_qform(None, code=0)
    if sform is not None:
        img.set_sform(sform, code=2)
    else:
        img.set_sform(None, code=0)
    if slope is not None:
        img.header.set_slope_inter(slope, 5.0)
    nib.save(img, path)
    return path


def assert_like_sitk(path: Path) -> None:
    img = read_nifti(path)
    ref = sitk.ReadImage(str(path))
    assert img.size == ref.GetSize()
    np.testing.assert_allclose(img.spacing, ref.GetSpacing(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(img.origin, ref.GetOrigin(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(img.direction, ref.GetDirection(), rtol=0, atol=1e-6)
    arr = sitk.GetArrayFromImage(ref)
    assert img.array.dtype == arr.dtype
    np.testing.assert_array_equal(img.array, arr)


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(3).integers(-1000, 2000, (7, 6, 5)).astype(np.int16)


def _count_fallbacks(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    original = nifti_module.read_itk

    def spy(path, **kwargs):
        calls.append(path)
        return original(path, **kwargs)

    monkeypatch.setattr(nifti_module, "read_itk", spy)
    return calls


@pytest.mark.parametrize("form", ["qform", "sform", "both"])
def test_fast_path_matches_simpleitk(tmp_path, volume, monkeypatch, form):
    calls = _count_fallbacks(monkeypatch)
    aff = oblique_affine()
    kwargs = {"qform": aff if form in ("qform", "both") else None}
    kwargs["sform"] = aff if form in ("sform", "both") else None
    path = write(tmp_path / f"{form}.nii.gz", volume, **kwargs)
    assert_like_sitk(path)
    assert calls == []  # read by nibabel


def test_disagreeing_qform_and_sform_defer_to_simpleitk(tmp_path, volume, monkeypatch):
    calls = _count_fallbacks(monkeypatch)
    path = write(tmp_path / "x.nii", volume, qform=oblique_affine(), sform=np.diag([2, 2, 2, 1.0]))
    assert_like_sitk(path)
    assert calls == [path]


def test_pixdim_disagreeing_with_sform_defers_to_simpleitk(tmp_path, volume, monkeypatch):
    calls = _count_fallbacks(monkeypatch)
    path = write(tmp_path / "x.nii.gz", volume, sform=oblique_affine(), zooms=False)
    assert_like_sitk(path)
    assert calls == [path]


def test_2d_file_defers_to_simpleitk(tmp_path, monkeypatch):
    calls = _count_fallbacks(monkeypatch)
    path = tmp_path / "flat.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4)), str(path))
    assert read_nifti(path).size == (4, 3)
    assert calls == [path]


def test_scaled_data_defers_to_simpleitk(tmp_path, volume, monkeypatch):
    calls = _count_fallbacks(monkeypatch)
    path = write(tmp_path / "scaled.nii.gz", volume, qform=oblique_affine(), slope=2.0)
    img = read_nifti(path)
    np.testing.assert_allclose(img.array, volume.T * 2.0 + 5.0)
    assert calls == [path]


def test_big_endian_file_gives_native_array(tmp_path, volume):
    path = write(tmp_path / "be.nii", volume.astype(">i2"), qform=oblique_affine())
    img = read_nifti(path)
    assert img.array.dtype.isnative
    assert_like_sitk(path)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_file_is_refused(tmp_path, volume, name):
    path = write(tmp_path / name, np.tile(volume, (8, 8, 8)), qform=oblique_affine())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ReadError) as info:
        read_nifti(path)
    assert name in str(info.value)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(b"not a nifti at all" * 10)
    with pytest.raises(ReadError, match=r"junk\.nii\.gz"):
        read_nifti(path)


@pytest.mark.parametrize(
    ("shape", "slope"), [((64, 48), 1.0), ((5, 6, 7), 2.0), ((5, 6, 7, 2), 1.0)]
)
def test_nan_and_infinite_values_are_kept_where_simpleitk_reads_zero(
    tmp_path: Path, shape: tuple[int, ...], slope: float
) -> None:
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    rest = (0,) * (len(shape) - 2)
    data[(1, 2, *rest)] = np.nan
    data[(0, 3, *rest)] = np.inf
    img = nib.Nifti1Image(data, np.diag([1.0, 2.0, 3.0, 1.0]))
    img.header.set_slope_inter(slope, 0.0)
    path = tmp_path / "holes.nii.gz"
    nib.save(img, path)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.isfinite(itk).all()  # what SimpleITK alone gives: the holes read as numbers
    back = read_nifti(path, index=0 if len(shape) == 4 else None)
    stored = np.asarray(nib.load(path).dataobj)  # scaled as the file says
    expected = stored[..., 0] if len(shape) == 4 else stored
    if len(shape) == 4:  # a 4D volume picked by index: SimpleITK's values, no NaN put back
        assert back.array.shape == expected.T.shape
        return
    assert np.isnan(back.array).sum() == np.isnan(expected).sum() > 0
    assert np.isinf(back.array).sum() == 1
    finite = np.isfinite(expected.T)
    np.testing.assert_allclose(back.array[finite], expected.T[finite], rtol=1e-6)
