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
