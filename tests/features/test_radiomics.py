"""Tests of medlabel.features.radiomics and .table on synthetic phantoms (fast, no real data)."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlabel.errors import GeometryMismatchError, MedlabelError, WriteError
from medlabel.features import (
    FeatureError,
    extract_many,
    extract_radiomics,
    feature_columns,
    params_from_diagnostics,
    write_features,
)
from medlabel.image import MedicalImage

RADIUS = 10.0  # mm
SPHERE_VOLUME = 4 / 3 * math.pi * RADIUS**3
DISC_AREA = math.pi * RADIUS**2
WAVELETS = ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")
ORIGINAL_3D = {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


def ball(shape: Sequence[int], spacing: Sequence[float], radius: float) -> np.ndarray:
    """Centred ball (3D) or disc (2D) of ``radius`` mm; ``spacing`` in ITK order (x, y, z)."""
    step = np.asarray(spacing[::-1], dtype=float)
    centre = (np.asarray(shape) - 1) / 2
    axes = [(np.arange(n) - centre[i]) * step[i] for i, n in enumerate(shape)]
    grids = np.meshgrid(*axes, indexing="ij")
    return sum(g**2 for g in grids) <= radius**2


def phantom(
    region: np.ndarray, spacing: Sequence[float], value: float = 100.0
) -> tuple[MedicalImage, MedicalImage]:
    image = MedicalImage(np.where(region, value, 0.0).astype(np.float32), spacing=tuple(spacing))
    return image, image.with_array(region.astype(np.uint8), is_label=True)


@pytest.fixture(scope="module")
def sphere() -> tuple[MedicalImage, MedicalImage]:
    """A 10 mm sphere of intensity 100 on an anisotropic grid (0.8 x 0.8 x 1.5 mm)."""
    spacing = (0.8, 0.8, 1.5)
    return phantom(ball((24, 36, 36), spacing, RADIUS), spacing)


@pytest.fixture(scope="module")
def textured() -> tuple[MedicalImage, MedicalImage]:
    """Two regions with random texture: label 1 (ball, ~100) and label 2 (cube, ~200)."""
    rng = np.random.default_rng(7)
    labels = np.zeros((20, 24, 24), np.uint8)
    labels[ball((20, 24, 24), (1, 1, 1), 6.0)] = 1
    labels[2:6, 2:6, 2:6] = 2
    values = rng.normal(0, 5, labels.shape) + np.select([labels == 1, labels == 2], [100, 200], 0)
    values[labels == 1] += rng.integers(0, 60, int((labels == 1).sum()))
    image = MedicalImage(values.astype(np.float32), spacing=(1.0, 1.0, 2.0), origin=(5, -3, 10))
    return image, image.with_array(labels, is_label=True)


# ------------------------------------------------------------------------------ phantoms
def test_sphere_intensity_and_volume(sphere: tuple[MedicalImage, MedicalImage]) -> None:
    features = extract_radiomics(*sphere)
    assert {name.split("_")[1] for name in features} == ORIGINAL_3D
    assert all(name.startswith("original_") for name in features)
    assert list(features) == sorted(features)
    assert all(type(v) is float for v in features.values())
    assert features["original_firstorder_Mean"] == 100.0
    assert features["original_firstorder_Maximum"] == 100.0
    assert features["original_firstorder_Minimum"] == 100.0
    assert features["original_shape_MeshVolume"] == pytest.approx(SPHERE_VOLUME, rel=0.02)
    assert features["original_shape_VoxelVolume"] == pytest.approx(SPHERE_VOLUME, rel=0.02)
    # a voxelised sphere's mesh is a little rough: its surface is larger than 4 pi r^2
    assert 1.0 < features["original_shape_SurfaceArea"] / (4 * math.pi * RADIUS**2) < 1.15
    assert features["original_shape_Sphericity"] > 0.85
    assert features["original_shape_Maximum3DDiameter"] == pytest.approx(2 * RADIUS, rel=0.1)


def test_disc_2d_gives_shape2d_features() -> None:
    spacing = (0.5, 0.5)
    image, mask = phantom(ball((60, 60), spacing, RADIUS), spacing)
    features = extract_radiomics(image, mask)
    classes = {name.split("_")[1] for name in features}
    assert classes == ORIGINAL_3D - {"shape"} | {"shape2D"}
    assert features["original_shape2D_MeshSurface"] == pytest.approx(DISC_AREA, rel=0.02)
    assert features["original_shape2D_PixelSurface"] == pytest.approx(DISC_AREA, rel=0.02)
    assert features["original_shape2D_Perimeter"] == pytest.approx(2 * math.pi * RADIUS, rel=0.1)
    assert features["original_shape2D_MaximumDiameter"] == pytest.approx(2 * RADIUS, rel=0.05)
    assert features["original_firstorder_Mean"] == 100.0
    # force2D makes no sense for 2D input: it is ignored rather than dropping an axis
    assert extract_radiomics(image, mask, params={"force2D": True}) == features


def test_single_slice_region_with_force2d_gets_shape2d() -> None:
    spacing = (0.5, 0.5, 3.0)
    disc = ball((60, 60), spacing[:2], RADIUS)
    region = np.zeros((5, 60, 60), bool)
    region[2] = disc
    image, mask = phantom(region, spacing)
    flat = extract_radiomics(image, mask, params={"force2D": True})
    assert "original_shape_MeshVolume" in flat
    native = extract_radiomics(*phantom(disc, spacing[:2]))
    for name in ("PixelSurface", "MeshSurface", "Perimeter", "MaximumDiameter"):
        key = f"original_shape2D_{name}"
        assert flat[key] == pytest.approx(native[key], rel=1e-9)
    without = extract_radiomics(image, mask)
    assert not any("shape2D" in k for k in without)


# ------------------------------------------------------------------------------- labels
def test_label_selection(textured: tuple[MedicalImage, MedicalImage]) -> None:
    image, mask = textured
    two = extract_radiomics(image, mask, label=2)
    assert two["original_firstorder_Mean"] == pytest.approx(200, abs=3)
    assert two["original_shape_VoxelVolume"] == pytest.approx(4 * 4 * 4 * 2.0)
    one = extract_radiomics(image, mask, label=1)
    assert 110 < one["original_firstorder_Mean"] < 150
    assert extract_radiomics(image, mask, params={"label": 2}) == two
    assert extract_radiomics(image, mask, label=1, params={"label": 2}) == one


def test_only_label_is_chosen_automatically() -> None:
    image, mask = phantom(ball((12, 12, 12), (1, 1, 1), 4), (1, 1, 1))
    seven = mask.with_array(mask.array * 7)
    params = {"featureClass": {"firstorder": ["Mean"]}}
    assert extract_radiomics(image, seven, params=params) == {"original_firstorder_Mean": 100.0}


def test_several_labels_need_a_choice(textured: tuple[MedicalImage, MedicalImage]) -> None:
    with pytest.raises(FeatureError, match="mask holds labels 1, 2; choose one"):
        extract_radiomics(*textured)


@pytest.mark.parametrize("label", [3, 0, -1, True, 1.5])
def test_bad_label(textured: tuple[MedicalImage, MedicalImage], label: Any) -> None:
    with pytest.raises(FeatureError) as info:
        extract_radiomics(*textured, label=label)
    if label == 3:
        assert info.value.reason == "label 3 is not in the mask; labels present: 1, 2"
    else:
        assert "label must be a positive integer" in info.value.reason


# ------------------------------------------------------------------------------- errors
def test_grid_mismatch(sphere: tuple[MedicalImage, MedicalImage]) -> None:
    image, mask = sphere
    moved = MedicalImage(mask.array, spacing=(0.8, 0.8, 1.4), is_label=True)
    with pytest.raises(GeometryMismatchError, match="spacing"):
        extract_radiomics(image, moved)
    cropped = MedicalImage(mask.array[1:], spacing=mask.spacing, is_label=True)
    with pytest.raises(GeometryMismatchError, match="size"):
        extract_radiomics(image, cropped)


def test_empty_mask(sphere: tuple[MedicalImage, MedicalImage]) -> None:
    image, mask = sphere
    with pytest.raises(FeatureError, match="mask is empty"):
        extract_radiomics(image, mask.with_array(np.zeros_like(mask.array)))


def test_single_voxel_region_is_a_feature_error() -> None:
    values = np.zeros((6, 6, 6), np.uint8)
    values[3, 3, 3] = 1
    image = MedicalImage(values * 10.0)
    with pytest.raises(FeatureError, match="PyRadiomics cannot measure label 1"):
        extract_radiomics(image, image.with_array(values, is_label=True))


def test_multichannel_image_and_float_mask(sphere: tuple[MedicalImage, MedicalImage]) -> None:
    image, mask = sphere
    rgb = MedicalImage(np.zeros((10, 10, 3), np.uint8), spacing=(1, 1))
    with pytest.raises(FeatureError, match="single-channel"):
        extract_radiomics(rgb, MedicalImage(np.ones((10, 10), np.uint8), spacing=(1, 1)))
    with pytest.raises(FeatureError, match="non-integer"):
        extract_radiomics(image, mask.with_array(mask.array * 0.5))
    as_float = extract_radiomics(
        image,
        mask.with_array(mask.array.astype(np.float32)),
        params={"featureClass": {"shape": []}},
    )
    assert as_float["original_shape_VoxelVolume"] > 0


def test_nan_inside_the_region(sphere: tuple[MedicalImage, MedicalImage]) -> None:
    image, mask = sphere
    values = image.array.copy()
    values[12, 18, 18] = np.nan
    with pytest.raises(
        FeatureError, match=r"NaN or infinite values inside label 1 \(1 of [0-9]+ voxels\)"
    ):
        extract_radiomics(image.with_array(values), mask)


def test_bad_params_file(tmp_path: Path, sphere: tuple[MedicalImage, MedicalImage]) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("setting:\n  binWidth: -3\n")
    with pytest.raises(FeatureError) as info:
        extract_radiomics(*sphere, params=path)
    assert str(info.value) == f"{path}: setting.binWidth: must be greater than 0, got -3"


# -------------------------------------------------------------------------- image types
def test_log_and_wavelet_names(textured: tuple[MedicalImage, MedicalImage]) -> None:
    params = {
        "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.5]}, "Wavelet": {}},
        "featureClass": {"firstorder": ["Mean"]},
    }
    features = extract_radiomics(*textured, label=1, params=params)
    expected = {
        "original_firstorder_Mean",
        "log-sigma-1-0-mm-3D_firstorder_Mean",
        "log-sigma-2-5-mm-3D_firstorder_Mean",
        *(f"wavelet-{d}_firstorder_Mean" for d in WAVELETS),
    }
    assert set(features) == expected
    assert list(features) == sorted(features)


def test_yaml_params_with_filters_in_2d(tmp_path: Path) -> None:
    path = tmp_path / "params.yml"
    path.write_text(
        "imageType:\n  Wavelet: {}\n  LoG:\n    sigma: [1.0]\n"
        "featureClass:\n  firstorder: [Mean, Maximum]\n  glcm: [Contrast]\n"
        "setting:\n  binWidth: 10\n"
    )
    rng = np.random.default_rng(3)
    spacing = (0.5, 0.5)
    region = ball((40, 40), spacing, 6.0)
    image = MedicalImage(rng.normal(100, 20, (40, 40)).astype(np.float32), spacing=spacing)
    features = extract_radiomics(image, image.with_array(region.astype(np.uint8)), params=path)
    assert set(features) == {
        f"{kind}_{name}"
        for kind in ("log-sigma-1-0-mm-3D", "wavelet-LH", "wavelet-HL", "wavelet-HH", "wavelet-LL")
        for name in ("firstorder_Mean", "firstorder_Maximum", "glcm_Contrast")
    }


# ---------------------------------------------------------------------------- diagnostics
def test_diagnostics_round_trip(textured: tuple[MedicalImage, MedicalImage]) -> None:
    params = {"setting": {"binWidth": 10, "label": 2}, "featureClass": {"glcm": ["Contrast"]}}
    full = extract_radiomics(*textured, params=params, include_diagnostics=True)
    diagnostics = {k: v for k, v in full.items() if k.startswith("diagnostics_")}
    assert diagnostics["diagnostics_Versions_PyRadiomics"].startswith("v3")  # type: ignore[union-attr]
    assert diagnostics["diagnostics_Mask-original_VoxelNum"] == 64
    assert isinstance(diagnostics["diagnostics_Configuration_Settings"], str)
    rebuilt = params_from_diagnostics(
        str(diagnostics["diagnostics_Configuration_Settings"]),
        str(diagnostics["diagnostics_Configuration_EnabledImageTypes"]),
    )
    assert rebuilt["setting"]["binWidth"] == 10
    assert rebuilt["setting"]["label"] == 2
    again = extract_radiomics(*textured, params={**rebuilt, "featureClass": {"glcm": ["Contrast"]}})
    assert again == {k: v for k, v in full.items() if not k.startswith("diagnostics_")}
    plain = extract_radiomics(*textured, params=params)
    assert not any(k.startswith("diagnostics_") for k in plain)


def test_pyradiomics_logging_is_quiet(
    textured: tuple[MedicalImage, MedicalImage], caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    with caplog.at_level(logging.DEBUG):
        extract_radiomics(*textured, label=1)
    noisy = [r for r in caplog.records if r.name.startswith(("radiomics", "pykwalify"))]
    assert not [r for r in noisy if r.levelno < logging.WARNING]
    assert not [r for r in noisy if "Sum Average" in r.getMessage()]
    assert (root.level, list(root.handlers)) == before


# ------------------------------------------------------------------------------- batches
def test_extract_many_goes_on_after_failures(
    textured: tuple[MedicalImage, MedicalImage], sphere: tuple[MedicalImage, MedicalImage]
) -> None:
    image, mask = textured
    params = {"featureClass": {"firstorder": ["Mean"]}}
    shifted = MedicalImage(mask.array, spacing=(1.0, 1.0, 2.0), is_label=True)  # origin differs
    empty = mask.with_array(np.zeros_like(mask.array))
    items = [
        ("a", image, mask),
        ("grid", image, shifted),
        ("empty", image, empty),
        ("broken", image, None),
        ("sphere", *sphere),
    ]
    rows = extract_many(iter(items), params=params, progress=False)  # type: ignore[arg-type]
    assert [(r["id"], r["label"]) for r in rows] == [
        ("a", 1),
        ("a", 2),
        ("grid", None),
        ("empty", None),
        ("broken", None),
        ("sphere", 1),
    ]
    assert "error" not in rows[0] and "error" not in rows[5]
    assert rows[1]["original_firstorder_Mean"] == pytest.approx(200, abs=3)
    assert rows[2]["error"].startswith("mask does not lie on the image grid: origin")
    assert rows[3]["error"] == "mask is empty: no voxel carries a label"
    assert rows[4]["error"].startswith("AttributeError: ")
    assert rows[5] == {"id": "sphere", "label": 1, "original_firstorder_Mean": 100.0}


def test_extract_many_label_choices(
    textured: tuple[MedicalImage, MedicalImage], sphere: tuple[MedicalImage, MedicalImage]
) -> None:
    items = [("t", *textured), ("s", *sphere)]
    params = {"featureClass": {"firstorder": ["Mean"]}}
    numpy_two: Any = np.int64(2)  # labels taken from NumPy arrays work too
    rows = extract_many(items, labels=[numpy_two], params=params, progress=False)
    assert rows[0]["label"] == 2 and "original_firstorder_Mean" in rows[0]
    assert type(rows[0]["label"]) is int
    assert rows[1] == {
        "id": "s",
        "label": 2,
        "error": "label 2 is not in the mask; labels present: 1",
    }
    by_label = extract_many(items, label=1, params=params, progress=False)
    assert [(r["id"], r["label"], "error" in r) for r in by_label] == [
        ("t", 1, False),
        ("s", 1, False),
    ]
    by_params = extract_many(items, params={**params, "setting": {"label": 1}}, progress=False)
    assert by_params == by_label
    with pytest.raises(ValueError, match="not both"):
        extract_many(items, label=1, labels=[1])
    with pytest.raises(ValueError, match="labels must be"):
        extract_many(items, labels="some")  # type: ignore[arg-type]
    with pytest.raises(FeatureError, match="unknown setting"):
        extract_many(items, params={"binwidth": 3})


def test_extract_many_progress_bar(
    sphere: tuple[MedicalImage, MedicalImage], capsys: pytest.CaptureFixture[str]
) -> None:
    extract_many([("s", *sphere)], params={"featureClass": {"shape": ["VoxelVolume"]}})
    assert "radiomics" in capsys.readouterr().err


# --------------------------------------------------------------------------------- tables
ROWS: list[dict[str, Any]] = [
    {"id": "b", "label": 2, "original_glcm_Contrast": 0.1 + 0.2, "original_firstorder_Mean": 7.0},
    {"id": "a", "label": None, "error": "mask is empty: no voxel carries a label"},
    {"id": "c, d", "label": 1, "original_firstorder_Mean": float("nan")},
]


def test_feature_columns_are_stable() -> None:
    columns = ["id", "label", "error", "original_firstorder_Mean", "original_glcm_Contrast"]
    assert feature_columns(ROWS) == columns
    assert feature_columns(ROWS[::-1]) == columns
    assert feature_columns([]) == ["id", "label", "error"]


def test_numbered_columns_come_in_numeric_order(tmp_path: Path) -> None:
    """Deep features (``deep_0`` .. ``deep_767``) and numbered radiomics names sort as numbers."""
    rows = [{"id": "x", **{f"deep_{k}": float(k) for k in (100, 2, 10, 0, 1, 11)}}]
    deep = ["deep_0", "deep_1", "deep_2", "deep_10", "deep_11", "deep_100"]
    assert feature_columns(rows) == ["id", "label", "error", *deep]
    write_features(rows, tmp_path / "deep.csv")
    header, values = (tmp_path / "deep.csv").read_text().splitlines()
    assert header.split(",")[3:] == deep
    assert [float(v) for v in values.split(",")[3:]] == [0, 1, 2, 10, 11, 100]
    write_features(rows, tmp_path / "deep.json")
    assert list(json.loads((tmp_path / "deep.json").read_text())[0])[3:] == deep
    names = ["original_firstorder_90Percentile", "log-sigma-10-0-mm-3D_x", "log-sigma-2-0-mm-3D_x"]
    assert feature_columns([dict.fromkeys(names, 0.0)])[3:] == [
        "log-sigma-2-0-mm-3D_x",
        "log-sigma-10-0-mm-3D_x",
        "original_firstorder_90Percentile",
    ]


def test_write_csv(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "features.csv"
    write_features(ROWS, out)
    with out.open(newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == feature_columns(ROWS)
    assert table[1] == ["b", "2", "", "7.0", repr(0.1 + 0.2)]
    assert float(table[1][4]) == 0.1 + 0.2  # full precision
    assert table[2] == ["a", "", "mask is empty: no voxel carries a label", "", ""]
    assert table[3][:4] == ["c, d", "1", "", "nan"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["features.csv"]  # no temp files


def test_write_json(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    write_features(ROWS, out)
    records = json.loads(out.read_text())
    assert records[0] == {
        "id": "b",
        "label": 2,
        "error": None,
        "original_firstorder_Mean": 7.0,
        "original_glcm_Contrast": 0.1 + 0.2,
    }
    assert list(records[0]) == feature_columns(ROWS)
    assert records[1] == {"id": "a", "label": None, "error": ROWS[1]["error"]}
    assert records[2]["original_firstorder_Mean"] is None  # NaN is not JSON


def test_write_numpy_values(tmp_path: Path) -> None:
    rows = [{"id": "n", "label": np.int64(3), "f": np.float32(0.5), "g": np.float64(np.nan)}]
    write_features(rows, tmp_path / "np.json")
    assert json.loads((tmp_path / "np.json").read_text()) == [
        {"id": "n", "label": 3, "error": None, "f": 0.5, "g": None}
    ]
    write_features(rows, tmp_path / "np.csv")
    assert (tmp_path / "np.csv").read_text().splitlines()[1] == "n,3,,0.5,nan"


def test_write_empty_table(tmp_path: Path) -> None:
    write_features([], tmp_path / "none.csv")
    assert (tmp_path / "none.csv").read_text() == "id,label,error\n"
    write_features([], tmp_path / "none.json")
    assert json.loads((tmp_path / "none.json").read_text()) == []


def test_write_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"\.xlsx; use \.csv or \.json") as info:
        write_features(ROWS, tmp_path / "features.xlsx")
    assert isinstance(info.value, MedlabelError)
    assert not list(tmp_path.iterdir())


def test_batch_to_table(tmp_path: Path, textured: tuple[MedicalImage, MedicalImage]) -> None:
    rows = extract_many([("t", *textured)], params={"featureClass": {"glszm": []}}, progress=False)
    out = tmp_path / "glszm.csv"
    write_features(rows, out)
    with out.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["id"], r["label"], r["error"]) for r in table] == [("t", "1", ""), ("t", "2", "")]
    for row, back in zip(rows, table, strict=True):
        for key, value in row.items():
            if key.startswith("original_"):
                assert float(back[key]) == value or (math.isnan(value) and back[key] == "nan")


def test_absurd_bin_count_is_refused_not_crashed():
    import numpy as np
    import pytest

    from medlabel.features import FeatureError, extract_radiomics
    from medlabel.image import MedicalImage

    values = np.zeros((6, 10, 10), np.float32)
    values[1:5, 2:8, 2:8] = np.linspace(0, 730_000, 4 * 6 * 6).reshape(4, 6, 6)
    image = MedicalImage(values)
    mask = image.with_array((values > 0).astype(np.uint8), is_label=True)
    with pytest.raises(FeatureError, match=r"binWidth 25 gives \d+ grey levels"):
        extract_radiomics(image, mask)
    out = extract_radiomics(image, mask, params={"binCount": 32})
    assert out["original_firstorder_Maximum"] == pytest.approx(730_000)


def test_batch_records_unreadable_files(tmp_path):
    import numpy as np

    from medlabel.features import extract_many
    from medlabel.image import MedicalImage
    from medlabel.io import read_image, write_image

    values = np.zeros((6, 10, 10), np.int16)
    values[1:5, 2:8, 2:8] = 50
    image = MedicalImage(values)
    write_image(image, tmp_path / "img.nii.gz")
    write_image(
        image.with_array((values > 0).astype(np.uint8), is_label=True), tmp_path / "m.nii.gz"
    )
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    rows = extract_many(
        [
            (
                "good",
                lambda: read_image(tmp_path / "img.nii.gz"),
                lambda: read_image(tmp_path / "m.nii.gz"),
            ),
            (
                "bad",
                lambda: read_image(tmp_path / "bad.nii.gz"),
                lambda: read_image(tmp_path / "m.nii.gz"),
            ),
        ],
        progress=False,
    )
    assert "error" not in rows[0] and "bad.nii.gz" in rows[1]["error"]
