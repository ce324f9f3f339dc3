"""Segmentation bundles: the plan, the network (PyTorch and ONNX), metrics and a model card.

Layout::

    bundle/
      bundle.json     kind "segmentation", the plan (geometry, normalisation, patch, classes,
                      post-processing), training settings and history, validation metrics
      model.onnx      the network (input: normalised patches ``(B, 1, *patch)``), weights
                      stored in half precision and computed in float32
      model.pt        PyTorch weights in half precision (loaded as float32)
                      (an ensemble has model-0.onnx, model-0.pt, model-1.onnx, ...; either
                      engine's files may be left out: :func:`slim_bundle`; without the
                      .pt files torch rebuilds its weights from the ONNX exports)
      MODEL_CARD.md

:meth:`SegmentationBundle.predict` applies exactly the stored preprocessing, runs sliding
windows with ONNX Runtime or torch (whichever is faster for the input), post-processes, and
returns a label map on the input's own grid.

Example:
    >>> import tempfile, pathlib
    >>> try:
    ...     load_segmentation_bundle(pathlib.Path(tempfile.mkdtemp()))
    ... except BundleError as err:
    ...     print(err.reason)
    not a model bundle (no bundle.json)
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.models.files import (
    BundleError,
    check_bundle_target,
    check_modality,
    cpu_threads,
    export_onnx,
    half_state,
    loading,
    read_description,
    staging,
    write_description,
)
from medlabel.preprocess._common import available_memory
from medlabel.preprocess.orient import axes_in_orientation
from medlabel.segment.card import segmentation_card
from medlabel.segment.infer import (
    class_probabilities,
    onnx_predictor,
    postprocess,
    predict_probabilities,
    slice_predictor,
    torch_predictor,
)
from medlabel.segment.labelmap import label_map
from medlabel.segment.networks import build_segmentation_network
from medlabel.segment.plan import Plan
from medlabel.segment.plausibility import Expectations, expectations, implausible
from medlabel.segment.preprocessing import to_native, to_network
from medlabel.segment.resolution import coarser_than_training
from medlabel.segment.uncertainty import agreement, structure_entropy

if TYPE_CHECKING:  # training pulls in scikit-learn and SciPy, and ONNX Runtime predicts
    # without torch (over a second to import on a small CPU): both come in when needed
    import torch

    from medlabel.segment.train import TrainedSegmenter

__all__ = [
    "KINDS",
    "PRECISIONS",
    "BundleError",
    "SegmentationBundle",
    "load_segmentation_bundle",
    "save_segmentation_bundle",
    "slim_bundle",
]

#: The ``kind`` of a segmentation bundle's description.
KINDS = ("segmentation",)


def save_segmentation_bundle(
    trained: TrainedSegmenter | Sequence[TrainedSegmenter],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    licence: str | None = None,
    intended_use: str | None = None,
    command: str | None = None,
    modalities: Sequence[str] | None = None,
    onnx: bool = True,
) -> Path:
    """Write a bundle folder atomically and return its path.

    ``onnx=False`` leaves out the ONNX exports (half the size, for ensembles that ship
    inside the package); such bundles run on torch.

    ``modalities`` (DICOM codes such as ``CR``, ``DX``) declares which images the model is
    made for; ``medlabel annotate`` applies it only to those (and to images of unknown
    modality). Without it, the training data's modality is used when known.

    Several members (from :func:`~medlabel.segment.train.train_ensemble`) make an ensemble
    whose class probabilities are averaged; they must share one plan.

    ``out`` must be new, an empty folder or a segmentation bundle, which is replaced
    (anything else is refused: see :func:`~medlabel.models.files.check_bundle_target`).

    Raises:
        BundleError: members with different plans, or ``out`` is not a place for a bundle.
    """
    import torch

    from medlabel.segment.train import TrainedSegmenter

    members = [trained] if isinstance(trained, TrainedSegmenter) else list(trained)
    target = check_bundle_target(out, KINDS)
    plan = members[0].plan
    if any(m.plan.to_dict() != plan.to_dict() for m in members[1:]):
        raise BundleError(target, "ensemble members must share one plan")
    single = len(members) == 1
    with staging(target) as tmp:
        files = []
        for k, member in enumerate(members):
            stem = "model" if single else f"model-{k}"
            net = member.net.eval()
            # half-precision weights keep bundles small; they load back as float32
            torch.save(half_state(net), tmp / f"{stem}.pt")
            if onnx:
                export_onnx(
                    net, torch.zeros(2, 1, *plan.network_patch), tmp / f"{stem}.onnx", half=True
                )
            files.append(
                {
                    "weights": f"{stem}.pt",
                    "onnx": f"{stem}.onnx" if onnx else None,
                    "seed": member.config.seed,
                    "val_ids": member.data.get("val_ids", []),
                    "seconds": member.seconds,
                    "history": member.history,
                }
            )
        first = members[0]
        meta: dict[str, Any] = {
            "kind": "segmentation",
            "name": name or target.name,
            "plan": plan.to_dict(),
            "members": files,
            "training": first.config.to_dict(),
            "fingerprint": first.fingerprint,
            "metrics": {"validation": first.val_metrics, "validation_cases": first.val_cases},
            "data": {
                **first.data,
                "val_ids": sorted({i for f in files for i in f["val_ids"]}),
                "train_ids": sorted({i for m in members for i in m.data.get("train_ids", [])}),
                "train_digests": sorted(
                    {d for m in members for d in m.data.get("train_digests", [])}
                ),
            }
            if not single
            else first.data,
            "seconds": sum(m.seconds for m in members),
            "licence": licence,
            "intended_use": intended_use,
            "command": command,
            "modalities": [m.upper() for m in modalities]
            if modalities
            else ([plan.modality.upper()] if plan.modality else None),
        }
        write_description(tmp, meta, segmentation_card)
    return target


_log = logging.getLogger(__name__)
#: Largest relative difference between rebuilt torch weights and ONNX Runtime (float32
#: engines differ by about 1e-6; a wrongly matched weight by far more).
_REBUILD_TOLERANCE = 1e-3
#: Precisions of torch's forward pass at inference (see :attr:`SegmentationBundle.bf16`).
PRECISIONS = ("auto", "fp32", "bf16")


def slim_bundle(path: str | os.PathLike[str], keep: str = "onnx") -> Path:
    """Keep only one engine's files of a bundle (``"onnx"`` or ``"torch"``), atomically.

    Each engine holds the same half-precision weights, so this halves the bundle; an
    ensemble shipped inside the package keeps only its ONNX exports (ONNX Runtime is the
    faster engine for 2D models), from which the torch engine rebuilds its weights when it
    is asked for (:meth:`SegmentationBundle.network`). The model card says which files are
    left.

    Example:
        >>> import tempfile, pathlib
        >>> try:
        ...     slim_bundle(pathlib.Path(tempfile.mkdtemp()), keep="tensorflow")
        ... except BundleError as err:
        ...     print(err.reason)
        keep must be onnx or torch, not 'tensorflow'

    Raises:
        BundleError: not a segmentation bundle, or it lacks the files of the engine to keep.
    """
    src = Path(path)
    if keep not in ("onnx", "torch"):
        raise BundleError(src, f"keep must be onnx or torch, not {keep!r}")
    meta = read_description(src, kinds=KINDS)
    key, drop = ("onnx", "weights") if keep == "onnx" else ("weights", "onnx")
    members = _members(meta)
    for member in members:
        if not member.get(key) or not (src / member[key]).is_file():
            raise BundleError(src, f"the bundle has no {keep} files to keep")
    if keep == "onnx":  # torch must be able to rebuild its weights from the exports
        bundle = load_segmentation_bundle(src, engine="onnx")
        for k in range(len(members)):
            try:
                bundle._network_from_onnx(k)
            except BundleError as err:
                raise BundleError(
                    src, f"{err.reason}; keep both engines' files (nothing was changed)"
                ) from err
    with staging(src) as tmp:
        dropped = {m.get(drop) for m in members}
        for item in src.iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            elif item.name not in dropped:
                shutil.copy2(item, tmp / item.name)
        meta["members"] = [{**m, drop: None} for m in members]
        meta.pop("weights", None)
        meta.pop("onnx", None)
        meta["engines"] = [keep]
        if meta.get("command"):
            meta["command"] += f"`, then `slim_bundle(..., keep={keep!r})"
        write_description(tmp, meta, segmentation_card)
    return src


def _members(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Member files of a bundle (older single-model bundles name them at the top level)."""
    if meta.get("members"):
        return list(meta["members"])
    return [{"weights": meta["weights"], "onnx": meta["onnx"], "history": meta.get("history", [])}]


@dataclass
class SegmentationBundle:
    """A loaded segmentation bundle."""

    path: Path
    meta: dict[str, Any]
    plan: Plan
    engine: str = "auto"
    device: str = "cpu"
    precision: str = "auto"
    _runners: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @property
    def bf16(self) -> bool:
        """Whether torch runs the network under bfloat16 autocast: with ``precision="bf16"``,
        or ``"auto"`` on a CPU that computes in bfloat16 natively (AVX-512 BF16 or AMX), where
        it was 1.3-3.2x faster and gave the same test Dice as float32
        (``benchmarks/bench_seg_inference.py``). ONNX Runtime always runs float32.

        Example:
            >>> load_segmentation_bundle("cxr-lungs", precision="fp32").bf16
            False
        """
        if self.precision != "auto":
            return self.precision == "bf16"
        if self.device != "cpu":
            return False
        import torch

        from medlabel.devices import native_bf16

        return native_bf16(torch.device("cpu"))

    @property
    def name(self) -> str:
        """Bundle name."""
        return str(self.meta.get("name", self.path.name))

    @property
    def classes(self) -> dict[int, str]:
        """Class index -> name."""
        return dict(self.plan.classes)

    @property
    def members(self) -> list[dict[str, Any]]:
        """Member file records (one per network; several for an ensemble)."""
        return _members(self.meta)

    @functools.cached_property
    def expectations(self) -> Expectations | None:
        """What the training images and their structures looked like (see
        :mod:`medlabel.segment.plausibility`)."""
        return expectations(self.meta, self.plan.fit)

    def implausible(
        self,
        image: MedicalImage,
        labels: MedicalImage | np.ndarray,
        entropy: float | None = None,
    ) -> list[str]:
        """Why a label map of ``image`` does not look like this model's training
        segmentations (``[]``: it does); ``entropy``: the prediction's mean structure entropy
        (:meth:`predict_detailed` passes it).

        Example:
            >>> import numpy as np
            >>> from medlabel.image import MedicalImage
            >>> b = load_segmentation_bundle("mri-hippocampus")
            >>> brain = MedicalImage(np.zeros((160, 200, 160), np.float32))
            >>> for why in b.implausible(brain, np.zeros((160, 200, 160), np.uint8)):
            ...     print(why.split(";")[0])
            the image measures 160 x 160 x 200 mm
            no anterior found, though every training image had one
            no posterior found, though every training image had one
        """
        return implausible(image, labels, self.expectations, self.classes, entropy=entropy)

    def coarser(self, image: MedicalImage) -> str | None:
        """Why ``image`` holds less detail than every training image and than the network
        takes (``None``: it does not); see :mod:`medlabel.segment.resolution`."""
        fingerprint = self.meta.get("fingerprint") or {}
        return coarser_than_training(image, fingerprint, self.plan.fit, self.plan.target)

    def network(self, member: int = 0) -> torch.nn.Module:
        """Network ``member`` as a torch module (eval mode).

        A bundle that ships its ONNX exports only (:func:`slim_bundle`) gets the weights
        rebuilt from them (:func:`~medlabel.models.onnx_weights.state_from_onnx`), checked
        against ONNX Runtime on one input.

        Raises:
            BundleError: the member has neither torch weights nor an ONNX export that
                rebuilds them exactly.
        """
        record = self.members[member]
        if record.get("weights"):
            import torch

            net = self._untrained_network()
            path = self.path / record["weights"]
            with loading(path):
                state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(
                {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            )
            return net.eval()
        if not record.get("onnx"):
            raise BundleError(self.path, "this bundle has neither torch weights nor ONNX exports")
        return self._network_from_onnx(member)

    def _untrained_network(self) -> torch.nn.Module:
        return build_segmentation_network(
            self.plan.network["name"],
            self.plan.network_dims,
            1,
            self.plan.num_classes,
            **self.plan.network["kwargs"],
        )

    def _network_from_onnx(self, member: int) -> torch.nn.Module:
        """Network ``member`` with its weights rebuilt from its ONNX export, checked."""
        import torch

        from medlabel.models.onnx_weights import check_same_outputs, state_from_onnx

        net = self._untrained_network()
        record = self.members[member]
        onnx_path = self.path / record["onnx"]
        example = torch.randn(
            1, 1, *self.plan.network_patch, generator=torch.Generator().manual_seed(0)
        )
        try:
            net.load_state_dict(state_from_onnx(onnx_path, net, example))
        except ValueError as err:
            raise BundleError(self.path, f"cannot rebuild torch weights: {err}") from err
        difference = check_same_outputs(net, onnx_path, example)
        if not difference <= _REBUILD_TOLERANCE:
            raise BundleError(
                self.path,
                f"torch weights rebuilt from {record['onnx']} differ from ONNX Runtime's "
                f"output by {difference:.2g} (relative)",
            )
        return net.eval()

    def _predictors(self, engine: str | None = None) -> list[Any]:
        """One predictor per member on ``engine`` (default: the bundle's; loaded once)."""
        if engine is None:
            engine = self.engine_for(self.plan.patch_size)[0]
        if engine not in self._runners:
            if engine == "onnx":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = cpu_threads()
                opts.log_severity_level = 3
                sessions = []
                for m in self.members:
                    with loading(self.path / m["onnx"]):
                        sessions.append(
                            ort.InferenceSession(
                                str(self.path / m["onnx"]), opts, providers=["CPUExecutionProvider"]
                            )
                        )
                self._runners[engine] = [onnx_predictor(session) for session in sessions]
            else:
                try:
                    self._runners[engine] = [
                        torch_predictor(self.network(k).to(self.device), bf16=self.bf16)
                        for k in range(len(self.members))
                    ]
                except BundleError as err:
                    if self.engine != "auto" or "onnx" not in self._engines:
                        raise
                    # the exports run as they are where torch cannot rebuild their weights
                    _log.warning("%s; running ONNX Runtime instead", err)
                    self._runners[engine] = self._predictors("onnx")
        return list(self._runners[engine])

    def precision_for_one(self, image: MedicalImage) -> str:
        """The precision that finishes one ``image`` first, for a caller that has only one
        (``medlabel segment``): with ``precision="auto"``, float32 on ONNX Runtime for an input
        that fits one window (torch's start, importing MONAI and rebuilding an ONNX-only
        bundle's weights, costs more than bfloat16 saves), else the bundle's own.

        Example:
            >>> import numpy as np
            >>> b = load_segmentation_bundle("mri-hippocampus")
            >>> b.precision_for_one(MedicalImage(np.zeros((36, 50, 36), np.float32)))
            'fp32'
        """
        if self.precision != "auto" or self.device != "cpu" or "onnx" not in self._engines:
            return self.precision
        size = self._network_size(image)[::-1]  # NumPy order, as the patch
        several = any(round(n) > int(p) for n, p in zip(size, self.plan.patch_size, strict=False))
        return "auto" if several else "fp32"

    def _network_size(self, image: MedicalImage) -> list[float]:
        """The size ``image`` takes on the network grid (ITK order, in the plan's
        orientation), estimated from the plan without resampling it."""
        if self.plan.fit == "size":
            return [float(t) for t in self.plan.target]
        axes = axes_in_orientation(image, self.plan.orientation)
        size, spacing = [image.size[a] for a in axes], [image.spacing[a] for a in axes]
        pairs = zip(size, spacing, self.plan.target, strict=False)
        return [n * s / t for n, s, t in pairs]

    @property
    def arithmetic(self) -> str:
        """What the network computes in: ``"bfloat16 autocast (torch)"`` or ``"float32"``.

        Example:
            >>> load_segmentation_bundle("mri-hippocampus", precision="fp32").arithmetic
            'float32'
        """
        return "bfloat16 autocast (torch)" if self.bf16 and self.engine != "onnx" else "float32"

    def engine_for(self, shape: Sequence[int]) -> tuple[str, int]:
        """Engine and windows per batch for a network-grid array of ``shape``.

        With ``engine="auto"`` on a CPU: torch with the plan's batch when it runs in bfloat16
        (:attr:`bf16`), which beat ONNX Runtime on every input measured
        (``benchmarks/bench_seg_inference.py``); else a 3D network that needs several sliding
        windows runs on torch, 4 windows per batch (ONNX Runtime's 3D convolutions are slower
        than torch's on large inputs), and everything else on ONNX Runtime with the plan's
        batch. A bundle saved without ONNX exports (``save_segmentation_bundle(...,
        onnx=False)``) always runs on torch; one that ships its exports only gets torch weights
        rebuilt from them when torch is picked. On a GPU (``device``), every input runs on
        torch with the plan's batch.

        Example:
            >>> b = load_segmentation_bundle("mri-hippocampus", precision="fp32")
            >>> b.engine_for((36, 50, 36)), b.engine_for((120, 200, 200))
            (('onnx', 9), ('torch', 4))
            >>> bf16 = load_segmentation_bundle("mri-hippocampus", precision="bf16")
            >>> bf16.engine_for((36, 50, 36))
            ('torch', 9)
        """
        if self.device != "cpu":  # a GPU runs everything on torch
            return "torch", self.plan.batch_size
        if self.engine != "auto":
            return self.engine, self.plan.batch_size
        engines = self._engines
        if "torch" in engines and self.bf16:
            return "torch", self.plan.batch_size
        patch = self.plan.patch_size
        several = any(int(s) > int(p) for s, p in zip(shape, patch, strict=True))
        if (
            "torch" in engines
            and several
            and (self.plan.network_dims == 3 or "onnx" not in engines)
        ):
            return "torch", min(4, self.plan.batch_size)
        return engines[0], self.plan.batch_size

    @functools.cached_property
    def _engines(self) -> tuple[str, ...]:
        """The engines this bundle's files allow, the preferred first (checked once)."""
        engines: tuple[str, ...] = ("onnx",) if all(m.get("onnx") for m in self.members) else ()
        if engines or all(
            m.get("weights") and (self.path / m["weights"]).is_file() for m in self.members
        ):
            engines += ("torch",)  # from its weights, or rebuilt from the exports
        return engines

    def memory_needed(self, image: MedicalImage) -> int:
        """Estimated peak bytes to segment ``image`` (input, windows, blended probabilities)."""
        voxels = float(np.prod(self._network_size(image)))
        # float32: input + resampled input, and (classes + 2) maps for the blending
        return int(voxels * 4 * (self.plan.num_classes + 4) + image.array.nbytes)

    def probabilities(
        self, image: MedicalImage, *, tta: bool = False
    ) -> tuple[np.ndarray, MedicalImage]:
        """Class probabilities on the network grid and the grid to map them back to.

        Raises:
            MedlabelError: the image is of a modality the model is not made for, or the
                volume would need more memory than the machine has free.
        """
        self._check_input(image)
        x, grid = to_network(image, self.plan)
        return self._network_probabilities(x, self.plan.mirror_axes if tta else ()), grid

    @property
    def modalities(self) -> tuple[str, ...]:
        """DICOM modality codes the model is made for (``()``: not declared)."""
        return tuple(str(m).upper() for m in self.meta.get("modalities") or ())

    def _check_input(self, image: MedicalImage) -> None:
        """Refuse an image of another declared modality (a CT slice given to a chest X-ray
        model), as recipes do, and a volume that would need more memory than is free."""
        check_modality(self.name, self.meta, image)
        needed, free = self.memory_needed(image), available_memory()
        if free is not None and needed > free:
            raise MedlabelError(
                image.metadata.get("path"),
                f"segmenting this {'x'.join(map(str, image.size))} volume needs about "
                f"{needed / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB is free; crop it "
                "to the region of interest or use a machine with more memory",
            )

    def _network_probabilities(self, x: np.ndarray, mirror_axes: tuple[int, ...]) -> np.ndarray:
        engine, batch = self.engine_for(x.shape)
        runners = self._predictors(engine)
        total: np.ndarray | None = None
        for run in runners:
            probs = predict_probabilities(
                slice_predictor(run, self.plan.slice_axis),
                x,
                self.plan.patch_size,
                mirror_axes=mirror_axes,
                batch_size=batch,
            )
            if total is None:
                total = probs
            else:
                total += probs  # in place: a CT volume's maps take hundreds of MB
        assert total is not None
        if len(runners) > 1:
            total /= len(runners)
        return total

    def predict_detailed(
        self, image: MedicalImage, *, tta: bool = False
    ) -> tuple[MedicalImage, dict[str, Any]]:
        """Label map (as :meth:`predict`) and its uncertainty.

        The uncertainty holds ``entropy`` (mean normalised voxel entropy inside the predicted
        structures, overall and per class), ``implausible`` (:meth:`implausible`: why the
        result does not look like the training segmentations, ``[]`` when it does),
        ``notes`` (:meth:`coarser`: why it is less reliable, ``[]`` when nothing says so) and, with
        ``tta``, ``agreement``: the mean Dice between the plain prediction and the predictions
        under each view (the trained mirrorings, and contrast changes of +-10 %), whose
        average is then the returned map.
        """
        self._check_input(image)
        x, grid = to_network(image, self.plan)
        plain = self._network_probabilities(x, ())
        stats: dict[str, Any] = {}
        probs = plain
        if tta:
            views = [self._network_probabilities(x, (a,)) for a in self.plan.mirror_axes]
            views += [self._network_probabilities(x * f, ()) for f in (0.9, 1.1)]
            main = np.argmax(plain, axis=0)
            stats["agreement"] = agreement(
                main, [np.argmax(v, axis=0) for v in views], list(self.classes)
            )
            probs = (plain + sum(views)) / (len(views) + 1)
        stats["entropy"] = structure_entropy(probs)
        labels = self._to_labels(image, probs, grid)
        # the reference entropy comes from plain predictions: compare like with like
        plain_entropy = structure_entropy(plain)["all"] if tta else stats["entropy"]["all"]
        stats["implausible"] = self.implausible(image, labels, plain_entropy)
        stats["notes"] = [why] if (why := self.coarser(image)) else []
        return labels, stats

    def predict(self, image: MedicalImage, *, tta: bool = False) -> MedicalImage:
        """Label map of ``image`` on its own grid (same size, spacing, origin, direction).

        Args:
            image: any readable image of the bundle's dimensionality (a 2D model also takes a
                single-slice volume).
            tta: average over the mirrorings the model was trained with (slower).
        """
        probs, grid = self.probabilities(image, tta=tta)
        return self._to_labels(image, probs, grid)

    def predict_detailed_many(
        self, images: Sequence[MedicalImage], *, tta: bool = False
    ) -> list[tuple[MedicalImage, dict[str, Any]]]:
        """:meth:`predict_detailed` for several images; whole-image 2D models run them in
        one batch (the same results, fewer calls), other models one at a time."""
        if tta or self.plan.fit != "size" or self.plan.slice_axis is not None or len(images) < 2:
            return [self.predict_detailed(im, tta=tta) for im in images]
        for im in images:
            self._check_input(im)
        prepared = [to_network(im, self.plan) for im in images]
        batch = np.stack([x for x, _ in prepared]).astype(np.float32)[:, None]
        if tuple(batch.shape[2:]) != tuple(self.plan.patch_size):
            return [self.predict_detailed(im) for im in images]
        runners = self._predictors()
        # an ensemble averages its members' probabilities, as the one-image path does
        probs = np.mean([class_probabilities(run(batch)) for run in runners], axis=0)
        out = []
        for im, (_, grid), p in zip(images, prepared, probs, strict=True):
            labels = self._to_labels(im, p, grid)
            entropy = structure_entropy(p)
            found = self.implausible(im, labels, entropy["all"])
            notes = [why] if (why := self.coarser(im)) else []
            out.append((labels, {"entropy": entropy, "implausible": found, "notes": notes}))
        return out

    def _to_labels(
        self, image: MedicalImage, probs: np.ndarray, grid: MedicalImage
    ) -> MedicalImage:
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


def load_segmentation_bundle(
    path: str | os.PathLike[str],
    *,
    engine: str = "auto",
    device: str = "cpu",
    precision: str = "auto",
) -> SegmentationBundle:
    """Open a segmentation bundle (by folder or bundled/user model name).

    ``engine``: ``onnx`` (ONNX Runtime), ``torch``, or ``auto`` (per input, the faster of the
    two: see :meth:`SegmentationBundle.engine_for`). ``device``: ``cpu``, ``cuda[:N]`` or
    ``auto`` (a CUDA GPU when torch sees one); on a GPU every input runs on torch.
    ``precision`` of torch's forward pass: ``fp32``, ``bf16`` (autocast) or ``auto`` (see
    :attr:`SegmentationBundle.bf16`).

    Raises:
        BundleError: not a segmentation bundle, incomplete, an incompatible version, or
            ONNX Runtime asked for on a GPU.
        MedlabelError: an unknown device, or a GPU that torch does not see.
    """
    from medlabel.devices import device_name
    from medlabel.models import resolve_model

    p = resolve_model(path)
    meta = read_description(p, kinds=KINDS)
    if engine not in ("auto", "onnx", "torch"):
        raise BundleError(p, f"engine must be auto, onnx or torch, not {engine!r}")
    if precision not in PRECISIONS:
        raise BundleError(p, f"precision must be auto, fp32 or bf16, not {precision!r}")
    on = device_name(device)  # the CPU needs no torch: ONNX Runtime predicts without it
    if on != "cpu" and engine == "onnx":
        raise BundleError(p, "ONNX Runtime runs on the CPU here; on a GPU use engine torch or auto")
    members = _members(meta)
    for member in members:
        if engine == "onnx" and not member.get("onnx"):
            raise BundleError(p, "this bundle has no onnx files; use engine auto or torch")
        # torch runs on the weights, or on weights rebuilt from the ONNX exports
        wanted = ("weights", "onnx") if engine == "torch" else ("onnx", "weights")
        key = next((k for k in wanted if member.get(k)), None)
        if key is None:
            raise BundleError(p, "bundle is incomplete: a member names no weights files")
        if not (p / member[key]).is_file():
            raise BundleError(p, f"bundle is incomplete: {member[key]} is missing")
    return SegmentationBundle(p, meta, Plan.from_dict(meta["plan"]), engine, on, precision)
