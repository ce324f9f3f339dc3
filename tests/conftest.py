"""Shared fixtures: the real data folder (skip when absent), a synthetic DICOM series maker,
and a small mixed archive for the annotation job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medlabel.demo import find_shared_data
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.segment.recipes.ct import chest_phantom

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$MEDLABEL_DATA`` when set, else ``../shared/data`` beside the repo; None if absent."""
    return find_shared_data(REPO)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data set; tests using it skip with a reason when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data not found: set MEDLABEL_DATA or place it at ../shared/data")
    return path


def _unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a / np.linalg.norm(a)


def write_ct_slice(
    path: Path,
    *,
    pixels: np.ndarray,
    ipp: Sequence[float],
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.8, 0.7),
    series_uid: str = "1.2.3.4",
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    photometric: str = "MONOCHROME2",
    modality: str = "CT",
    bits_stored: int = 12,
) -> Path:
    """Write one uncompressed CT-like slice with the given geometry and stored values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.3.9"
    ds.PatientID = "SYNTHETIC-PATIENT-42"
    ds.Modality = modality
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = "2.5"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


SeriesMaker = Callable[..., list[Path]]


@pytest.fixture
def make_series(tmp_path: Path) -> SeriesMaker:
    """Factory writing a synthetic series; slice k holds values ``100 * (k + 1) + pattern``.

    Keyword arguments: ``folder`` (name under tmp_path), ``n``, ``step`` (mm along the normal),
    ``positions`` (explicit offsets along the normal, overriding n/step), ``iop``, ``origin``,
    ``shape`` (rows, cols), ``shuffle_names`` (file names in random order), ``series_uid``,
    ``inplane_drift`` (mm per slice along the row direction: gantry tilt), ``prefix`` (of
    file names), ``volume`` (stored values per slice, overriding the pattern), and any
    :func:`write_ct_slice` argument.
    """

    def make(
        folder: str = "series",
        *,
        n: int = 6,
        step: float = 2.5,
        positions: Sequence[float] | None = None,
        iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
        origin: Sequence[float] = (-20.0, -30.0, 40.0),
        shape: tuple[int, int] = (12, 10),
        shuffle_names: bool = True,
        series_uid: str = "1.2.3.4",
        inplane_drift: float = 0.0,
        prefix: str = "IM",
        volume: np.ndarray | None = None,
        **kwargs: object,
    ) -> list[Path]:
        out = tmp_path / folder
        out.mkdir(parents=True, exist_ok=True)
        row, col = _unit(iop[:3]), _unit(iop[3:])
        normal = np.cross(row, col)
        offsets = list(positions) if positions is not None else [k * step for k in range(n)]
        rng = np.random.default_rng(len(offsets))
        names = rng.permutation(len(offsets)) if shuffle_names else np.arange(len(offsets))
        pattern = np.add.outer(np.arange(shape[0]), np.arange(shape[1])).astype(np.int64)
        paths = []
        for k, off in enumerate(offsets):
            ipp = np.asarray(origin, float) + off * normal + k * inplane_drift * row
            pixels = 100 * (k + 1) + pattern if volume is None else volume[k]
            path = out / f"{prefix}{names[k]:04d}"
            write_ct_slice(
                path,
                pixels=pixels,
                ipp=ipp,
                iop=iop,
                series_uid=series_uid,
                instance=int(names[k]) + 1,
                **kwargs,  # type: ignore[arg-type]
            )
            paths.append(path)
        return paths

    return make


@pytest.fixture
def ct_small() -> Path:
    """pydicom's bundled CT slice (always installed)."""
    return Path(pydicom.data.get_testdata_file("CT_small.dcm"))


def _real_images() -> list[tuple[str, Path | None]]:
    """Every real volume and DICOM file of the shared data, as (id, path)."""
    root = shared_data_dir()
    if root is None:
        return [("no-shared-data", None)]
    files = [root / "ct-abdomen" / "dicom-series"]
    for pattern in ("ct-abdomen/*.nii.gz", "mri-lesions/*.nrrd", "msd-hippocampus/*/*.nii.gz"):
        files += sorted(root.glob(pattern))
    files += sorted(root.glob("dicom-samples/*.dcm"))
    files += sorted(root.glob("jsrt-lungs-224/*/*.png"))[:3]
    files += sorted(root.glob("cxr-pneumonia-224/train/*/*.jpeg"))[:3]
    return [(str(f.relative_to(root)), f) for f in files]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``real_image`` over the real data (one skipped case when it is absent)."""
    if "real_image" in metafunc.fixturenames:
        cases = _real_images()
        metafunc.parametrize("real_image", [c[1] for c in cases], ids=[c[0] for c in cases])


@pytest.fixture
def skip_without_data(real_image: Path | None) -> Path:
    """The parametrised real image, or a skip with the reason when the data is absent."""
    if real_image is None:
        pytest.skip("real data not found: set MEDLABEL_DATA or place it at ../shared/data")
    return real_image


@pytest.fixture
def mixed_archive(tmp_path: Path, make_series: SeriesMaker) -> Path:
    """``archive/`` with a chest CT phantom as NIfTI and as a DICOM series,
    a PNG, a note, and a corrupt NIfTI."""
    root = tmp_path / "archive"
    write_image(chest_phantom()[0], root / "ct" / "chest.nii.gz")
    phantom = chest_phantom()[0]
    hu = np.asarray(phantom.array)
    make_series(
        "archive/dicom/series1",
        n=hu.shape[0],
        step=phantom.spacing[2],
        shape=hu.shape[1:],
        volume=(hu + 1024).clip(0, 4095).astype(np.int64),
        pixel_spacing=phantom.spacing[:2][::-1],
    )
    rng = np.random.default_rng(0)
    write_image(
        MedicalImage((rng.random((64, 64)) * 255).astype(np.uint8)), root / "png" / "photo.png"
    )
    (root / "notes.txt").write_text("not an image")
    (root / "ct" / "corrupt.nii.gz").write_bytes(b"\x1f\x8b broken")
    return root
