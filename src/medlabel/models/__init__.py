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

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["bundled_models", "list_models", "resolve_model", "user_model_dir", "user_models"]

_HERE = Path(__file__).resolve().parent


def user_model_dir() -> Path:
    """``$MEDLABEL_MODELS`` or ``~/.cache/medlabel/models``."""
    env = os.environ.get("MEDLABEL_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "medlabel" / "models"


def bundled_models() -> list[str]:
    """Names of the bundles shipped inside the package."""
    return sorted(p.name for p in _HERE.iterdir() if (p / "bundle.json").is_file())


def user_models() -> list[str]:
    """Names of the bundles in :func:`user_model_dir` (none when it does not exist)."""
    user = user_model_dir()
    if not user.is_dir():
        return []
    return sorted(p.name for p in user.iterdir() if (p / "bundle.json").is_file())


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundle folder from a path, a user model name, or a bundled model name.

    A path that exists wins (the loader checks that it is a bundle); otherwise the name is
    looked up in the user model folder, then among the bundled models.

    Raises:
        BundleError: a path that does not exist, or neither an existing path nor a known
            model name (the message then lists the models and recipes there are).
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    for folder in (user_model_dir(), _HERE):
        candidate = folder / str(name_or_path)
        if (candidate / "bundle.json").is_file():
            return candidate
    from medlabel.models.files import BundleError
    from medlabel.segment.recipes import RECIPES

    if path.is_absolute() or len(path.parts) > 1:  # a path, not a name: nothing to list
        raise BundleError(path, "no such model folder")

    raise BundleError(
        path,
        "neither a folder nor a known model; bundled models: "
        f"{', '.join(bundled_models()) or 'none'}; user models ({user_model_dir()}): "
        f"{', '.join(user_models()) or 'none'}; recipes: {', '.join(sorted(RECIPES))} "
        "(medlabel models describes them)",
    )


def list_models(recipes: bool = False) -> list[dict[str, Any]]:
    """Every bundle found (bundled and in the user folder) with its card facts, and with
    ``recipes=True`` the classical segmentation recipes too.

    A bundle is listed by its folder name, the name ``--model`` takes (the name it was
    trained under may differ). Unreadable bundle descriptions are listed with an ``error``
    instead of being hidden.
    """
    rows: list[dict[str, Any]] = []
    folders = [("bundled", _HERE / name) for name in bundled_models()]
    folders += [("user", user_model_dir() / name) for name in user_models()]
    for origin, folder in folders:
        try:
            meta = json.loads((folder / "bundle.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            rows.append(
                {"name": folder.name, "origin": origin, "path": str(folder), "error": str(exc)}
            )
            continue
        validation = (meta.get("metrics") or {}).get("validation") or {}
        plan = meta.get("plan") or {}
        if meta.get("kind") == "segmentation":
            rows.append(
                {
                    "name": folder.name,  # what --model takes
                    "origin": origin,
                    "path": str(folder),
                    "kind": "segmentation",
                    "task": f"{plan.get('dims')}D segmentation",
                    "modality": "/".join(meta.get("modalities") or []) or plan.get("modality"),
                    "labels": list((plan.get("classes") or {}).values()),
                    "input": {"size": plan.get("patch_size", [])},
                    "validation_dice": validation.get("mean_dice"),
                    "licence": meta.get("licence"),
                }
            )
            continue
        rows.append(
            {
                "name": folder.name,  # what --model takes
                "origin": origin,
                "path": str(folder),
                "kind": meta.get("kind"),
                "task": meta.get("task"),
                "modality": "/".join(meta.get("modalities") or []) or None,
                "labels": meta.get("class_names", []),
                "input": meta.get("input"),
                "validation_auc": validation.get("auc"),
                "licence": meta.get("licence"),
            }
        )
    if recipes:
        from medlabel.segment.recipes import RECIPES

        for recipe in RECIPES.values():
            rows.append(
                {
                    "name": recipe.name,
                    "origin": "recipe",
                    "kind": "recipe",
                    "task": f"{recipe.dims}D segmentation",
                    "modality": "/".join(recipe.modalities),
                    "labels": list(recipe.labels.values()),
                    "description": recipe.description,
                }
            )
    return rows
