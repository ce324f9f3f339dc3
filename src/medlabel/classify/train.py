"""Training a CNN classifier on the CPU: the loop, early stopping, calibration, threshold.

The recipe: images held in memory as ``uint8``; each batch scaled to [0, 1], augmented
(:class:`~medlabel.classify.augment.Augment`) and normalised with the training set's mean and
standard deviation; AdamW with a warm-up then cosine learning rate whose clock is the larger of
the step count and the elapsed share of the time budget (so a budget always ends with a fully
annealed model); class-weighted cross-entropy (binary cross-entropy for multi-label); the model
kept is the one with the best validation AUC (near-ties broken by validation loss); then a
temperature is fitted on validation logits
and, for binary tasks, the decision threshold is chosen on validation data (never on test).

Example:
    >>> import numpy as np
    >>> from medlabel.data.dataset import ClassificationDataset
    >>> from medlabel.image import MedicalImage
    >>> rng = np.random.default_rng(0)
    >>> labels = np.array([0, 1] * 20)
    >>> imgs = [np.where(l, 200, 50) + rng.integers(0, 20, (16, 16)) for l in labels]
    >>> ds = ClassificationDataset("toy", ["neg", "pos"], [str(i) for i in range(40)],
    ...     labels, np.array(["train"] * 40),
    ...     loader=lambda i: MedicalImage(imgs[i].astype(np.uint8)))
    >>> cfg = TrainConfig(model="compact", size=(16, 16), epochs=3, batch_size=8,
    ...                   model_kwargs={"width": 8})
    >>> result = train_classifier(ds, cfg, progress=False)
    >>> result.val_metrics["auc"] > 0.9
    True
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Set
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from medlabel.classify.augment import Augment
from medlabel.classify.networks import (
    build_network,
    capture_features,
    count_parameters,
    normalise,
    probabilities,
)
from medlabel.classify.ood import OODCheck
from medlabel.classify.resolution import size_record
from medlabel.data.arrays import ArrayBatch, load_arrays
from medlabel.data.dataset import ClassificationDataset
from medlabel.devices import bf16_autocast, resolve_device
from medlabel.errors import MedlabelError
from medlabel.evaluate.calibration import TemperatureScaler, choose_threshold
from medlabel.preprocess.network import InputSpec

__all__ = ["TrainConfig", "TrainedClassifier", "predict_logits", "train_classifier"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the bundle).

    Attributes:
        model: network name (see :data:`~medlabel.classify.networks.NETWORKS`).
        size: network input size ``(H, W)`` or ``(D, H, W)``.
        channels: input channels (1 grey, 3 colour).
        epochs: maximum epochs.
        batch_size: samples per step.
        lr: peak learning rate (AdamW); a tenth of it runs when fine-tuning (``init_from``).
        weight_decay: AdamW weight decay.
        warmup: share of the schedule spent warming up.
        budget_minutes: wall-clock budget for the training loop; ``None`` for no limit.
        patience: epochs without validation-AUC improvement before stopping (counted only
            once the learning rate decays, so the kept model is converged).
        auc_tolerance: AUC differences this small count as ties; ties go to the epoch with
            the lowest validation loss.
        seed: seeds weights, shuffling and augmentation.
        split_seed: seeds the validation split carved from ``train`` (kept apart from ``seed``
            so that ensemble members share one validation split).
        augment: augmentation settings.
        class_weighting: weight the loss by inverse class frequency.
        label_smoothing: cross-entropy label smoothing.
        mixup: mixup's Beta(a, a) parameter (e.g. 0.2): each batch is blended with a shuffled
            copy of itself, one mixing weight per batch drawn from the Beta distribution, and
            the loss is the same blend of the two samples' losses. 0 switches it off.
        threshold_criterion: how the binary threshold is chosen on validation data.
        normalize: ``dataset`` (training mean/std) or ``image`` (each image's own).
        val_fraction: validation share carved out of ``train`` when the data has no ``val``.
        model_kwargs: extra network arguments.
        num_threads: torch CPU threads (default: all cores).
        ema: decay of an exponential moving average of the weights, updated every step;
            when set (e.g. 0.99), the averaged weights are the ones validated and kept.
            0 switches it off.
        device: ``"auto"`` (a CUDA GPU when torch sees one, else the CPU), ``"cpu"`` or
            ``"cuda[:N]"``. Augmentation stays on the CPU; the returned network is on the CPU.
        bf16: run the training forward pass under bfloat16 autocast (weights, loss and
            optimiser stay float32; validation runs in float32). 1.5-1.8x faster steps on a
            CPU with AVX-512 BF16, but off by default: over 5 seeds on PneumoniaMNIST it was
            no more accurate than float32 (accuracy perhaps slightly lower).
        init_from: fine-tune: a classifier bundle (folder or model name) whose network, input
            size, normalisation and weights the run starts from; they override ``model``,
            ``size``, ``channels``, ``model_kwargs`` and ``normalize``. The data's classes
            must be among the bundle's.
        init_member: which of ``init_from``'s members to start from (cycled; the CLI's
            ensemble member ``k`` starts from member ``k``).
    """

    model: str = "compact"
    size: tuple[int, ...] = (28, 28)
    channels: int = 1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    budget_minutes: float | None = None
    patience: int = 10
    auc_tolerance: float = 0.001
    seed: int = 0
    split_seed: int = 0
    augment: Augment = field(default_factory=Augment)
    class_weighting: bool = True
    label_smoothing: float = 0.0
    mixup: float = 0.0
    threshold_criterion: str = "youden"
    normalize: str = "dataset"
    val_fraction: float = 0.1
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    num_threads: int | None = None
    ema: float = 0.0
    device: str = "auto"
    bf16: bool = False
    init_from: str | None = None
    init_member: int = 0

    def learning_rate(self) -> float:
        """The peak learning rate that runs: ``lr``, or a tenth of it when fine-tuning (as
        :meth:`medlabel.segment.train.SegTrainConfig.learning_rate`)."""
        return self.lr * (0.1 if self.init_from else 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["size"] = list(self.size)
        return out

    def torch_device(self) -> torch.device:
        """The device training runs on."""
        return resolve_device(self.device)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["size"] = tuple(data["size"])
        data["augment"] = Augment(**data.get("augment", {}))
        return cls(**data)


@dataclass
class TrainedClassifier:
    """A trained network with everything needed to reproduce its predictions."""

    net: nn.Module
    spec: InputSpec
    mean: float
    std: float
    class_names: list[str]
    task: str
    temperature: float
    threshold: float | None
    config: TrainConfig
    history: list[dict[str, float | None]]
    val_metrics: dict[str, Any]
    data: dict[str, Any]
    seconds: float
    failures: list[tuple[str, str]]
    val_logits: np.ndarray
    val_labels: np.ndarray
    ood: OODCheck | None = None


def _auc(labels: np.ndarray, probs: np.ndarray, task: str) -> float:
    try:
        if task == "binary":
            return float(roc_auc_score(labels, probs[:, 1]))
        if task == "multilabel":
            cols = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
            return float(np.mean([roc_auc_score(labels[:, k], probs[:, k]) for k in cols]))
        present = np.unique(labels)
        if len(present) < 2:
            return float("nan")
        return float(
            roc_auc_score(
                labels,
                probs[:, present] / probs[:, present].sum(1, keepdims=True),
                multi_class="ovr",
                labels=present,
            )
            if len(present) < probs.shape[1]
            else roc_auc_score(labels, probs, multi_class="ovr")
        )
    except ValueError:
        return float("nan")


def _finite(value: float) -> float | None:
    """``value``, or ``None`` for NaN or infinity (which JSON cannot hold).

    Example:
        >>> _finite(0.5), _finite(float("nan"))
        (0.5, None)
    """
    return float(value) if math.isfinite(value) else None


def calibrate_logits(
    logits: np.ndarray, labels: np.ndarray, task: str, criterion: str = "youden"
) -> tuple[float, float | None]:
    """Temperature and (binary) threshold fitted on validation ``logits`` and ``labels``.

    Multi-label tasks keep temperature 1 and no threshold.

    Example:
        >>> logits = np.array([[2.0, -2.0], [-1.0, 1.0], [1.5, -0.5], [-2.0, 2.5]])
        >>> t, thr = calibrate_logits(logits, np.array([0, 1, 1, 1]), "binary")
        >>> t > 0 and 0 <= thr <= 1
        True
    """
    if task == "multilabel":
        return 1.0, None
    temperature = float(TemperatureScaler().fit(logits, labels).temperature)
    threshold = None
    if task == "binary":
        probs = probabilities(logits / temperature, task)
        threshold = float(choose_threshold(labels, probs[:, 1], criterion))  # type: ignore[arg-type]
    return temperature, threshold


#: Fewest validation images a temperature and threshold are fitted on (at least 5 of each
#: class for a binary task): fewer keep the calibration of the bundle being fine-tuned, or
#: none (temperature 1, threshold 0.5).
MIN_CALIBRATION_IMAGES = 30


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    task: str,
    criterion: str = "youden",
    *,
    fallback: tuple[float, float | None] | None = None,
) -> tuple[float, float | None, str | None]:
    """:func:`calibrate_logits` where the validation set can carry it, else ``fallback`` (the
    starting bundle's temperature and threshold) or no calibration; the third value says
    why a fit was not used (``None`` when it was).

    A fitted temperature at the search bound (separable or degenerate data) is not used
    either: it would make every confidence near 0.5 or near 1.

    Example:
        >>> logits = np.array([[2.0, -2.0], [-1.0, 1.0]])
        >>> t, threshold, note = fit_calibration(
        ...     logits, np.array([0, 1]), "binary", fallback=(0.5, 0.8))
        >>> t, threshold, note.split(":")[0]
        (0.5, 0.8, 'kept from the starting bundle')
    """
    n = len(labels)
    counts = np.bincount(np.asarray(labels).astype(int).ravel()) if task == "binary" else None
    reason = None
    if task == "multilabel":
        return 1.0, None, None
    if n < MIN_CALIBRATION_IMAGES or (counts is not None and (len(counts) < 2 or counts.min() < 5)):
        reason = (
            f"{n} validation images are too few to fit it (need {MIN_CALIBRATION_IMAGES}"
            + (", 5 of each class" if task == "binary" else "")
            + ")"
        )
    else:
        temperature, threshold = calibrate_logits(logits, labels, task, criterion)
        low, high = TemperatureScaler().bounds  # within a step of its search grid's ends
        if not low * 1.2 < temperature < high / 1.2:
            reason = f"the fitted temperature {temperature:.3g} lies at its search bound"
        else:
            return temperature, threshold, None
    if fallback is not None:
        return fallback[0], fallback[1], f"kept from the starting bundle: {reason}"
    return 1.0, (0.5 if task == "binary" else None), f"not calibrated: {reason}"


def _prepare(x: torch.Tensor, mode: str, mean: float, std: float) -> torch.Tensor:
    return normalise(x.float() / 255.0, mode, mean, std)


@torch.no_grad()
def predict_logits(
    net: nn.Module,
    images: np.ndarray,
    mean: float,
    std: float,
    batch_size: int = 256,
    mode: str = "dataset",
) -> np.ndarray:
    """Logits of ``uint8`` images ``(N, C, ...)`` with the network in eval mode (torch), on
    whichever device the network is."""
    net.eval()
    device = next(net.parameters()).device
    outs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size])
        outs.append(net(_prepare(batch, mode, mean, std).to(device)).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def _loss_fn(task: str, labels: np.ndarray, config: TrainConfig, k: int) -> nn.Module:
    if task == "multilabel":
        pos = labels.sum(0).clip(1)
        weight = torch.tensor((len(labels) - pos) / pos, dtype=torch.float32).clamp(max=20)
        return nn.BCEWithLogitsLoss(pos_weight=weight if config.class_weighting else None)
    weights = None
    if config.class_weighting:
        counts = np.bincount(labels, minlength=k).astype(np.float64).clip(1)
        w = len(labels) / (k * counts)
        weights = torch.tensor(w / w.mean(), dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)


def _lr_factor(progress: float, warmup: float) -> float:
    if progress < warmup:
        return max(progress / warmup, 0.01)
    rest = (progress - warmup) / max(1e-9, 1 - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(rest, 1.0))) * 0.99 + 0.01


def _averaged(net: nn.Module, decay: float) -> Any:
    """An exponential moving average of ``net`` (buffers too), or ``None`` for ``decay=0``."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema must be in (0, 1), not {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class _Start:
    """Where a fine-tuning run starts: the bundle's settings, weights and normalisation."""

    config: TrainConfig
    dataset: ClassificationDataset
    state: dict[str, torch.Tensor]
    mean: float
    std: float
    member: int
    seen: Set[str]
    calibration: tuple[float, float | None]


def _starting_point(config: TrainConfig, dataset: ClassificationDataset) -> _Start:
    """Read ``config.init_from``'s member and reconcile the run and the data with it.

    Raises:
        BundleError: not a CNN classifier bundle (or missing files).
        DatasetError: the data has classes the bundle does not know.
        MedlabelError: the bundle's task differs from the data's.
    """
    from medlabel.classify.bundle import load_bundle
    from medlabel.models.files import BundleError, trained_ids

    assert config.init_from is not None
    bundle = load_bundle(config.init_from, engine="torch")
    if bundle.kind != "cnn":
        raise BundleError(bundle.path, "fine-tuning starts from a CNN bundle, not a classic one")
    data = dataset.with_classes(bundle.class_names)
    if bundle.task != data.task:
        if {bundle.task, data.task} != {"ordinal", "multiclass"}:
            raise MedlabelError(
                bundle.path, f"the bundle is a {bundle.task} model and the data is {data.task}"
            )
        # class indices either way: the bundle's reading of them wins
        data = replace(data, task="ordinal" if bundle.task == "ordinal" else "multiclass")
    member = config.init_member % len(bundle.meta["members"])
    normalised = bundle.torch_member(member)
    arch = bundle.meta["architecture"]
    settings = {
        "model": arch["name"],
        "size": tuple(bundle.spec.size),
        "channels": bundle.spec.channels,
        "model_kwargs": dict(arch.get("kwargs", {})),
        "normalize": normalised.mode,
    }
    return _Start(
        config=TrainConfig.from_dict({**config.to_dict(), **settings}),
        dataset=data,
        state=normalised.net.state_dict(),
        mean=normalised.mean,
        std=normalised.std,
        member=member,
        seen=trained_ids(bundle.meta),
        calibration=(float(bundle.temperature), bundle.threshold),
    )


def train_classifier(
    dataset: ClassificationDataset,
    config: TrainConfig,
    *,
    progress: bool = True,
    train_arrays: ArrayBatch | None = None,
    val_arrays: ArrayBatch | None = None,
) -> TrainedClassifier:
    """Train a CNN on ``dataset``'s ``train`` split, validating on ``val``.

    ``val`` is carved from ``train`` (stratified, grouped by patient when groups exist) when
    the data set has none. ``train_arrays``/``val_arrays`` may pass preloaded images.
    Metrics that cannot be computed are ``None``; ``data["skipped_files"]`` lists the inputs
    the source or the image loading skipped.

    Raises:
        DatasetError: a class with a single image (or group), or missing from the data set's
            own ``val`` split, before any training (see
            :meth:`~medlabel.data.dataset.ClassificationDataset.with_validation_split`).
    """
    if config.mixup < 0:  # before any data is loaded
        raise ValueError(f"mixup must be >= 0, not {config.mixup}")
    start_all = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    start = _starting_point(config, dataset) if config.init_from else None
    if start is not None:
        config, dataset = start.config, start.dataset
    # a model being fine-tuned is never validated on what it was trained on
    seen = start.seen if start is not None else set()
    ds = dataset.with_validation_split(config.val_fraction, seed=config.split_seed, seen=seen)
    if seen:
        again = int(ds.seen_by(ds.indices("val"), seen).sum())
        if again:
            log.warning(
                "%d validation samples trained %s: its validation figures will flatter it",
                again,
                config.init_from,
            )
    spec = InputSpec(config.size, config.channels)
    train = train_arrays or load_arrays(ds, ds.indices("train"), spec, progress=progress)
    val = val_arrays or load_arrays(ds, ds.indices("val"), spec, progress=progress, desc="val")
    task = str(ds.task)
    k = ds.num_classes
    if start is not None:  # the weights expect the normalisation they were trained with
        mean, std = start.mean, start.std
    else:
        scaled = train.images.astype(np.float32) / 255.0
        mean, std = float(scaled.mean()), float(scaled.std()) or 1.0
        del scaled
    net = build_network(
        config.model,
        spatial_dims=spec.dims,
        in_channels=spec.channels,
        num_classes=k,
        **config.model_kwargs,
    )
    if start is not None:
        net.load_state_dict(start.state)
        log.info("starting from %s, member %d", config.init_from, start.member)
    log.info("%s: %d parameters, input %s", config.model, count_parameters(net), spec.describe())
    device = config.torch_device()
    net.to(device)  # before the optimiser and the weight average are built on it
    loss_fn = _loss_fn(task, train.labels, config, k).to(device)
    peak_lr = config.learning_rate()
    opt = torch.optim.AdamW(net.parameters(), lr=peak_lr, weight_decay=config.weight_decay)
    averaged = _averaged(net, config.ema)
    judged = averaged.module if averaged is not None else net  # what is validated and kept
    gen = torch.Generator().manual_seed(config.seed)
    mix_rng = np.random.default_rng(config.seed)
    x_all = torch.from_numpy(train.images)
    y_all = torch.from_numpy(train.labels.astype(np.float32 if task == "multilabel" else np.int64))
    n = len(x_all)
    steps_per_epoch = max(1, n // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    budget = None if config.budget_minutes is None else config.budget_minutes * 60.0
    history: list[dict[str, float]] = []
    best_auc, best_loss = -float("inf"), float("inf")
    best_state = copy.deepcopy(judged.state_dict())
    stale, step = 0, 0
    t0 = time.perf_counter()
    bar = tqdm(
        total=config.epochs,
        desc=f"train {config.model}",
        unit="epoch",
        disable=None if progress else True,
    )
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            elapsed = time.perf_counter() - t0
            clock = max(step / total_steps, elapsed / budget if budget else 0.0)
            if clock >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = peak_lr * _lr_factor(clock, config.warmup)
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x = config.augment(x_all[idx].float() / 255.0, gen)
            x = normalise(x, config.normalize, mean, std).to(device)
            y = y_all[idx].to(device)
            if config.mixup:
                lam = float(mix_rng.beta(config.mixup, config.mixup))
                partner = torch.randperm(len(idx), generator=gen).to(device)
                x = lam * x + (1.0 - lam) * x[partner]
            with bf16_autocast(device, config.bf16):
                logits = net(x).float()
            loss = loss_fn(logits, y)
            if config.mixup:
                loss = lam * loss + (1.0 - lam) * loss_fn(logits, y[partner])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if averaged is not None:
                averaged.update_parameters(net)
            losses.append(loss.item())
            step += 1
        val_logits = predict_logits(judged, val.images, mean, std, mode=config.normalize)
        val_probs = probabilities(val_logits, task)
        val_auc = _auc(val.labels, val_probs, task)
        val_loss = float(
            F.binary_cross_entropy_with_logits(
                torch.from_numpy(val_logits), torch.from_numpy(val.labels.astype(np.float32))
            )
            if task == "multilabel"
            else F.cross_entropy(
                torch.from_numpy(val_logits), torch.from_numpy(val.labels.astype(np.int64))
            )
        )
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            "val_auc": val_auc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_auc=f"{val_auc:.4f}")
        bar.update(1)
        auc_key = val_auc if np.isfinite(val_auc) else -val_loss
        if auc_key > best_auc + config.auc_tolerance:
            best_auc, best_loss, stale = auc_key, float("inf"), 0
        else:
            stale += 1
            best_auc = max(best_auc, auc_key)
        # Among epochs whose AUC is within the tolerance of the best (AUC saturates near 1 and
        # then only measures noise), keep the one with the lowest validation loss.
        if auc_key >= best_auc - config.auc_tolerance and val_loss <= best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(judged.state_dict())
        out_of_time = budget is not None and time.perf_counter() - t0 >= budget
        annealing = step >= total_steps * 0.5 or (
            budget is not None and time.perf_counter() - t0 >= 0.5 * budget
        )
        # patience counts only once the learning rate is decaying: stopping at the peak
        # learning rate would keep an unconverged model
        if not annealing:
            stale = 0
        if stale >= config.patience or out_of_time or not losses:
            break
    bar.close()
    net.load_state_dict(best_state)
    net.to("cpu").eval()
    with capture_features(net) as val_features:  # kept for the out-of-distribution check
        val_logits = predict_logits(net, val.images, mean, std, mode=config.normalize)
    temperature, threshold, calibration_note = fit_calibration(
        val_logits,
        val.labels,
        task,
        config.threshold_criterion,
        fallback=start.calibration if start is not None else None,
    )
    if calibration_note:
        log.warning("calibration: %s", calibration_note)
    val_probs = probabilities(val_logits / temperature, task)
    val_metrics: dict[str, Any] = {
        "auc": _finite(_auc(val.labels, val_probs, task)),  # null, not NaN, in bundle.json
        "n": len(val.labels),
    }
    if calibration_note:
        val_metrics["calibration"] = calibration_note
    ood = _fit_ood(net, train.images, val_features, mean, std, config.normalize)
    if task != "multilabel":
        pred = (
            (val_probs[:, 1] >= threshold).astype(int)
            if threshold is not None
            else val_probs.argmax(1)
        )
        val_metrics["accuracy"] = _finite(float((pred == val.labels).mean()))
    return TrainedClassifier(
        net=net,
        spec=spec,
        mean=mean,
        std=std,
        class_names=list(ds.class_names),
        task=task,
        temperature=temperature,
        threshold=threshold,
        config=config,
        history=[{key: _finite(v) for key, v in record.items()} for record in history],
        val_metrics=val_metrics,
        data={
            **ds.summary(train.failures + val.failures),
            "train_used": len(train.ids),
            "val_used": len(val.ids),
            # a fine-tuned model has also seen what its starting bundle trained on
            "train_ids": list(train.ids) + sorted(set(seen) - set(train.ids)),
            **({"init_train_ids": len(set(seen) - set(train.ids))} if seen else {}),
            # ... and recognises its training images under other names by their bytes
            **_train_digests(ds, train.indices, seen),
            "val_ids": list(val.ids),
            **({"native_size": size_record(train.sizes)} if train.sizes is not None else {}),
        },
        seconds=time.perf_counter() - start_all,
        failures=train.failures + val.failures,
        val_logits=val_logits,
        val_labels=val.labels,
        ood=ood,
    )


def _train_digests(
    ds: ClassificationDataset, indices: np.ndarray, seen: Set[str]
) -> dict[str, list[str]]:
    """``{"train_digests": [...]}``: the file digests of the training samples (and of those
    the starting bundle recorded), for data sets of files; ``{}`` otherwise."""
    from medlabel.models.files import file_digests

    if ds.files is None:  # MedMNIST: its ids are its split and index
        return {}
    return {"train_digests": file_digests((ds.file(int(i)) for i in indices), seen)}


def _fit_ood(
    net: nn.Module,
    train: np.ndarray,
    val_features: list[torch.Tensor],
    mean: float,
    std: float,
    mode: str,
) -> OODCheck | None:
    """The out-of-distribution check of the trained network (``None`` for tiny data sets),
    from the training images' features and the validation features already captured."""
    with capture_features(net) as train_features:
        predict_logits(net, train, mean, std, mode=mode)
    feats = [
        torch.cat(f).float().numpy() if f else np.zeros((0, 0))
        for f in (train_features, val_features)
    ]
    try:
        return OODCheck.fit(feats[0], feats[1])
    except ValueError as err:
        log.info("no out-of-distribution check: %s", err)
        return None
