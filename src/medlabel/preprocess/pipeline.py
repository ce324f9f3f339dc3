"""A serialisable chain of preprocessing operations.

A :class:`Pipeline` is a list of steps, each a JSON object ``{"op": name, **params}`` naming an
entry of :data:`OPS`. A model bundle stores the pipeline's JSON, so inference re-creates and
applies exactly the preprocessing used for training. Steps are checked when the pipeline is
built (unknown operations, unknown or missing parameters, values JSON cannot hold), not when
the first image arrives.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> pipe = Pipeline([
    ...     {"op": "resample", "spacing": [2.0, 2.0]},
    ...     {"op": "window", "preset": "lung"},
    ... ])
    >>> ct = MedicalImage(np.full((8, 8), -600, np.int16), spacing=(1, 1), modality="CT")
    >>> out = pipe(ct)
    >>> out.size, float(out.array.max())
    ((4, 4), 0.5)
    >>> Pipeline.from_json(pipe.to_json()) == pipe
    True
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess.bias import n4_bias_correction
from medlabel.preprocess.crop import crop_to_foreground, pad_or_crop
from medlabel.preprocess.denoise import check_denoise_params, denoise
from medlabel.preprocess.enhance import clahe, equalize_histogram
from medlabel.preprocess.intensity import clip_intensity, percentile_scale, zscore
from medlabel.preprocess.orient import reorient
from medlabel.preprocess.resample import resample_to_spacing
from medlabel.preprocess.resize import resize
from medlabel.preprocess.window import window

__all__ = ["OPS", "PIPELINE_FORMAT", "PIPELINE_VERSION", "Pipeline"]

#: Operations a pipeline step may name, by their short names.
OPS: dict[str, Callable[..., MedicalImage]] = {
    "window": window,
    "zscore": zscore,
    "percentile_scale": percentile_scale,
    "clip": clip_intensity,
    "clahe": clahe,
    "equalize": equalize_histogram,
    "denoise": denoise,
    "n4": n4_bias_correction,
    "resample": resample_to_spacing,
    "reorient": reorient,
    "crop_foreground": crop_to_foreground,
    "pad_or_crop": pad_or_crop,
    "resize": resize,
}

PIPELINE_FORMAT = "medlabel.preprocess.Pipeline"
PIPELINE_VERSION = 1


def _check_step(index: int, step: Any) -> dict[str, Any]:
    """Validate one step and return a JSON-normalised copy (tuples become lists)."""
    if not isinstance(step, Mapping) or not isinstance(step.get("op"), str):
        raise PreprocessError(
            None, f"pipeline step {index} must be an object with an 'op' name, got {step!r}"
        )
    op = step["op"]
    if op not in OPS:
        valid = ", ".join(OPS)
        raise PreprocessError(None, f"pipeline step {index}: unknown op {op!r}; valid ops: {valid}")
    params = {k: v for k, v in step.items() if k != "op"}
    try:
        normalised = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PreprocessError(
            None, f"pipeline step {index} ({op}): parameters must be plain JSON values: {exc}"
        ) from None
    try:
        inspect.signature(OPS[op]).bind(None, **normalised)
    except TypeError as exc:
        raise PreprocessError(None, f"pipeline step {index} ({op}): {exc}") from None
    if op == "denoise":
        method_params = {k: v for k, v in normalised.items() if k != "method"}
        try:
            check_denoise_params(normalised["method"], method_params)
        except PreprocessError as exc:
            raise PreprocessError(None, f"pipeline step {index} ({op}): {exc.reason}") from None
    return {"op": op, **normalised}


class Pipeline:
    """Ordered, JSON-serialisable preprocessing steps applied as one image-to-image callable.

    Args:
        steps: list of ``{"op": name, **params}`` objects; ``name`` is a key of :data:`OPS`
            and ``params`` are that function's keyword arguments (JSON values only).

    Raises:
        PreprocessError: a step names an unknown op, passes unknown parameters, misses a
            required one, or holds a value JSON cannot represent (the message names the step).

    Example:
        >>> Pipeline([{"op": "zscore"}, {"op": "pad_or_crop", "size": [64, 64]}])
        Pipeline([{'op': 'zscore'}, {'op': 'pad_or_crop', 'size': [64, 64]}])
        >>> Pipeline([{"op": "sharpen"}])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        medlabel.errors.PreprocessError: pipeline step 0: unknown op 'sharpen'; valid ops: ...
    """

    def __init__(self, steps: Sequence[Mapping[str, Any]] = ()) -> None:
        if isinstance(steps, (str, bytes, Mapping)):
            raise PreprocessError(None, "pipeline steps must be a list of step objects")
        self._steps = [_check_step(i, step) for i, step in enumerate(steps)]

    @property
    def steps(self) -> list[dict[str, Any]]:
        """A copy of the steps, as plain JSON-compatible dicts."""
        return copy.deepcopy(self._steps)

    def __call__(self, image: MedicalImage) -> MedicalImage:
        """Apply every step in order.

        Args:
            image: the input image (never modified).

        Returns:
            The preprocessed image.

        Raises:
            PreprocessError: a step cannot be applied (the message names the step).
        """
        out = image
        for index, step in enumerate(self._steps):
            params = {k: v for k, v in step.items() if k != "op"}
            try:
                out = OPS[step["op"]](out, **params)
            except PreprocessError as exc:
                raise PreprocessError(
                    exc.path, f"pipeline step {index} ({step['op']}): {exc.reason}"
                ) from exc
        return out

    def __len__(self) -> int:
        return len(self._steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self._steps == other._steps

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type

    def __repr__(self) -> str:
        return f"Pipeline({self._steps!r})"

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict with format tag, version and steps (what a model bundle stores).

        Example:
            >>> Pipeline([{"op": "clip", "low": -1000, "high": 1000}]).to_dict()["steps"]
            [{'op': 'clip', 'low': -1000, 'high': 1000}]
        """
        return {"format": PIPELINE_FORMAT, "version": PIPELINE_VERSION, "steps": self.steps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Pipeline:
        """Rebuild from :meth:`to_dict` output (a bare list of steps is accepted too).

        Args:
            data: the stored dict, or a list of steps.

        Returns:
            The pipeline.

        Raises:
            PreprocessError: not a pipeline, a newer version, or invalid steps.
        """
        if isinstance(data, Mapping):
            fmt = data.get("format", PIPELINE_FORMAT)
            version = data.get("version", PIPELINE_VERSION)
            if fmt != PIPELINE_FORMAT or "steps" not in data:
                raise PreprocessError(None, f"not a preprocessing pipeline (format {fmt!r})")
            if not isinstance(version, int) or version > PIPELINE_VERSION:
                raise PreprocessError(
                    None,
                    f"pipeline version {version!r} is newer than supported ({PIPELINE_VERSION});"
                    " upgrade medlabel",
                )
            return cls(data["steps"])
        return cls(data)

    def to_json(self, indent: int | None = 2) -> str:
        """The pipeline as JSON text (see :meth:`to_dict`).

        Args:
            indent: JSON indentation; ``None`` for one line.

        Returns:
            JSON text.
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Pipeline:
        """Rebuild from :meth:`to_json` output.

        Args:
            text: JSON text.

        Returns:
            The pipeline.

        Raises:
            PreprocessError: invalid JSON or an invalid pipeline.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PreprocessError(None, f"pipeline JSON is invalid: {exc}") from None
        if not isinstance(data, (dict, list)):
            raise PreprocessError(None, "pipeline JSON must be an object or a list of steps")
        return cls.from_dict(data)
