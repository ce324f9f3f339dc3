"""Finding bundles by path, user-folder name or bundled name."""

from __future__ import annotations

from pathlib import Path

from medlabel.models import bundled_models, resolve_model


def test_resolve_prefers_paths_then_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLABEL_MODELS", str(tmp_path / "models"))
    mine = tmp_path / "models" / "my-model"
    mine.mkdir(parents=True)
    (mine / "bundle.json").write_text("{}")
    assert resolve_model("my-model") == mine
    assert resolve_model(mine) == mine
    assert resolve_model("nothing-here") == Path("nothing-here")


def test_bundled_models_are_complete():
    for name in bundled_models():
        folder = resolve_model(name)
        assert (folder / "MODEL_CARD.md").is_file() and (folder / "member-0.onnx").is_file()


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
