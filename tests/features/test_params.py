"""Tests of medlabel.features.params: PyRadiomics parameter files, mappings and diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlabel.errors import MedlabelError
from medlabel.features import SECTIONS, FeatureError, load_params, params_from_diagnostics

YAML_TEXT = """\
# PyRadiomics-style parameter file
imageType:
  Original: {}
  LoG:
    sigma: [1.0, 3.0]
  Wavelet: {}
featureClass:
  shape:
  firstorder: []
  glcm: [Contrast, Idm]
setting:
  binWidth: 25
  label: 1
  resampledPixelSpacing: [1, 1, 1]
  interpolator: sitkBSpline
  normalize: true
voxelSetting:
  kernelRadius: 2
"""

EXPECTED = {
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}},
    "featureClass": {"shape": None, "firstorder": [], "glcm": ["Contrast", "Idm"]},
    "setting": {
        "binWidth": 25,
        "label": 1,
        "resampledPixelSpacing": [1, 1, 1],
        "interpolator": "sitkBSpline",
        "normalize": True,
    },
    "voxelSetting": {"kernelRadius": 2},
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ reading
def test_none_means_pyradiomics_defaults() -> None:
    assert load_params(None) == {}


@pytest.mark.parametrize("name", ["params.yaml", "params.yml", "params.txt", "params"])
def test_yaml_file(tmp_path: Path, name: str) -> None:
    assert load_params(_write(tmp_path, name, YAML_TEXT)) == EXPECTED


@pytest.mark.parametrize("name", ["params.json", "params.cfg", "params"])
def test_json_file_by_extension_or_content(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, json.dumps(EXPECTED, indent=2))
    assert load_params(path) == EXPECTED
    assert load_params(str(path)) == EXPECTED


def test_yaml_and_json_give_the_same_parameters(tmp_path: Path) -> None:
    from_yaml = load_params(_write(tmp_path, "p.yaml", YAML_TEXT))
    from_json = load_params(_write(tmp_path, "p.json", json.dumps(from_yaml)))
    assert from_yaml == from_json


def test_sectioned_mapping_is_copied_and_normalised() -> None:
    source = {
        "setting": {"binWidth": np.float64(10.0), "resampledPixelSpacing": (2, 2, 2)},
        "imageType": {"Original": None},
    }
    out = load_params(source)
    assert out == {
        "setting": {"binWidth": 10.0, "resampledPixelSpacing": [2, 2, 2]},
        "imageType": {"Original": {}},
    }
    assert type(out["setting"]["binWidth"]) is float
    out["setting"]["binWidth"] = 1
    assert source["setting"]["binWidth"] == 10.0  # type: ignore[index]


def test_flat_mapping_of_settings_becomes_the_setting_section() -> None:
    assert load_params({"binWidth": 25, "label": 2}) == {"setting": {"binWidth": 25, "label": 2}}
    assert load_params({"label": np.int64(3)}) == {"setting": {"label": 3}}


def test_flat_settings_in_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "flat.yaml", "binCount: 32\nforce2D: true\n")
    assert load_params(path) == {"setting": {"binCount": 32, "force2D": True}}


def test_empty_sections_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.yaml", "setting:\nimageType:\n  Original:\n")
    assert load_params(path) == {"setting": {}, "imageType": {"Original": {}}}


def test_sections_constant() -> None:
    assert SECTIONS == ("setting", "imageType", "featureClass", "voxelSetting")


# ------------------------------------------------------------------------------- errors
def _error(source: object) -> FeatureError:
    with pytest.raises(FeatureError) as info:
        load_params(source)  # type: ignore[arg-type]
    assert isinstance(info.value, MedlabelError)
    return info.value


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope.yaml")
    assert err.path == tmp_path / "nope.yaml"
    assert "no such parameter file" in str(err)


def test_folder_is_not_a_parameter_file(tmp_path: Path) -> None:
    assert "folder" in str(_error(tmp_path))


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "setting:\n  binWidth: [1, 2\n  label: 1\n")
    err = _error(path)
    assert err.path == path
    assert "not valid YAML" in err.reason and "line" in err.reason


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "dup.yaml", "setting:\n  binWidth: 5\n  binWidth: 10\n")
    assert "duplicate" in _error(path).reason


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.json", '{"setting": {"binWidth": 5,}}')
    err = _error(path)
    assert err.path == path
    assert "not valid JSON (line 1, column" in err.reason


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in _error(_write(tmp_path, "empty.yaml", "# nothing\n")).reason


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81binary")
    assert "not a text file" in _error(path).reason


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "list.yaml", "- binWidth\n- 25\n"))
    assert "must be a mapping" in err.reason and "list" in err.reason


def test_unknown_section_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.yaml", "setting:\n  binWidth: 5\nimageTypes:\n  Original: {}\n")
    err = _error(path)
    assert err.path == path
    assert err.reason.startswith("imageTypes: unknown section (did you mean 'imageType'?)")


def test_setting_at_top_level_beside_sections_is_explained() -> None:
    err = _error({"setting": {"label": 1}, "binWidth": 5})
    assert "binWidth: unknown section" in err.reason
    assert "settings go under 'setting'" in err.reason


def test_unknown_setting_with_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.yaml", "setting:\n  binwidth: 5\n")
    err = _error(path)
    assert err.path == path
    assert err.reason.startswith("setting.binwidth: unknown setting (did you mean 'binWidth'?)")


def test_unknown_flat_setting() -> None:
    assert _error({"binWidht": 5}).reason.startswith("binWidht: unknown setting or section")


def test_unknown_setting_inside_an_image_type() -> None:
    err = _error({"imageType": {"LoG": {"sigmas": [1.0]}}})
    assert err.reason.startswith("imageType.LoG.sigmas: unknown setting (did you mean 'sigma'?)")


def test_unknown_image_type() -> None:
    err = _error({"imageType": {"log": {}}})
    assert err.reason.startswith("imageType.log: unknown image type (did you mean 'LoG'?)")


def test_unknown_feature_class_and_feature() -> None:
    err = _error({"featureClass": {"glcmm": None}})
    assert err.reason.startswith("featureClass.glcmm: unknown feature class (did you mean 'glcm'?)")
    err = _error({"featureClass": {"glcm": ["Contrst"]}})
    assert err.reason.startswith("featureClass.glcm.Contrst: unknown feature")
    assert "'Contrast'" in err.reason


def test_feature_list_must_be_a_list_of_names() -> None:
    assert "list of feature names" in _error({"featureClass": {"glcm": "Contrast"}}).reason


def test_section_must_be_a_mapping() -> None:
    assert _error({"setting": [1, 2]}).reason.startswith("setting: must be a mapping")


def test_unknown_voxel_setting() -> None:
    assert "voxelSetting.kernel: unknown setting" in _error({"voxelSetting": {"kernel": 1}}).reason


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ({"binWidth": -5}, "setting.binWidth: must be greater than 0, got -5"),
        ({"binWidth": 0}, "setting.binWidth: must be greater than 0, got 0"),
        ({"binWidth": "wide"}, "setting.binWidth: must be of type float, got 'wide'"),
        ({"label": 0}, "setting.label: must be greater than 0, got 0"),
        ({"label": True}, "setting.label: must be of type int"),
        ({"force2Ddimension": 5}, "setting.force2Ddimension: must be at most 2, got 5"),
        ({"resampledPixelSpacing": 2}, "setting.resampledPixelSpacing: must be a list, got 2"),
        ({"resegmentMode": "abs"}, "setting.resegmentMode: must be one of"),
        ({"distances": [0]}, "setting.distances.0: must be greater than 0, got 0"),
        ({"interpolator": "cubic"}, 'Interpolator value "cubic" not valid'),
        ({"wavelet": "haar2"}, 'Wavelet "haar2" not available'),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, setting: dict, fragment: str) -> None:
    path = _write(tmp_path, "p.json", json.dumps({"setting": setting}))
    err = _error(path)
    assert err.path == path
    assert fragment in err.reason
    assert str(err).startswith(str(path))


def test_bad_value_inside_image_type() -> None:
    err = _error({"imageType": {"LoG": {"sigma": [1.0, -2.0]}}})
    assert "imageType.LoG.sigma.1: must be greater than 0, got -2.0" in err.reason


def test_mapping_errors_have_no_path() -> None:
    err = _error({"setting": {"binWidth": -1}})
    assert err.path is None
    assert str(err) == err.reason


def test_validation_does_not_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"):
        _error({"setting": {"binWidth": -1}})
    assert not [r for r in caplog.records if r.name.startswith("pykwalify")]


# -------------------------------------------------------------------------- diagnostics
def test_params_from_diagnostics_of_a_pyradiomics_run() -> None:
    settings = (
        "{'distances': [1], 'additionalInfo': True, 'resegmentMode': 'sigma', 'force2D': False, "
        "'interpolator': 'sitkBSpline', 'resampledPixelSpacing': None, 'label': 1, "
        "'normalizeScale': 1, 'normalize': False, 'force2Ddimension': 0, 'removeOutliers': None, "
        "'minimumROISize': None, 'minimumROIDimensions': 2, 'preCrop': False, "
        "'resegmentRange': [-3, 3], 'padDistance': 5}"
    )
    params = params_from_diagnostics(settings, "{'Original': {}, 'Wavelet': {'level': 2}}")
    assert set(params) == {"setting", "imageType"}
    assert params["setting"]["resegmentRange"] == [-3, 3]
    assert params["setting"]["resegmentMode"] == "sigma"
    assert params["setting"]["resampledPixelSpacing"] is None
    assert params["imageType"] == {"Original": {}, "Wavelet": {"level": 2}}


def test_params_from_diagnostics_moves_voxel_settings_and_drops_runtime_keys() -> None:
    params = params_from_diagnostics(
        "{'binWidth': 25, 'kernelRadius': 1, 'maskedKernel': True, 'voxelBased': True}",
        "{'Original': {}}",
    )
    assert params["setting"] == {"binWidth": 25}
    assert params["voxelSetting"] == {"kernelRadius": 1, "maskedKernel": True}


def test_params_from_diagnostics_never_evaluates_code() -> None:
    with pytest.raises(FeatureError, match="not a Python dict literal"):
        params_from_diagnostics("__import__('os').getcwd()", "{'Original': {}}")
    with pytest.raises(FeatureError, match="EnabledImageTypes must be a dict"):
        params_from_diagnostics("{}", "['Original']")


def test_params_from_diagnostics_checks_the_values() -> None:
    with pytest.raises(FeatureError, match=r"setting\.binWidth: must be greater than 0"):
        params_from_diagnostics("{'binWidth': -1}", "{'Original': {}}")
    with pytest.raises(FeatureError, match="unknown image type"):
        params_from_diagnostics("{}", "{'Bogus': {}}")
