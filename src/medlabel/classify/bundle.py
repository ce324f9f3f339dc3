"""Model bundles: a folder holding everything needed to reproduce a classifier's predictions.

Layout::

    bundle/
      bundle.json     format version, task, class names, input spec, normalisation,
                      temperature, threshold, members, training config and history, metrics,
                      data description and licence
      member-0.onnx   the network with normalisation built in (input: uint8 values as float)
      member-0.pt     the PyTorch weights (for fine-tuning and deep features)
      ood.npz         the out-of-distribution check of member 0 (:mod:`.ood`), when fitted
      MODEL_CARD.md   intended use, data and licence, metrics, limits, the training command

A bundle with several members is an ensemble: their logits are averaged before the temperature
and the threshold apply. Bundles are written to a temporary folder and renamed into place.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp())  # a folder, but no bundle
    >>> try:
    ...     load_bundle(path)
    ... except BundleError as err:
    ...     print(err.reason)
    not a model bundle (no bundle.json)
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlabel.classify.card import model_card
from medlabel.classify.logits import probabilities
from medlabel.classify.ood import OODCheck
from medlabel.classify.resolution import enlarged_beyond_training
from medlabel.image import MedicalImage
from medlabel.models.files import (
    BUNDLE_FORMAT,
    BundleError,
    check_bundle_target,
    check_modality,
    cpu_threads,
    export_onnx,
    file_checksums,
    half_state,
    json_default,
    loading,
    read_description,
    staging,
    write_description,
)
from medlabel.preprocess.network import InputSpec, network_input

if TYPE_CHECKING:  # training needs scikit-learn and torch, the torch engine torch; prediction
    # through ONNX Runtime needs neither, so they load on first use
    from torch import nn

    from medlabel.classify.classic import ClassicModel
    from medlabel.classify.networks import Normalised
    from medlabel.classify.train import TrainConfig, TrainedClassifier
    from medlabel.data.dataset import ClassificationDataset

__all__ = [
    "BUNDLE_FORMAT",
    "KINDS",
    "Bundle",
    "BundleError",
    "add_ood_check",
    "load_bundle",
    "save_bundle",
    "save_classic_bundle",
]

log = logging.getLogger(__name__)

#: The ``kind`` of a classification bundle's description: one replaces another on retraining.
KINDS = ("cnn", "sklearn")


def _with_features_output(path: str) -> bytes:
    """The ONNX model at ``path`` with a second output: the input of its final linear layer
    (the node whose result is the logits), so one pass gives logits and deep features."""
    import onnx
    from onnx import helper

    proto = onnx.load(path)
    producer = {out: node for node in proto.graph.node for out in node.output}
    node = producer.get(proto.graph.output[0].name)
    if node is not None and node.op_type == "Add":  # MatMul + bias
        node = next(
            (producer[i] for i in node.input if i in producer and producer[i].op_type == "MatMul"),
            None,
        )
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise BundleError(Path(path), "cannot find the final linear layer in this ONNX model")
    proto.graph.output.append(
        helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None)
    )
    return bytes(proto.SerializeToString())


def _export_onnx(model: nn.Module, spec: InputSpec, path: Path, half: bool = False) -> None:
    import torch

    export_onnx(model, torch.zeros(2, spec.channels, *spec.size), path, half=half)


def save_bundle(
    members: TrainedClassifier | Sequence[TrainedClassifier],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    temperature: float | None = None,
    threshold: float | None = None,
    licence: str | None = None,
    intended_use: str | None = None,
    command: str | None = None,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a bundle folder (atomically: temp folder, then rename).

    Args:
        members: one trained classifier, or several (an ensemble; same classes and input).
        out: the bundle folder: new, empty, or a classification bundle, which is replaced
            (anything else is refused: see :func:`~medlabel.models.files.check_bundle_target`).
        name: bundle name (default: the folder name).
        temperature: ensemble temperature (default: the single member's).
        threshold: ensemble binary threshold (default: the single member's).
        licence: licence of the training data, for the model card.
        intended_use: text for the model card.
        command: the command that trained it, for the model card.
        extra: more metadata (e.g. benchmark metrics).
        half: store the weights in half precision, in both engines' files (half the size,
            for bundles that ship inside the package); they are computed in float32.

    Raises:
        BundleError: ensemble members that differ, or ``out`` is not a place for a bundle.
    """
    import torch

    from medlabel.classify.networks import Normalised
    from medlabel.classify.train import TrainedClassifier

    items = [members] if isinstance(members, TrainedClassifier) else list(members)
    first = items[0]
    if any(m.class_names != first.class_names or m.spec != first.spec for m in items):
        raise BundleError(out, "ensemble members differ in classes or input size")
    target = check_bundle_target(out, KINDS)
    with staging(target) as tmp:
        member_meta = []
        for i, m in enumerate(items):
            state = half_state(m.net) if half else m.net.state_dict()
            torch.save(state, tmp / f"member-{i}.pt")
            net = m.net
            if half:  # export the rounded weights, so both engines compute with the same values
                net = copy.deepcopy(m.net)
                net.load_state_dict(state)
            wrapped = Normalised(net, m.mean, m.std, m.config.normalize).eval()
            _export_onnx(wrapped, m.spec, tmp / f"member-{i}.onnx", half=half)
            member_meta.append(
                {
                    "onnx": f"member-{i}.onnx",
                    "weights": f"member-{i}.pt",
                    "normalize": m.config.normalize,
                    "mean": m.mean,
                    "std": m.std,
                    "seed": m.config.seed,
                    "val_metrics": m.val_metrics,
                    "seconds": m.seconds,
                    "history": m.history,
                }
            )
        ood = _save_ood(first.ood, tmp) if first.ood is not None else None
        meta: dict[str, Any] = {
            "kind": "cnn",
            "name": name or target.name,
            "ood": ood,
            "task": first.task,
            "class_names": first.class_names,
            "input": first.spec.to_dict(),
            "architecture": {
                "name": first.config.model,
                "spatial_dims": first.spec.dims,
                "in_channels": first.spec.channels,
                "num_classes": len(first.class_names),
                "kwargs": first.config.model_kwargs,
            },
            "temperature": temperature if temperature is not None else first.temperature,
            "threshold": threshold if threshold is not None else first.threshold,
            "tta_flips": bool(first.config.augment.flip),
            "members": member_meta,
            "train_config": first.config.to_dict(),
            "metrics": {"validation": first.val_metrics if len(items) == 1 else None},
            # every sample some member trained on: fine-tuning never validates on them
            "data": {
                **first.data,
                "train_ids": sorted({i for m in items for i in m.data.get("train_ids", [])}),
                **_train_digests(items),
                **_native_sizes(items),
            },
            # the data's own licence when none is given, as the model card states it
            "licence": licence or (first.data.get("source") or {}).get("licence"),
            "intended_use": intended_use,
            "command": command,
            **(extra or {}),
        }
        _write_description(tmp, meta)
    return target


def _train_digests(items: Sequence[TrainedClassifier]) -> dict[str, Any]:
    """The file digests of every member's training samples, when the members recorded them
    (:func:`medlabel.models.files.trained_ids`)."""
    if not any("train_digests" in m.data for m in items):
        return {}
    return {"train_digests": sorted({d for m in items for d in m.data.get("train_digests", [])})}


def _native_sizes(items: Sequence[TrainedClassifier]) -> dict[str, Any]:
    """The range of native training-image sizes over all members (``None`` when a member's
    is unknown)."""
    records = [m.data["native_size"] for m in items if m.data.get("native_size")]
    if len(records) < len(items):
        return {"native_size": None}
    return {
        "native_size": {
            "min": np.min([r["min"] for r in records], axis=0).tolist(),
            "max": np.max([r["max"] for r in records], axis=0).tolist(),
        }
    }


def save_classic_bundle(
    model: ClassicModel,
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    licence: str | None = None,
    command: str | None = None,
) -> Path:
    """Write a bundle for a classic (feature + scikit-learn) model, atomically.

    Raises:
        BundleError: ``out`` is not a place for a bundle (see :func:`save_bundle`).
    """
    import joblib

    target = check_bundle_target(out, KINDS)
    with staging(target) as tmp:
        joblib.dump(model.search.best_estimator_, tmp / "model.joblib")
        _write_description(
            tmp,
            {
                "kind": "sklearn",
                "name": name or target.name,
                "task": model.task,
                "class_names": model.class_names,
                "input": model.spec.to_dict(),
                "architecture": {"name": f"features+{model.estimator}", "kwargs": {}},
                "temperature": model.temperature,
                "threshold": model.threshold,
                "tta_flips": False,
                "members": [{"model": "model.joblib", "seconds": model.seconds}],
                "metrics": {"validation": model.val_metrics},
                "data": model.data,
                "licence": licence or (model.data.get("source") or {}).get("licence"),
                "command": command,
            },
        )
    return target


def add_ood_check(path: str | os.PathLike[str], dataset: ClassificationDataset) -> OODCheck:
    """Fit and store the out-of-distribution check of a CNN bundle saved without one.

    ``dataset`` must be the data the bundle was trained on: its training split (carved with
    the bundle's own validation fraction and seed) fits the check, its validation split sets
    the threshold. ``ood.npz`` and the description are written atomically.

    Raises:
        BundleError: not a CNN bundle.
    """
    import json

    from medlabel.data.arrays import load_arrays
    from medlabel.io.atomic import atomic_output

    bundle = load_bundle(path, engine="torch")
    if bundle.kind != "cnn":
        raise BundleError(bundle.path, "only CNN bundles have deep features to check")
    from medlabel.classify.train import TrainConfig

    cfg = TrainConfig.from_dict(bundle.meta["train_config"])
    split = dataset.with_validation_split(cfg.val_fraction, seed=cfg.split_seed)
    feats = []
    for part in ("train", "val"):
        images = load_arrays(split, split.indices(part), bundle.spec, desc=part).images
        feats.append(bundle.member_features(images, 0))
    check = OODCheck.fit(feats[0], feats[1])
    meta = {**bundle.meta, "ood": _save_ood(check, bundle.path)}
    meta["checksums"] = file_checksums(bundle.path)
    with atomic_output(bundle.path / "bundle.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=json_default) + "\n")
    with atomic_output(bundle.path / "MODEL_CARD.md") as tmp:
        tmp.write_text(model_card(meta))
    return check


def _save_ood(check: OODCheck, folder: Path) -> dict[str, Any]:
    """Write ``ood.npz`` (the check of member 0, whose features it measures) and return its
    entry for the bundle description."""
    check.save(folder / "ood.npz")
    return {
        "file": "ood.npz",
        "member": 0,
        "threshold": check.threshold,
        "quantile": check.quantile,
    }


def _write_description(folder: Path, meta: dict[str, Any]) -> None:
    write_description(folder, meta, model_card)


@dataclass
class Bundle:
    """A loaded bundle: predicts calibrated probabilities with ONNX Runtime (or torch)."""

    path: Path
    meta: dict[str, Any]
    spec: InputSpec
    class_names: list[str]
    task: str
    temperature: float
    threshold: float | None
    engine: str = "onnx"
    _sessions: list[Any] = field(default_factory=list, repr=False)
    _nets: list[nn.Module] = field(default_factory=list, repr=False)
    _ood: Any = field(default=None, repr=False)
    _feature_nets: dict[int, nn.Module] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """Bundle name."""
        return str(self.meta.get("name", self.path.name))

    @property
    def kind(self) -> str:
        """``cnn`` or ``sklearn``."""
        return str(self.meta.get("kind", "cnn"))

    def _load_engine(self) -> None:
        if self.kind == "sklearn":
            if not self._nets:
                import joblib

                self._nets = [joblib.load(self.path / m["model"]) for m in self.meta["members"]]
            return
        if self.engine == "onnx" and not self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = cpu_threads()
            opts.log_severity_level = 3
            for i, m in enumerate(self.meta["members"]):
                model: Any = str(self.path / m["onnx"])
                with loading(self.path / m["onnx"]):
                    if i == 0 and self.ood_check is not None:
                        model = _with_features_output(model)
                    self._sessions.append(
                        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
                    )
        if self.engine == "torch" and not self._nets:
            self._nets = [self.torch_member(i) for i in range(len(self.meta["members"]))]

    def torch_member(self, i: int) -> Normalised:
        """Member ``i`` as a torch module with normalisation built in (eval mode)."""
        import torch

        from medlabel.classify.networks import Normalised, build_network

        arch = self.meta["architecture"]
        net = build_network(
            arch["name"],
            spatial_dims=arch["spatial_dims"],
            in_channels=arch["in_channels"],
            num_classes=arch["num_classes"],
            **arch.get("kwargs", {}),
        )
        member = self.meta["members"][i]
        with loading(self.path / member["weights"]):
            state = torch.load(self.path / member["weights"], map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        mode = member.get("normalize", "dataset")
        return Normalised(net, member["mean"], member["std"], mode).eval()

    @property
    def batch_size(self) -> int:
        """A batch size that keeps activations in cache: about 256k input voxels per batch
        (256 images at 28 px, 16 at 128 px); larger batches are slower on a CPU."""
        voxels = int(np.prod(self.spec.size)) * self.spec.channels
        return int(max(1, min(256, (1 << 18) // voxels)))

    def logits(
        self,
        images: np.ndarray,
        *,
        batch_size: int | None = None,
        tta: bool = False,
        features: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Ensemble-mean logits of ``uint8`` network inputs ``(N, C, ...)``; member 0's deep
        features of the unflipped images are appended to ``features`` when it is given."""
        self._load_engine()
        batch_size = batch_size or self.batch_size
        views = [images]
        if tta and self.meta.get("tta_flips"):
            views += [np.flip(images, axis=-1).copy()]
        outs = [
            np.concatenate(
                [
                    self._run(view[s : s + batch_size], features if v == 0 else None)
                    for s in range(0, len(view), batch_size)
                ]
            )
            for v, view in enumerate(views)
        ]
        return np.mean(outs, axis=0)

    def _run(self, batch: np.ndarray, features: list[np.ndarray] | None = None) -> np.ndarray:
        """Mean logits of the members; member 0's deep features go to ``features`` when given
        (ONNX Runtime: a second output of the same pass; torch: a hook)."""
        if self.kind == "sklearn":
            from medlabel.classify.classic import image_features

            feats = image_features(batch.astype(np.uint8))
            models: list[Any] = list(self._nets)
            probs = [m.predict_proba(feats) for m in models]
            return np.log(np.clip(np.mean(probs, axis=0), 1e-7, 1.0))
        x = batch.astype(np.float32)
        if self.engine == "onnx":
            results = [s.run(None, {"image": x}) for s in self._sessions]
            outs = [r[0] for r in results]
            if features is not None:
                features.append(results[0][1])
        else:
            import torch

            from medlabel.classify.networks import capture_features

            outs = []
            with torch.no_grad():
                for i, net in enumerate(self._nets):
                    if i == 0 and features is not None:
                        with capture_features(net) as captured:
                            outs.append(net(torch.from_numpy(x)).numpy())
                        features.append(captured[0].numpy())
                    else:
                        outs.append(net(torch.from_numpy(x)).numpy())
        return np.mean(outs, axis=0)

    @property
    def ood_check(self) -> OODCheck | None:
        """The out-of-distribution check (``None`` for bundles saved without one)."""
        info = self.meta.get("ood")
        if self._ood is None and info and (self.path / info["file"]).is_file():
            with loading(self.path / info["file"]):
                self._ood = OODCheck.load(self.path / info["file"])
        return self._ood

    @property
    def training_sizes(self) -> dict[str, list[int]] | None:
        """Smallest and largest native size of the training images, array order (``None``
        for bundles saved without them); see :mod:`.resolution`."""
        record = self.meta.get("data", {}).get("native_size")
        return record if record and record.get("min") else None

    def low_resolution(self, sizes: np.ndarray) -> np.ndarray | None:
        """``True`` for each native size ``(N, dims)`` smaller than every training image and
        than the network input along some axis (``None`` when the training sizes are not
        recorded)."""
        record = self.training_sizes
        if record is None or len(record["min"]) != self.spec.dims:
            return None
        return enlarged_beyond_training(sizes, record, self.spec.size)

    def predict_with_ood(
        self, images: np.ndarray, *, batch_size: int | None = None, tta: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and each image's out-of-distribution distance (``None``
        without a check), from one pass; distances above ``ood_check.threshold`` are out of
        the training distribution."""
        check = self.ood_check
        if check is None or len(images) == 0:
            return self.predict_arrays(images, batch_size=batch_size, tta=tta), None
        features: list[np.ndarray] = []
        logits = self.logits(images, batch_size=batch_size, tta=tta, features=features)
        probs = probabilities(logits / self.temperature, self.task)
        return probs, check.distance(np.concatenate(features))

    def embed(self, images: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Deep features: the input of each member's final linear layer, concatenated.

        Raises:
            BundleError: a classic (feature) bundle, which has no learned embedding.
        """
        members = range(len(self.meta["members"]))
        return np.concatenate(
            [self.member_features(images, i, batch_size=batch_size) for i in members], axis=1
        )

    def member_features(
        self, images: np.ndarray, member: int = 0, *, batch_size: int | None = None
    ) -> np.ndarray:
        """Deep features of one member (torch).

        Raises:
            BundleError: a classic (feature) bundle, which has no learned embedding.
        """
        if self.kind != "cnn":
            raise BundleError(self.path, "deep features need a CNN bundle")
        import torch

        from medlabel.classify.networks import capture_features

        batch_size = batch_size or self.batch_size
        net = self._feature_nets.get(member)
        if net is None:  # built once: embedding image by image must not reload the weights
            net = self._feature_nets[member] = self.torch_member(member)
        with capture_features(net) as captured, torch.no_grad():
            for start in range(0, len(images), batch_size):
                net(torch.from_numpy(images[start : start + batch_size].astype(np.float32)))
        return torch.cat(captured).numpy()

    def predict_arrays(
        self, images: np.ndarray, *, batch_size: int | None = None, tta: bool = False
    ) -> np.ndarray:
        """Calibrated probabilities ``(N, K)`` for ``uint8`` network inputs."""
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        logits = self.logits(images, batch_size=batch_size, tta=tta)
        return probabilities(logits / self.temperature, self.task)

    def prepare(self, image: MedicalImage) -> np.ndarray:
        """The network input for one image (the exact training preprocessing).

        Raises:
            MedlabelError: an image of another modality than the bundle declares (a CT slice
                for a chest X-ray model), or one that cannot go into the network.
        """
        check_modality(self.name, self.meta, image)
        return network_input(image, self.spec)

    def predict_images(self, images: Iterable[MedicalImage], **kwargs: Any) -> np.ndarray:
        """Calibrated probabilities for images of any size and format."""
        arrays = [self.prepare(img) for img in images]
        if not arrays:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self.predict_arrays(np.stack(arrays), **kwargs)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Predicted labels: the validation-chosen threshold for binary tasks, else argmax
        (multi-label: a 0/1 matrix at 0.5)."""
        if self.task == "multilabel":
            return (probs >= 0.5).astype(int)
        if self.task == "binary" and self.threshold is not None:
            return (probs[:, 1] >= self.threshold).astype(int)
        return probs.argmax(axis=1)


def load_bundle(path: str | os.PathLike[str], *, engine: str = "onnx") -> Bundle:
    """Open a bundle folder.

    Raises:
        BundleError: not a bundle, files missing, or made by an incompatible medlabel.
    """
    from medlabel.models import resolve_model

    p = resolve_model(path)
    meta = read_description(p, kinds=KINDS)
    kind = meta["kind"]
    if engine not in ("onnx", "torch"):
        raise BundleError(p, f"engine must be onnx or torch, not {engine!r}")
    for m in meta["members"]:
        needed = (
            m["model"] if kind == "sklearn" else m["onnx"] if engine == "onnx" else m["weights"]
        )
        if not (p / needed).is_file():
            raise BundleError(p, f"bundle is incomplete: {needed} is missing")
    return Bundle(
        path=p,
        meta=meta,
        spec=InputSpec.from_dict(meta["input"]),
        class_names=list(meta["class_names"]),
        task=meta["task"],
        temperature=float(meta.get("temperature") or 1.0),
        threshold=meta.get("threshold"),
        engine=engine,
    )


def train_config_of(bundle: Bundle) -> TrainConfig:
    """The training configuration stored in a bundle."""
    from medlabel.classify.train import TrainConfig

    return TrainConfig.from_dict(bundle.meta["train_config"])
