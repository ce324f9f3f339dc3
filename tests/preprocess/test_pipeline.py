"""Tests of medlabel.preprocess.pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medlabel.preprocess as pp
from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess.pipeline import OPS, Pipeline

CT_STEPS = [
    {"op": "reorient", "orientation": "LPS"},
    {"op": "resample", "spacing": (1.6, 1.8, 2.0)},
    {"op": "clip", "low": -1000, "high": 1000},
    {"op": "crop_foreground", "threshold": -500, "margin_mm": 2.0},
    {"op": "pad_or_crop", "size": [16, 16, 16]},
    {"op": "window", "preset": "abdomen"},
]


def test_registry_names_every_op() -> None:
    assert set(OPS) == {
        "window",
        "zscore",
        "percentile_scale",
        "clip",
        "clahe",
        "equalize",
        "denoise",
        "n4",
        "resample",
        "reorient",
        "crop_foreground",
        "pad_or_crop",
        "resize",
    }
    assert OPS["clip"] is pp.clip_intensity and OPS["resample"] is pp.resample_to_spacing


def test_pipeline_equals_manual_chain(ct_volume: MedicalImage) -> None:
    out = Pipeline(CT_STEPS)(ct_volume)
    manual = pp.reorient(ct_volume, "LPS")
    manual = pp.resample_to_spacing(manual, (1.6, 1.8, 2.0))
    manual = pp.clip_intensity(manual, -1000, 1000)
    manual = pp.crop_to_foreground(manual, threshold=-500, margin_mm=2.0)
    manual = pp.pad_or_crop(manual, (16, 16, 16))
    manual = pp.window(manual, "abdomen")
    np.testing.assert_array_equal(out.array, manual.array)
    assert out.origin == manual.origin and out.spacing == manual.spacing
    assert out.size == (16, 16, 16) and out.dtype == np.float32
    assert out.metadata == ct_volume.metadata


def test_json_roundtrip_reproduces_output(ct_volume: MedicalImage) -> None:
    pipe = Pipeline(CT_STEPS)
    text = pipe.to_json()
    data = json.loads(text)
    assert data["format"] == "medlabel.preprocess.Pipeline" and data["version"] == 1
    assert data["steps"][1] == {"op": "resample", "spacing": [1.6, 1.8, 2.0]}  # JSON-normalised
    again = Pipeline.from_json(text)
    assert again == pipe and len(again) == len(CT_STEPS)
    np.testing.assert_array_equal(again(ct_volume).array, pipe(ct_volume).array)
    assert Pipeline.from_dict(pipe.to_dict()) == pipe
    assert Pipeline.from_dict(CT_STEPS) == pipe  # a bare list of steps


def test_steps_are_copies() -> None:
    steps = [{"op": "pad_or_crop", "size": [4, 4]}]
    pipe = Pipeline(steps)
    steps[0]["size"] = [8, 8]
    pipe.steps[0]["size"].append(99)
    assert pipe.steps == [{"op": "pad_or_crop", "size": [4, 4]}]


def test_denoise_and_intensity_steps(xray: MedicalImage) -> None:
    pipe = Pipeline(
        [
            {"op": "denoise", "method": "gaussian", "sigma_mm": 0.5},
            {"op": "percentile_scale", "lower": 1, "upper": 99},
            {"op": "clahe", "clip_limit": 0.02},
            {"op": "resize", "size": [32, 32]},
        ]
    )
    out = pipe(xray)
    assert out.size == (32, 32) and out.dtype == np.float32
    assert float(out.array.min()) >= 0.0 and float(out.array.max()) <= 1.0


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([{"op": "sharpen"}], r"step 0: unknown op 'sharpen'"),
        ([{"op": "zscore"}, {"op": "window", "presett": "lung"}], r"step 1 \(window\).*presett"),
        ([{"op": "resample"}], r"step 0 \(resample\).*spacing"),
        ([{"op": "denoise", "method": "wiener"}], r"step 0 \(denoise\).*'wiener'"),
        ([{"op": "denoise", "method": "median", "sigma_mm": 1}], r"step 0 \(denoise\).*sigma_mm"),
        ([{"op": "denoise"}], r"step 0 \(denoise\).*method"),
        ([{"op": "zscore", "mask": np.ones(3)}], r"step 0 \(zscore\).*JSON"),
        ([{"op": "clip", "low": float("nan"), "high": 1}], r"step 0 \(clip\).*JSON"),
        ([{"params": 1}], r"step 0 must be an object with an 'op'"),
        (["zscore"], r"step 0 must be an object"),
    ],
)
def test_invalid_steps_rejected_at_construction(steps: list, match: str) -> None:
    with pytest.raises(PreprocessError, match=match):
        Pipeline(steps)


def test_runtime_errors_name_the_step(label_volume: MedicalImage) -> None:
    pipe = Pipeline([{"op": "reorient"}, {"op": "zscore"}])
    with pytest.raises(PreprocessError, match=r"pipeline step 1 \(zscore\).*label image"):
        pipe(label_volume)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("{not json", "invalid"),
        ('"zscore"', "object or a list"),
        ('{"format": "other", "steps": []}', "not a preprocessing pipeline"),
        ('{"format": "medlabel.preprocess.Pipeline", "version": 99, "steps": []}', "newer"),
    ],
)
def test_from_json_errors(payload: str, match: str) -> None:
    with pytest.raises(PreprocessError, match=match):
        Pipeline.from_json(payload)


def test_empty_pipeline_is_identity(ct_volume: MedicalImage) -> None:
    out = Pipeline([])(ct_volume)
    assert out is ct_volume
    assert repr(Pipeline([{"op": "zscore"}])) == "Pipeline([{'op': 'zscore'}])"
