"""I/O and preprocessing speed: medlabel against SimpleITK, pydicom, nibabel and MONAI.

Each task is done by every tool in the same run on the same files; the ratio column is the
tool's median time divided by medlabel's (above 1: medlabel is faster).

Run: ``make bench`` (or ``python benchmarks/bench_io.py [--repeat N]``; ``--repeat N`` times
every task N times instead of its default 3 to 10, after the usual warm-up run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, plural, require_data, timeit, write_results
from medlabel.io import read_image
from medlabel.io.dicom import read_dicom
from medlabel.preprocess import resample_to_spacing, window, zscore


def pydicom_series(folder: Path) -> np.ndarray:
    """The plain way: read every file, sort by position along the normal, rescale, stack."""
    slices = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    iop = np.asarray(slices[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    return np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices]
    )


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def compare(task: str, tools: dict[str, Callable[[], Any]], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for tool, func in tools.items():
        stats = timeit(func, repeat=repeat)
        rows.append({"task": task, "tool": tool, **stats})
        print(f"{task:42s} {tool:28s} {stats['median_s']:.4f} s", flush=True)
    base = rows[0]["median_s"]
    for row in rows:
        row["ratio"] = row["median_s"] / base
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed runs per task and tool (default: 3 to 10 depending on the task)",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> Path:
    """Time every task; ``argv`` as on the command line (``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    data = require_data(
        "ct-abdomen/dicom-series", "ct-abdomen/example_ct_sm.nii.gz", "msd-hippocampus/imagesTr"
    )

    def times(default: int) -> int:
        return args.repeat or default

    rows: list[dict[str, Any]] = []
    series = data / "ct-abdomen" / "dicom-series"
    rows += compare(
        "read 20-slice JPEG-2000 CT series",
        {
            "medlabel": lambda: read_image(series),
            "medlabel (1 thread)": lambda: read_dicom(series, workers=1),
            "SimpleITK ImageSeriesReader": lambda: sitk_series(series),
            "pydicom loop": lambda: pydicom_series(series),
        },
        repeat=times(5),
    )
    ct = data / "ct-abdomen" / "example_ct_sm.nii.gz"
    rows += compare(
        "read NIfTI CT 122x101x30",
        {
            "medlabel": lambda: read_image(ct),
            "SimpleITK": lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(ct))),
            "nibabel": lambda: np.asarray(nib.load(ct).dataobj),
        },
        repeat=times(10),
    )
    hippo = sorted((data / "msd-hippocampus" / "imagesTr").glob("*.nii.gz"))[:50]
    rows += compare(
        "read 50 hippocampus MRI NIfTI",
        {
            "medlabel": lambda: [read_image(p) for p in hippo],
            "SimpleITK": lambda: [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in hippo],
            "nibabel": lambda: [np.asarray(nib.load(p).dataobj) for p in hippo],
        },
        repeat=times(3),
    )
    rows += _preprocess_rows(read_image(series), times)
    notes = (
        "medlabel reads DICOM with pydicom + pylibjpeg-openjpeg, decoding compressed slices in "
        "forked worker processes; NIfTI with nibabel (plus a truncation check and SimpleITK's "
        "geometry rules); NRRD/MHA with SimpleITK. The pydicom loop does no validation (no gap, "
        "tilt or mixed-series checks) and gives float64; plain nibabel does no truncation check. "
        + (
            f"Median and min of {plural(args.repeat, 'timed run')} after one warm-up run."
            if args.repeat
            else "Median and min of 3 to 10 timed runs (by task) after one warm-up run."
        )
    )
    md = write_results("io", rows, notes)
    print(f"results: {md}")
    return md


def _preprocess_rows(ct: Any, times: Callable[[int], int]) -> list[dict[str, Any]]:
    import torch
    from monai.transforms import NormalizeIntensity, ScaleIntensityRange, Spacing

    torch.set_num_threads(2)
    meta_tensor = _monai_image(ct)
    spacing = Spacing(pixdim=(1.5, 1.5, 3.0), mode="bilinear")
    scale = ScaleIntensityRange(a_min=-1000, a_max=500, b_min=0.0, b_max=1.0, clip=True)
    norm = NormalizeIntensity()
    rows = compare(
        "resample 512x512x20 CT to 1.5x1.5x3 mm",
        {
            "medlabel (SimpleITK linear)": lambda: resample_to_spacing(ct, (1.5, 1.5, 3.0)),
            "MONAI Spacing (bilinear)": lambda: spacing(meta_tensor),
        },
        repeat=times(5),
    )
    rows += compare(
        "lung window 512x512x20 CT",
        {
            "medlabel window": lambda: window(ct, "lung"),
            "MONAI ScaleIntensityRange": lambda: scale(meta_tensor),
        },
        repeat=times(10),
    )
    rows += compare(
        "z-score 512x512x20 CT",
        {
            "medlabel zscore": lambda: zscore(ct),
            "MONAI NormalizeIntensity": lambda: norm(meta_tensor),
        },
        repeat=times(10),
    )
    return rows


def _monai_image(img: Any) -> Any:
    """The same CT as a MONAI MetaTensor (channel-first, x-y-z order, RAS affine)."""
    from monai.data import MetaTensor

    arr = np.ascontiguousarray(img.array.transpose(2, 1, 0))[None].astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine()
    return MetaTensor(arr, affine=affine)


if __name__ == "__main__":
    main()
