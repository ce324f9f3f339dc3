"""PyRadiomics parameter sets: read them from YAML/JSON files, check them, rebuild them.

A parameter set is a mapping with up to four sections, exactly as PyRadiomics documents them:
``setting`` (binning, resampling, normalisation, ...), ``imageType`` (``Original``, ``LoG``,
``Wavelet``, ... each with its own setting overrides), ``featureClass`` (which classes, and
optionally which features of each) and ``voxelSetting`` (voxel-based extraction). A flat
mapping of settings such as ``{"binWidth": 25, "label": 2}`` is accepted as a shorthand for
``{"setting": {...}}``.

Unknown sections, settings, image types, feature classes and feature names, and values that
PyRadiomics' own schema rejects, raise :class:`FeatureError` naming the file and the key.
YAML is parsed with ``ruamel.yaml`` (YAML 1.2, the parser PyRadiomics' own validator uses, so
a file means the same here as in ``pyradiomics`` itself).

Example:
    >>> load_params({"binWidth": 10, "label": 2})
    {'setting': {'binWidth': 10, 'label': 2}}
    >>> params_from_diagnostics("{'binWidth': 5, 'label': 1}", "{'Original': {}}")
    {'setting': {'binWidth': 5, 'label': 1}, 'imageType': {'Original': {}}}
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.errors import MedlabelError

__all__ = ["SECTIONS", "FeatureError", "load_params", "params_from_diagnostics"]

#: The top-level sections of a PyRadiomics parameter set.
SECTIONS: tuple[str, ...] = ("setting", "imageType", "featureClass", "voxelSetting")


class FeatureError(MedlabelError):
    """Features cannot be extracted: invalid parameters, an unusable mask, or a failed extraction.

    Example:
        >>> str(FeatureError("params.yaml", "setting.binWidth: must be greater than 0, got -5"))
        'params.yaml: setting.binWidth: must be greater than 0, got -5'
    """


# ----------------------------------------------------------------------------- vocabulary
@functools.cache
def _schema() -> tuple[dict[str, Any], str, str]:
    """PyRadiomics' parameter schema (as parsed by pykwalify) and the paths of its files."""
    import pykwalify.core
    from radiomics import getParameterValidationFiles

    schema_file, schema_funcs = getParameterValidationFiles()
    with _quiet_pykwalify():
        core = pykwalify.core.Core(source_data={}, schema_files=[schema_file])
    return dict(core.schema), schema_file, schema_funcs


def _setting_names() -> list[str]:
    return list(_schema()[0]["mapping"]["setting"]["mapping"])


def _voxel_setting_names() -> list[str]:
    return list(_schema()[0]["mapping"]["voxelSetting"]["mapping"])


def _image_types() -> list[str]:
    from radiomics import getImageTypes

    return list(getImageTypes())


def _feature_classes() -> dict[str, Any]:
    from radiomics import getFeatureClasses

    return dict(getFeatureClasses())


@contextlib.contextmanager
def _quiet_pykwalify() -> Iterator[None]:
    """Run pykwalify quietly: its errors come back as FeatureError, not as log lines.

    pykwalify also loads PyRadiomics' schema functions with the deprecated ``load_module``,
    which warns on every validation; that warning is not ours to show.
    """
    import pykwalify.core  # noqa: F401  (creates the loggers to quieten)

    loggers = [logging.getLogger("pykwalify")] + [
        logger
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("pykwalify.") and isinstance(logger, logging.Logger)
    ]

    def drop(record: logging.LogRecord) -> bool:
        return False

    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


# --------------------------------------------------------------------------------- errors
def _where(key: str, context: str) -> str:
    return f"{context}.{key}" if context else key


def _suggest(name: str, choices: Iterable[str]) -> str:
    options = list(choices)
    folded = {c.lower(): c for c in options}
    if name.lower() in folded:
        return f" (did you mean {folded[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, name: object, choices: Iterable[str], context: str) -> str:
    options = sorted(choices)
    shown = ", ".join(options) if len(options) <= 12 else ", ".join(options[:12]) + ", ..."
    hint = _suggest(str(name), options)
    return f"{_where(str(name), context)}: unknown {kind}{hint}; known: {shown}"


_PYKWALIFY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"size of '(.*?)', less than or equals to min limit\(exclusive\) '(.*?)'"),
        "must be greater than {1}, got {0}",
    ),
    (re.compile(r"size of '(.*?)', less than min limit '(.*?)'"), "must be at least {1}, got {0}"),
    (
        re.compile(r"size of '(.*?)', greater than or equals to max limit\(exclusive\) '(.*?)'"),
        "must be less than {1}, got {0}",
    ),
    (
        re.compile(r"size of '(.*?)', greater than max limit '(.*?)'"),
        "must be at most {1}, got {0}",
    ),
    (re.compile(r"Value '(.*?)' is not of type '(.*?)'"), "must be of type {1}, got {0!r}"),
    (re.compile(r"Value '(.*?)' is not an? (\w+)"), "must be a {1}, got {0}"),
    (re.compile(r"Enum '(.*?)' does not exist.*Enum: (\[.*?\])"), "must be one of {1}, got {0!r}"),
)


def _pykwalify_reason(message: str) -> str:
    """Turn pykwalify's ``Schema validation failed`` text into ``key: reason`` phrases."""
    phrases = []
    for line in message.splitlines():
        line = line.strip()
        if not line.startswith("- "):
            continue
        found = re.search(r"(?:Value )?[Pp]ath: '(/[^']*)'", line)
        key = ".".join(p for p in found.group(1).split("/") if p) if found else ""
        reason = line[2:].rstrip(".")
        for pattern, template in _PYKWALIFY_PATTERNS:
            match = pattern.search(line)
            if match:
                reason = template.format(*match.groups())
                break
        phrases.append(f"{key}: {reason}" if key else reason)
    return "; ".join(phrases) or " ".join(message.split())


# ----------------------------------------------------------------------------- validation
def _plain(value: Any) -> Any:
    """Plain Python containers and scalars (tuples -> lists, NumPy scalars -> numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _mapping(value: Any, context: str, path: Path | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FeatureError(
            path, f"{context}: must be a mapping of names to values, got {type(value).__name__}"
        )
    return dict(value)


def _check_settings(
    values: dict[str, Any], known: list[str], context: str, path: Path | None
) -> None:
    for key in values:
        if key not in known:
            raise FeatureError(path, _unknown("setting", key, known, context))


def _validate(data: Any, path: Path | None) -> dict[str, Any]:
    """Normalise and check a parameter set; raise FeatureError naming ``path`` and the key."""
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise FeatureError(
            path,
            "parameters must be a mapping with sections "
            f"{', '.join(SECTIONS)} (or a flat mapping of settings), got {kind}",
        )
    data = _plain(data)
    keys = set(data)
    settings_known = _setting_names()
    if keys and not keys & set(SECTIONS):  # flat settings shorthand
        for key in data:
            if key not in settings_known:
                raise FeatureError(
                    path, _unknown("setting or section", key, [*settings_known, *SECTIONS], "")
                )
        data = {"setting": data}
    for key in data:
        if key not in SECTIONS:
            extra = " (settings go under 'setting')" if key in settings_known else ""
            message = _unknown("section", key, SECTIONS, "")
            raise FeatureError(path, message.replace("; known", f"{extra}; known", 1))

    out: dict[str, Any] = {}
    if "setting" in data:
        out["setting"] = _mapping(data["setting"], "setting", path)
        _check_settings(out["setting"], settings_known, "setting", path)
    if "imageType" in data:
        image_types = _mapping(data["imageType"], "imageType", path)
        known_types = _image_types()
        for name, custom in list(image_types.items()):
            if name not in known_types:
                raise FeatureError(path, _unknown("image type", name, known_types, "imageType"))
            image_types[name] = _mapping(custom, f"imageType.{name}", path)
            _check_settings(image_types[name], settings_known, f"imageType.{name}", path)
        out["imageType"] = image_types
    if "featureClass" in data:
        classes = _mapping(data["featureClass"], "featureClass", path)
        known_classes = _feature_classes()
        for name, features in classes.items():
            if name not in known_classes:
                raise FeatureError(
                    path, _unknown("feature class", name, known_classes, "featureClass")
                )
            if features is None:
                continue
            where = f"featureClass.{name}"
            if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
                raise FeatureError(path, f"{where}: must be a list of feature names (or empty)")
            names = list(known_classes[name].getFeatureNames())
            for feature in features:
                if feature not in names:
                    raise FeatureError(path, _unknown("feature", feature, names, where))
        out["featureClass"] = classes
    if "voxelSetting" in data:
        out["voxelSetting"] = _mapping(data["voxelSetting"], "voxelSetting", path)
        _check_settings(out["voxelSetting"], _voxel_setting_names(), "voxelSetting", path)

    _check_values(out, path)
    return out


def _check_values(params: dict[str, Any], path: Path | None) -> None:
    """Types and ranges, by PyRadiomics' own schema (pykwalify)."""
    if not params:
        return
    import pykwalify.core
    from pykwalify.errors import PyKwalifyException

    _, schema_file, schema_funcs = _schema()
    try:
        with _quiet_pykwalify():
            core = pykwalify.core.Core(
                source_data=params, schema_files=[schema_file], extensions=[schema_funcs]
            )
            core.validate(raise_exception=True)
    except PyKwalifyException as exc:
        raise FeatureError(path, _pykwalify_reason(str(getattr(exc, "msg", exc)))) from exc
    except (ValueError, TypeError) as exc:  # PyRadiomics' own checks (interpolator, wavelet, ...)
        raise FeatureError(path, f"invalid value: {exc}") from exc


# -------------------------------------------------------------------------------- reading
def _yaml_load(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def _parse(text: str, path: Path) -> Any:
    """Parse JSON or YAML: by extension, else JSON when it looks like JSON, else YAML."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    suffix = path.suffix.lower()
    as_json = suffix == ".json" or (
        suffix not in (".yaml", ".yml") and text.lstrip().startswith("{")
    )
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if suffix == ".json":
                raise FeatureError(
                    path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
                ) from exc
    try:
        return _yaml_load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise FeatureError(path, f"not valid YAML ({where}{problem})") from exc
    except YAMLError as exc:
        raise FeatureError(path, f"not valid YAML ({' '.join(str(exc).split())})") from exc


def load_params(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read and check a PyRadiomics parameter set.

    Args:
        source: a YAML or JSON parameter file (format by extension; other extensions are read
            as JSON when the text starts with ``{``, else as YAML), a mapping with the sections
            ``setting``, ``imageType``, ``featureClass``, ``voxelSetting``, a flat mapping of
            settings, or ``None`` for PyRadiomics' defaults.

    Returns:
        A new dict holding only the sections given (``{}`` for ``None``), with tuples turned
        into lists and empty sections into ``{}``, ready for PyRadiomics.

    Raises:
        FeatureError: missing or unreadable file, invalid YAML/JSON, unknown section, setting,
            image type, feature class or feature, or a value out of range; the message names
            the file (when there is one) and the key.

    Example:
        >>> import json, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "params.json"
        >>> _ = path.write_text(json.dumps({"setting": {"binWidth": 5},
        ...                                 "imageType": {"LoG": {"sigma": [1.0, 2.0]}}}))
        >>> load_params(path)["imageType"]
        {'LoG': {'sigma': [1.0, 2.0]}}
        >>> try:
        ...     load_params({"binWidht": 5})
        ... except FeatureError as exc:
        ...     print(exc.reason.split(";")[0])
        binWidht: unknown setting or section (did you mean 'binWidth'?)
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return _validate(source, None)
    path = Path(source)
    if not path.exists():
        raise FeatureError(path, "no such parameter file")
    if path.is_dir():
        raise FeatureError(path, "is a folder; give a YAML or JSON parameter file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FeatureError(path, "not a text file (YAML or JSON parameter file expected)") from exc
    except OSError as exc:
        raise FeatureError(path, f"cannot read parameter file ({exc.strerror or exc})") from exc
    data = _parse(text, path)
    if data is None:
        raise FeatureError(path, "parameter file is empty")
    return _validate(data, path)


# ---------------------------------------------------------------------------- diagnostics
_RUNTIME_ONLY = ("voxelBased",)  # written by PyRadiomics into the settings, not a parameter


def _literal(text: str, name: str) -> dict[str, Any]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise FeatureError(None, f"{name} is not a Python dict literal: {text[:80]!r}") from exc
    if not isinstance(value, dict):
        raise FeatureError(None, f"{name} must be a dict, got {type(value).__name__}")
    return value


def params_from_diagnostics(settings_repr: str, enabled_image_types_repr: str) -> dict[str, Any]:
    """Rebuild the parameters of a PyRadiomics run from the diagnostics it stored.

    PyRadiomics writes its settings and enabled image types into every result as
    ``diagnostics_Configuration_Settings`` and ``diagnostics_Configuration_EnabledImageTypes``
    (Python dict reprs). They are parsed with :func:`ast.literal_eval` (never ``eval``) and
    checked like any other parameter set. Voxel-based settings move to ``voxelSetting``.

    Args:
        settings_repr: the ``diagnostics_Configuration_Settings`` value.
        enabled_image_types_repr: the ``diagnostics_Configuration_EnabledImageTypes`` value.

    Returns:
        ``{"setting": {...}, "imageType": {...}}`` (plus ``voxelSetting`` when present). The
        feature classes are not part of the diagnostics: the extractor's defaults apply.

    Raises:
        FeatureError: a value is not a dict literal or holds an invalid parameter.

    Example:
        >>> params = params_from_diagnostics(
        ...     "{'binCount': 64, 'resampledPixelSpacing': None, 'kernelRadius': 2}",
        ...     "{'Original': {}, 'LoG': {'sigma': [1.0]}}",
        ... )
        >>> params["setting"], params["voxelSetting"]
        ({'binCount': 64, 'resampledPixelSpacing': None}, {'kernelRadius': 2})
        >>> params["imageType"]
        {'Original': {}, 'LoG': {'sigma': [1.0]}}
    """
    settings = _literal(settings_repr, "diagnostics_Configuration_Settings")
    image_types = _literal(enabled_image_types_repr, "diagnostics_Configuration_EnabledImageTypes")
    voxel_names = set(_voxel_setting_names())
    voxel = {k: settings.pop(k) for k in list(settings) if k in voxel_names}
    for key in _RUNTIME_ONLY:
        settings.pop(key, None)
    params: dict[str, Any] = {"setting": settings, "imageType": image_types}
    if voxel:
        params["voxelSetting"] = voxel
    return _validate(params, None)
