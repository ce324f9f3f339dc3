"""Models that ship with medlabel, and where user models live.

Each bundled model is a bundle folder inside this package (see
:mod:`medlabel.classify.bundle`), with a ``MODEL_CARD.md`` naming its training data, that
data's licence and the command that trained it. User bundles can be kept in
``$MEDLABEL_MODELS`` (default ``~/.cache/medlabel/models``) and are found by name too.

Example:
    >>> "cxr-pneumonia" in bundled_models() or bundled_models() == []
    True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_models", "resolve_model", "user_model_dir"]

_HERE = Path(__file__).resolve().parent


def user_model_dir() -> Path:
    """``$MEDLABEL_MODELS`` or ``~/.cache/medlabel/models``."""
    env = os.environ.get("MEDLABEL_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "medlabel" / "models"


def bundled_models() -> list[str]:
    """Names of the bundles shipped inside the package."""
    return sorted(p.name for p in _HERE.iterdir() if (p / "bundle.json").is_file())


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundle folder from a path, a user model name, or a bundled model name.

    A path that exists wins; otherwise the name is looked up in the user model folder, then
    among the bundled models. Returns the path unchanged when nothing matches (the loader then
    reports it as not a bundle).
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    for folder in (user_model_dir(), _HERE):
        candidate = folder / str(name_or_path)
        if (candidate / "bundle.json").is_file():
            return candidate
    return path
