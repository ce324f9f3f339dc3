"""PyRadiomics' published baseline, reproduced through medlabel (real data; skipped without it).

For every column of ``mri-lesions/pyradiomics-baseline/baseline_<class>.csv`` that belongs to
``brain1`` or ``breast1`` (``brain1``, ``brain1_normalization``, ``brain1_resampling``, ...),
the parameters are rebuilt from that column's ``diagnostics_Configuration_Settings`` and
``diagnostics_Configuration_EnabledImageTypes``, the case is read with ``medlabel.io`` and
measured with :func:`extract_radiomics`, and every ``original_<class>_*`` value must equal the
baseline to 1e-4 relative (1e-9 absolute for values near 0).

The ``<case>_shape2D`` columns were made with PyRadiomics' single-slice test masks
(``<case>_label_2D.nrrd``), which are not in the shared data. They are rebuilt from the 3D
label map (the one slice their ``Mask-corrected_BoundingBox`` names), and the rebuilt slice
must have the SHA-1 that the baseline recorded as ``diagnostics_Mask-original_Hash``, so the
mask is byte-identical to PyRadiomics' own.
"""

from __future__ import annotations

import ast
import csv
import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.features import extract_radiomics, params_from_diagnostics
from medlabel.image import MedicalImage
from medlabel.io import read_image, read_label

CASES = ("brain1", "breast1")
BASELINE = Path("mri-lesions") / "pyradiomics-baseline"
REL_TOL = 1e-4
ABS_TOL = 1e-9

# brain1's original-geometry shape baseline predates PyRadiomics' mesh-based shape release.
MESH_FEATURES = frozenset(
    f"original_shape_{name}"
    for name in ("MeshVolume", "SurfaceArea", "Sphericity", "SurfaceVolumeRatio")
)
MESH_BOUND = 1e-3  # the deviation observed is < 1e-3 relative; more than that is a real failure
MESH_REASON = (
    "baseline_shape.csv column 'brain1' was written by a PyRadiomics development build "
    "(2.0.1b1.post11), before release 2.1.0 made shape mesh-based; released PyRadiomics (3.0.1 "
    "here; a published 3.1.0 run gives the same SurfaceArea 6438.8216 and MeshVolume 16147.512) "
    "meshes brain1's mask slightly differently, so these 4 mesh features differ by < 0.1 % "
    "(PyRadiomics' own test allows 3 %). brain1's other 10 shape features, brain1_resampling "
    "(baseline from 2.1.0) and breast1 match to < 1e-11."
)
KNOWN_DEVIATIONS: dict[tuple[str, str], frozenset[str]] = {("brain1", "shape"): MESH_FEATURES}


def _data_dir() -> Path | None:
    """The shared data folder, by the same rule as ``tests/conftest.py``."""
    env = os.environ.get("MEDLABEL_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return root if root.is_dir() else None


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    """``{column: {row name: value}}`` of one baseline file."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    return {
        column: {row[0]: row[index] for row in rows[1:] if index < len(row)}
        for index, column in enumerate(header)
        if index > 0
    }


@functools.cache
def _baseline(folder: str) -> dict[tuple[str, str], dict[str, str]]:
    """``{(feature class, column): column values}`` for the columns of CASES."""
    out = {}
    for path in sorted(Path(folder).glob("baseline_*.csv")):
        cls = path.stem[len("baseline_") :]
        for column, values in _read_csv(path).items():
            if any(column == case or column.startswith(case + "_") for case in CASES):
                out[(cls, column)] = values
    return out


def _case_of(column: str) -> str:
    return next(case for case in CASES if column == case or column.startswith(case + "_"))


def _scenarios() -> list[Any]:
    root = _data_dir()
    folder = root / BASELINE if root else None
    if folder is None or not folder.is_dir():
        reason = "PyRadiomics baseline not found under the shared data"
        return [pytest.param("none", "none", "all", marks=pytest.mark.skip(reason=reason))]
    params = []
    for cls, column in sorted(_baseline(str(folder))):
        case = _case_of(column)
        variant = column[len(case) + 1 :] or "original"
        ident = f"{case}-{variant}-{cls}"
        if column == case and (case, cls) in KNOWN_DEVIATIONS:
            params.append(pytest.param(column, cls, "main", id=f"{ident}-main"))
            params.append(pytest.param(column, cls, "known", id=f"{ident}-mesh"))
        else:
            params.append(pytest.param(column, cls, "all", id=ident))
    return params


# ------------------------------------------------------------------------------- extraction
@functools.cache
def _case_images(folder: str, case: str) -> tuple[MedicalImage, MedicalImage]:
    root = Path(folder)
    image = read_image(root / f"{case}_image.nrrd")
    return image, read_label(root / f"{case}_label.nrrd", image)


def _sha1(image: MedicalImage) -> str:
    return str(sitk.Hash(image.to_sitk()))


def _slice_index(corrected_box: str) -> int:
    """The z index of a single-slice region, from its ``Mask-corrected_BoundingBox``."""
    return int(ast.literal_eval(corrected_box)[2])  # (x, y, z, size x, size y, size z)


def _single_slice_mask(mask: MedicalImage, corrected_box: str, sha1: str) -> MedicalImage:
    """PyRadiomics' ``<case>_label_2D.nrrd`` on the image grid: one slice of the 3D labels."""
    z = _slice_index(corrected_box)
    one = mask.array[z : z + 1].astype(np.uint32)  # PyRadiomics hashes the UInt32 mask
    assert str(sitk.Hash(sitk.GetImageFromArray(one))) == sha1, "not PyRadiomics' 2D mask"
    labels = np.zeros_like(mask.array)
    labels[z] = mask.array[z]
    return mask.with_array(labels)


def _features(data: Path, column: str, cls: str) -> tuple[dict[str, float], dict[str, str]]:
    folder = data / BASELINE
    config = _baseline(str(folder))[(cls, column)]
    features = _run(
        str(data / "mri-lesions"),
        _case_of(column),
        config["diagnostics_Configuration_Settings"],
        config["diagnostics_Configuration_EnabledImageTypes"],
        config["diagnostics_Configuration_TestCase"],
        config.get("diagnostics_Image-original_Hash", ""),
        config.get("diagnostics_Mask-corrected_BoundingBox", ""),
        config.get("diagnostics_Mask-original_Hash", ""),
    )
    return features, config


@functools.cache
def _run(
    folder: str,
    case: str,
    settings: str,
    image_types: str,
    test_case: str,
    image_hash: str,
    corrected_box: str,
    mask_hash: str,
) -> dict[str, float]:
    image, mask = _case_images(folder, case)
    if image_hash:
        assert _sha1(image) == image_hash, "the image is not the one the baseline was made from"
    if test_case.lower().endswith("_2d"):
        mask = _single_slice_mask(mask, corrected_box, mask_hash)
    elif mask_hash:
        cast = sitk.Cast(mask.to_sitk(), sitk.sitkUInt32)
        assert str(sitk.Hash(cast)) == mask_hash, "the mask is not the one of the baseline"
    params = params_from_diagnostics(settings, image_types)
    return extract_radiomics(image, mask, params=params)


def _relative(value: float, expected: float) -> float:
    if math.isclose(value, expected, rel_tol=0.0, abs_tol=ABS_TOL):
        return 0.0
    return abs(value - expected) / abs(expected) if expected else math.inf


def compare(data: Path, column: str, cls: str) -> dict[str, tuple[float, float, float]]:
    """``{feature: (computed, baseline, relative error)}`` for the class's baseline rows."""
    features, config = _features(data, column, cls)
    prefix = f"original_{cls}_"
    expected = {k: float(v) for k, v in config.items() if k.startswith(prefix)}
    assert expected, f"no {prefix}* rows in the baseline"
    computed = {k: v for k, v in features.items() if k.startswith(prefix)}
    assert set(computed) == set(expected), (
        f"missing: {sorted(set(expected) - set(computed))}, "
        f"extra: {sorted(set(computed) - set(expected))}"
    )
    return {k: (computed[k], e, _relative(computed[k], e)) for k, e in expected.items()}


# -------------------------------------------------------------------------------- the tests
@pytest.mark.realdata
@pytest.mark.parametrize(("column", "cls", "subset"), _scenarios())
def test_matches_pyradiomics_baseline(
    shared_data: Path, column: str, cls: str, subset: str
) -> None:
    result = compare(shared_data, column, cls)
    known = KNOWN_DEVIATIONS.get((_case_of(column), cls), frozenset()) if subset != "all" else set()
    checked = {k: v for k, v in result.items() if (k in known) == (subset == "known")}
    assert checked
    if subset == "known":
        worst = max(rel for _, _, rel in checked.values())
        assert worst < MESH_BOUND, f"mesh features now differ by {worst:.2e} (> {MESH_BOUND})"
        if worst > REL_TOL:
            pytest.xfail(f"max relative error {worst:.1e}: {MESH_REASON}")
        return
    bad = {
        k: f"{got!r} vs baseline {want!r} (rel {rel:.1e})"
        for k, (got, want, rel) in checked.items()
        if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    }
    assert not bad, f"{len(bad)} of {len(checked)} features differ: {bad}"


@pytest.mark.realdata
@pytest.mark.parametrize("case", CASES)
def test_shape2d_of_a_native_2d_slice_matches_baseline(shared_data: Path, case: str) -> None:
    """The same slice as a true 2D image (no force2D) gives the shape2D baseline too."""
    folder = shared_data / BASELINE
    key = ("shape2D", f"{case}_shape2D")
    config = _baseline(str(folder)).get(key)
    if config is None:
        pytest.skip(f"no {key[1]} column in baseline_shape2D.csv")
    image, mask = _case_images(str(shared_data / "mri-lesions"), case)
    z = _slice_index(config["diagnostics_Mask-corrected_BoundingBox"])
    image2d = MedicalImage(image.array[z], spacing=image.spacing[:2])
    mask2d = MedicalImage(mask.array[z], spacing=image.spacing[:2], is_label=True)
    params = params_from_diagnostics(
        config["diagnostics_Configuration_Settings"],
        config["diagnostics_Configuration_EnabledImageTypes"],
    )
    features = extract_radiomics(image2d, mask2d, params=params)
    assert not any(k.startswith("original_shape_") for k in features)
    expected = {k: float(v) for k, v in config.items() if k.startswith("original_shape2D_")}
    assert expected
    for name, want in expected.items():
        assert math.isclose(features[name], want, rel_tol=REL_TOL, abs_tol=ABS_TOL), name
