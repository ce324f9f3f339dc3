"""Segmentation bundles: the plan, the network (PyTorch and ONNX), metrics and a model card.

Layout::

    bundle/
      bundle.json     kind "segmentation", the plan (geometry, normalisation, patch, classes,
                      post-processing), training settings and history, validation metrics
      model.onnx      the network (input: normalised patches ``(B, 1, *patch)``)
      model.pt        PyTorch weights in half precision (fine-tuning; loaded as float32)
      MODEL_CARD.md

:meth:`SegmentationBundle.predict` applies exactly the stored preprocessing, runs sliding
windows with ONNX Runtime (or torch), post-processes, and returns a label map on the input's
own grid.

Example:
    >>> import tempfile, pathlib
    >>> try:
    ...     load_segmentation_bundle(pathlib.Path(tempfile.mkdtemp()))
    ... except BundleError as err:
    ...     print(err.reason)
    not a model bundle (no bundle.json)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.models.files import (
    BundleError,
    export_onnx,
    read_description,
    staging,
    write_description,
)
from medlabel.segment.card import segmentation_card
from medlabel.segment.infer import (
    onnx_predictor,
    postprocess,
    predict_probabilities,
    slice_predictor,
)
from medlabel.segment.labelmap import label_map
from medlabel.segment.networks import build_segmentation_network
from medlabel.segment.plan import Plan
from medlabel.segment.preprocessing import to_native, to_network
from medlabel.segment.train import TrainedSegmenter

__all__ = [
    "BundleError",
    "SegmentationBundle",
    "load_segmentation_bundle",
    "save_segmentation_bundle",
]


def save_segmentation_bundle(
    trained: TrainedSegmenter,
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    licence: str | None = None,
    intended_use: str | None = None,
    command: str | None = None,
) -> Path:
    """Write a bundle folder atomically and return its path."""
    target = Path(out)
    plan = trained.plan
    net = trained.net.eval()
    with staging(target) as tmp:
        # half-precision weights keep bundles small; they load back as float32
        half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
        torch.save(half, tmp / "model.pt")
        export_onnx(net, torch.zeros(2, 1, *plan.network_patch), tmp / "model.onnx")
        meta: dict[str, Any] = {
            "kind": "segmentation",
            "name": name or target.name,
            "plan": plan.to_dict(),
            "weights": "model.pt",
            "onnx": "model.onnx",
            "training": trained.config.to_dict(),
            "history": trained.history,
            "fingerprint": trained.fingerprint,
            "metrics": {"validation": trained.val_metrics, "validation_cases": trained.val_cases},
            "data": trained.data,
            "seconds": trained.seconds,
            "licence": licence,
            "intended_use": intended_use,
            "command": command,
        }
        write_description(tmp, meta, segmentation_card)
    return target


@dataclass
class SegmentationBundle:
    """A loaded segmentation bundle."""

    path: Path
    meta: dict[str, Any]
    plan: Plan
    engine: str = "onnx"
    _runner: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Bundle name."""
        return str(self.meta.get("name", self.path.name))

    @property
    def classes(self) -> dict[int, str]:
        """Class index -> name."""
        return dict(self.plan.classes)

    def network(self) -> torch.nn.Module:
        """The network as a torch module (eval mode)."""
        net = build_segmentation_network(
            self.plan.network["name"],
            self.plan.network_dims,
            1,
            self.plan.num_classes,
            **self.plan.network["kwargs"],
        )
        state = torch.load(self.path / self.meta["weights"], map_location="cpu", weights_only=True)
        net.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
        return net.eval()

    def _predictor(self) -> Any:
        if self._runner is None:
            if self.engine == "onnx":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = max(1, torch.get_num_threads())
                opts.log_severity_level = 3
                session = ort.InferenceSession(
                    str(self.path / self.meta["onnx"]), opts, providers=["CPUExecutionProvider"]
                )
                self._runner = onnx_predictor(session)
            else:
                self._runner = self.network()
        return self._runner

    def memory_needed(self, image: MedicalImage) -> int:
        """Estimated peak bytes to segment ``image`` (input, windows, blended probabilities)."""
        if self.plan.fit == "size":
            voxels = float(np.prod(self.plan.target))
        else:
            voxels = float(
                np.prod(
                    [
                        n * s / t
                        for n, s, t in zip(
                            image.size, image.spacing, self.plan.target, strict=False
                        )
                    ]
                )
            )
        # float32: input + resampled input, and (classes + 2) maps for the blending
        return int(voxels * 4 * (self.plan.num_classes + 4) + image.array.nbytes)

    def probabilities(
        self, image: MedicalImage, *, tta: bool = False
    ) -> tuple[np.ndarray, MedicalImage]:
        """Class probabilities on the network grid and the grid to map them back to.

        Raises:
            MedlabelError: the volume would need more memory than the machine has free.
        """
        needed, free = self.memory_needed(image), available_memory()
        if free is not None and needed > free:
            raise MedlabelError(
                image.metadata.get("path"),
                f"segmenting this {'x'.join(map(str, image.size))} volume needs about "
                f"{needed / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB is free; crop it "
                "to the region of interest or use a machine with more memory",
            )
        x, grid = to_network(image, self.plan)
        probs = predict_probabilities(
            slice_predictor(self._predictor(), self.plan.slice_axis),
            x,
            self.plan.patch_size,
            mirror_axes=self.plan.mirror_axes if tta else (),
            batch_size=self.plan.batch_size,
        )
        return probs, grid

    def predict(self, image: MedicalImage, *, tta: bool = False) -> MedicalImage:
        """Label map of ``image`` on its own grid (same size, spacing, origin, direction).

        Args:
            image: any readable image of the bundle's dimensionality (a 2D model also takes a
                single-slice volume).
            tta: average over the mirrorings the model was trained with (slower).
        """
        probs, grid = self.probabilities(image, tta=tta)
        seg = to_native(probs, grid, self.plan)
        labels = postprocess(seg.array, self.plan.postprocess)
        if image.ndim != seg.ndim:  # a 2D model on a 1-slice volume: back onto the volume
            labels = labels[None]
        meta = {"labels": self.classes, "model": self.name}
        out = label_map(
            image if not image.channels else image.with_array(image.array[..., 0]),
            labels,
            self.classes,
        )
        return out.with_array(out.array, metadata=meta)


def available_memory() -> int | None:
    """Bytes of memory available now (``None`` where the system does not say).

    Linux's ``MemAvailable`` counts reclaimable caches; elsewhere free pages are used.
    """
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def load_segmentation_bundle(
    path: str | os.PathLike[str], *, engine: str = "onnx"
) -> SegmentationBundle:
    """Open a segmentation bundle (by folder or bundled/user model name).

    Raises:
        BundleError: not a segmentation bundle, incomplete, or an incompatible version.
    """
    from medlabel.models import resolve_model

    p = resolve_model(path)
    meta = read_description(p, kinds=("segmentation",))
    if engine not in ("onnx", "torch"):
        raise BundleError(p, f"engine must be onnx or torch, not {engine!r}")
    needed = meta["onnx"] if engine == "onnx" else meta["weights"]
    if not (p / needed).is_file():
        raise BundleError(p, f"bundle is incomplete: {needed} is missing")
    return SegmentationBundle(p, meta, Plan.from_dict(meta["plan"]), engine)
