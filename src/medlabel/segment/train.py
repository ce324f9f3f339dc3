"""Training a self-configured U-Net: fingerprint -> plan -> preprocess -> train -> validate.

Patches are drawn from cases held in memory (one third centred on a random labelled voxel of
a random class, the rest anywhere), augmented jointly, and fed to a MONAI network with
Dice + cross-entropy loss and AdamW. The learning rate follows a polynomial decay over the
time budget, so a run always finishes its schedule on time; the weights with the best
validation Dice are kept. Finally, post-processing (largest component, hole filling) is
switched on per class only where it raises the validation Dice, and the validation metrics
are computed on each case's original grid through the same path inference uses.

Example:
    >>> from medlabel.segment.train import SegTrainConfig
    >>> SegTrainConfig(budget_minutes=1).to_dict()["budget_minutes"]
    1
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from medlabel.devices import bf16_autocast, native_bf16, resolve_device
from medlabel.errors import MedlabelError
from medlabel.evaluate.segmentation import case_metrics, summarize_cases
from medlabel.image import MedicalImage
from medlabel.models.files import file_digests, trained_ids
from medlabel.segment.augment import SegAugment
from medlabel.segment.dataset import SegmentationDataset, skipped_record
from medlabel.segment.fingerprint import Fingerprint, fingerprint_cases
from medlabel.segment.infer import (
    postprocess,
    predict_probabilities,
    slice_predictor,
    torch_predictor,
)
from medlabel.segment.networks import build_segmentation_network
from medlabel.segment.plan import Plan, make_plan
from medlabel.segment.plausibility import entropy_summary
from medlabel.segment.preprocessing import normalize, to_native, to_network, work_image
from medlabel.segment.uncertainty import structure_entropy

__all__ = ["OPTIMIZERS", "SegTrainConfig", "TrainedSegmenter", "train_segmenter"]

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
_DEFAULT_LR = {"adamw": 2e-3, "sgd": 1e-2}


@dataclass
class SegTrainConfig:
    """Training settings (stored in the bundle).

    Attributes:
        budget_minutes: wall-clock budget for the optimisation (preprocessing excluded).
        max_epochs: upper bound on epochs.
        iterations_per_epoch: steps per epoch (``None``: one pass over the training cases).
        optimizer: ``"adamw"`` (the default) or ``"sgd"`` (momentum 0.99 with Nesterov, as
            nnU-Net trains).
        lr: peak learning rate (``None``: 2e-3 for AdamW, 1e-2 for SGD); weight_decay: the
            optimiser's weight decay.
        val_every: epochs between validations.
        foreground_fraction: share of patches centred on a labelled voxel.
        network: network name (see :mod:`medlabel.segment.networks`).
        dims: 2 for a slice-wise 2D network on volumes; ``None`` follows the data.
        patch_size: override the planned patch (NumPy order).
        val_fraction: share of training cases held out when the data has no validation split.
        seed: random seed (weights, sampling, augmentation); split_seed: for the split.
        augment: augmentation settings (mirror axes come from the plan).
        num_threads: torch CPU threads (default: all cores).
        width: channels of the network's first level (doubling per level up to 8x).
        bf16: run the forward pass under bfloat16 autocast (weights, loss and optimiser stay
            float32); ``None`` does so where the hardware has native bfloat16 arithmetic
            (a CPU with AVX-512 BF16 or AMX, where a step gets 1.1-2.5x faster; a CUDA GPU
            that supports it).
        device: ``"auto"`` (a CUDA GPU when torch sees one, else the CPU), ``"cpu"`` or
            ``"cuda[:N]"``. Augmentation stays on the CPU; the returned network is on the CPU.
        mirror: flipped axes in augmentation and test-time augmentation: ``"auto"`` (the
            plan's left-right rule), ``"all"`` or ``"none"`` (see :func:`make_plan`).
        full_res: give the network a first level at the input's resolution (see
            :func:`make_plan`).
        init_from: fine-tune: a segmentation bundle (folder or model name) whose plan and
            weights training starts from (member ``k`` of an ensemble for ensemble member
            ``k``, cycling); the data must have the bundle's classes, and the default peak
            learning rate is a tenth of the optimiser's.
        init_member: which of ``init_from``'s members to start from (set per ensemble member).
    """

    budget_minutes: float = 15.0
    max_epochs: int = 1000
    iterations_per_epoch: int | None = None
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 1e-4
    val_every: int = 2
    foreground_fraction: float = 0.33
    network: str = "unet"
    dims: int | None = None
    patch_size: tuple[int, ...] | None = None
    val_fraction: float = 0.2
    seed: int = 0
    split_seed: int = 0
    augment: SegAugment = field(default_factory=SegAugment)
    num_threads: int | None = None
    width: int = 16
    bf16: bool | None = None
    device: str = "auto"
    mirror: str = "auto"
    full_res: bool = False
    init_from: str | None = None
    init_member: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def torch_device(self) -> torch.device:
        """The device training runs on."""
        return resolve_device(self.device)

    def learning_rate(self) -> float:
        """The peak learning rate: the one given, else the optimiser's default (a tenth of
        it when fine-tuning from ``init_from``)."""
        if self.lr is not None:
            return self.lr
        return _DEFAULT_LR[self.optimizer] * (0.1 if self.init_from else 1.0)

    def use_bf16(self) -> bool:
        """Whether training will autocast to bfloat16 on its device."""
        return self.bf16 if self.bf16 is not None else native_bf16(self.torch_device())


@dataclass
class TrainedSegmenter:
    """The result of :func:`train_segmenter`."""

    net: torch.nn.Module
    plan: Plan
    config: SegTrainConfig
    history: list[dict[str, float]]
    val_metrics: dict[str, Any]
    val_cases: dict[str, dict[str, dict[str, float | None]]]
    fingerprint: dict[str, Any]
    data: dict[str, Any]
    seconds: float


@dataclass
class _Case:
    id: str
    x: np.ndarray  # normalised, padded to >= patch
    y: np.ndarray  # class indices, padded
    fg: dict[int, np.ndarray]  # class -> sampled voxel coordinates (N, dims)


def _prepare_case(
    ds: SegmentationDataset,
    i: int,
    pair: tuple[MedicalImage, MedicalImage | None],
    plan: Plan,
    rng: np.random.Generator,
) -> _Case:
    """:func:`_prepare` for case ``i``, naming its image file when the case is refused."""
    image, mask = pair
    assert mask is not None
    try:
        return _prepare(image, mask, plan, ds.cases[i].id, rng)
    except MedlabelError as err:
        if err.path is not None:
            raise
        raise MedlabelError(ds.cases[i].image, err.reason) from err


def _prepare(
    image: MedicalImage, mask: MedicalImage, plan: Plan, cid: str, rng: np.random.Generator
) -> _Case:
    x = normalize(work_image(image, plan).array, plan)
    y = work_image(mask, plan, is_label=True).array.astype(np.uint8)
    if x.shape != y.shape:
        raise MedlabelError(None, f"case {cid}: image and mask differ after resampling")
    pads = [(0, max(0, p - s)) for p, s in zip(plan.patch_size, x.shape, strict=True)]
    x = np.pad(x, pads, mode="edge")
    y = np.pad(y, pads)
    fg = {}
    for c in plan.classes:
        coords = np.argwhere(y == c)
        if len(coords):
            fg[c] = coords[rng.choice(len(coords), min(len(coords), 2000), replace=False)]
    return _Case(cid, x, y, fg)


def _patch(
    case: _Case, patch: tuple[int, ...], rng: np.random.Generator, fg: bool
) -> tuple[np.ndarray, np.ndarray]:
    shape = case.x.shape
    if fg and case.fg:
        cls = list(case.fg)[rng.integers(len(case.fg))]
        centre = case.fg[cls][rng.integers(len(case.fg[cls]))]
        start = [
            int(c) - p // 2 + int(rng.integers(-p // 4, p // 4 + 1))
            for c, p in zip(centre, patch, strict=True)
        ]
    else:
        start = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, patch, strict=True)]
    start = [min(max(0, s0), s - p) for s0, s, p in zip(start, shape, patch, strict=True)]
    sl = tuple(slice(s0, s0 + p) for s0, p in zip(start, patch, strict=True))
    return case.x[sl], case.y[sl]


def _dice_work(net: torch.nn.Module, cases: list[_Case], plan: Plan, bf16: bool = False) -> float:
    """Mean foreground Dice over validation cases on the network grid (fast, for selection),
    in the precision the training forward pass runs in (as inference will on that machine)."""
    net.eval()
    scores = []
    for case in cases:
        probs = predict_probabilities(
            slice_predictor(torch_predictor(net, bf16=bf16), plan.slice_axis),
            case.x,
            plan.patch_size,
            batch_size=plan.batch_size,
        )
        pred = np.argmax(probs, axis=0)
        for c in plan.classes:
            p, t = pred == c, case.y == c
            denom = p.sum() + t.sum()
            scores.append(1.0 if denom == 0 else 2.0 * (p & t).sum() / denom)
    net.train()
    return float(np.mean(scores))


def _optimizer(net: torch.nn.Module, cfg: SegTrainConfig) -> torch.optim.Optimizer:
    """AdamW, or nnU-Net's SGD (momentum 0.99, Nesterov), at the configured peak rate."""
    lr, decay = cfg.learning_rate(), cfg.weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            net.parameters(), lr=lr, momentum=0.99, nesterov=True, weight_decay=decay
        )
    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=decay)


def _plan_for(
    fp: Fingerprint, classes: dict[int, str], cfg: SegTrainConfig, start: Any = None
) -> Plan:
    if start is not None:  # fine-tuning keeps the bundle's plan: its weights fit no other
        return copy.deepcopy(start.plan)
    return make_plan(
        fp,
        classes,
        network=cfg.network,
        patch_size=cfg.patch_size,
        dims=cfg.dims,
        width=cfg.width,
        mirror=cfg.mirror,
        full_res=cfg.full_res,
    )


def _starting_bundle(name: str, classes: dict[int, str]) -> Any:
    """The bundle a fine-tuning run starts from, checked against the data's classes."""
    from medlabel.segment.bundle import load_segmentation_bundle

    bundle = load_segmentation_bundle(name, engine="torch")
    if dict(bundle.plan.classes) != dict(classes):
        raise MedlabelError(
            bundle.path,
            f"fine-tuning needs the bundle's classes {dict(bundle.plan.classes)}, and the data "
            f"has {dict(classes)}",
        )
    return bundle


def _need_both(ds: SegmentationDataset, train_idx: list[int], val_idx: list[int]) -> None:
    """Refuse to train without training or validation cases, saying what was skipped."""
    if train_idx and val_idx:
        return
    raise MedlabelError(
        ds.source.get("path"),
        f"need training and validation cases, and the usable cases make {len(train_idx)} "
        f"training and {len(val_idx)} validation case(s){ds.skipped_note()}",
    )


def _load_cases(
    ds: SegmentationDataset, indices: list[int], progress: bool
) -> tuple[dict[int, tuple[MedicalImage, MedicalImage | None]], list[dict[str, str]]]:
    """Cases ``indices`` read, and the records of those that could not be (skipped with a
    warning)."""
    loaded: dict[int, tuple[MedicalImage, MedicalImage | None]] = {}
    failed: list[dict[str, str]] = []
    for i in tqdm(indices, desc="read", disable=None if progress else True):
        try:
            loaded[i] = ds.load(i)
        except MedlabelError as err:
            case = ds.cases[i]
            log.warning("%s; case %s skipped", err, case.id)
            failed.append(
                {"case": case.id, "path": str(err.path or case.image), "reason": err.reason}
            )
    return loaded, failed


def _readable(
    ds: SegmentationDataset, indices: list[int]
) -> Iterator[tuple[MedicalImage, MedicalImage | None]]:
    """Cases ``indices`` one at a time, leaving out (with a warning) those that cannot be read."""
    for i in indices:
        try:
            yield ds.load(i)
        except MedlabelError as err:
            log.warning("%s; case %s left out of the fingerprint", err, ds.cases[i].id)


def train_segmenter(
    dataset: SegmentationDataset,
    config: SegTrainConfig | None = None,
    *,
    progress: bool = True,
    plan: Plan | None = None,
) -> TrainedSegmenter:
    """Plan, train and validate a segmentation network on ``dataset``.

    A given ``plan`` is used as is (ensemble members share one); otherwise one is made from
    the training cases' fingerprint.

    Cases that cannot be read are skipped with a warning (``data["skipped"]`` records them,
    with those the data set skipped when it was opened).

    Raises:
        MedlabelError: no (usable) training or validation cases.
        ValueError: an unknown optimiser (before any data is read).
    """
    cfg = config or SegTrainConfig()
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {cfg.optimizer!r}")
    # the bundle records what actually ran
    cfg = replace(cfg, bf16=cfg.use_bf16(), device=str(cfg.torch_device()), lr=cfg.learning_rate())
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = _starting_bundle(cfg.init_from, dataset.classes) if cfg.init_from else None
    # a model being fine-tuned is never validated on what it was trained on
    seen = trained_ids(start.meta) if start is not None else set()
    ds = dataset.with_validation_split(cfg.val_fraction, seed=cfg.split_seed, seen=seen)
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    _need_both(ds, train_idx, val_idx)
    start_all = time.perf_counter()
    loaded, failed = _load_cases(ds, train_idx + val_idx, progress)
    if failed:  # what the check on opening could not see (voxels of 3D files)
        skipped = skipped_record(failed, ds.source.get("skipped"))
        ds = replace(ds, source={**ds.source, "skipped": skipped})
        train_idx = [i for i in train_idx if i in loaded]
        val_idx = [i for i in val_idx if i in loaded]
        _need_both(ds, train_idx, val_idx)
    fp = fingerprint_cases((loaded[i] for i in train_idx), ds.modality)
    plan = copy.deepcopy(plan) if plan is not None else _plan_for(fp, ds.classes, cfg, start)
    log.info("plan: %s", plan)
    train_cases = [_prepare_case(ds, i, loaded[i], plan, rng) for i in train_idx]
    val_cases = [_prepare_case(ds, i, loaded[i], plan, rng) for i in val_idx]
    net = build_segmentation_network(
        plan.network["name"], plan.network_dims, 1, plan.num_classes, **plan.network["kwargs"]
    )
    if start is not None:
        member = cfg.init_member % len(start.members)
        net.load_state_dict(start.network(member).state_dict())
        log.info("starting from %s, member %d", start.path, member)
    device = torch.device(cfg.device)
    net.to(device)  # before the optimiser is built on its parameters
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    # one loss per output; deeply supervised networks' coarser heads weigh 1/2, 1/4, ...
    loss_fn = DeepSupervisionLoss(
        DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    )
    opt = _optimizer(net, cfg)
    peak_lr = cfg.learning_rate()
    aug = copy.deepcopy(cfg.augment)
    aug.mirror_axes = plan.network_mirror_axes
    gen = torch.Generator().manual_seed(cfg.seed)
    iters = cfg.iterations_per_epoch or max(10, len(train_cases) // plan.batch_size)
    budget = cfg.budget_minutes * 60.0
    bf16 = bool(cfg.bf16)
    history: list[dict[str, float]] = []
    best = (-1.0, copy.deepcopy(net.state_dict()))
    t0 = time.perf_counter()
    bar = tqdm(total=int(budget), desc="train", unit="s", disable=None if progress else True)
    epoch = 0
    net.train()
    while epoch < cfg.max_epochs:
        losses = []
        for _ in range(iters):
            frac = min(1.0, max((time.perf_counter() - t0) / budget, epoch / cfg.max_epochs))
            for group in opt.param_groups:
                group["lr"] = peak_lr * (1 - frac) ** 0.9
            xs, ys = [], []
            for _b in range(plan.batch_size):
                case = train_cases[int(rng.integers(len(train_cases)))]
                x, y = _patch(case, plan.patch_size, rng, rng.random() < cfg.foreground_fraction)
                xs.append(x)
                ys.append(y)
            xa, ya = np.stack(xs), np.stack(ys)
            if plan.slice_axis is not None:  # one-slice-thick patches for a 2D network
                xa, ya = xa.squeeze(plan.slice_axis + 1), ya.squeeze(plan.slice_axis + 1)
            xb = torch.from_numpy(xa[:, None])
            yb = torch.from_numpy(ya.astype(np.int64))
            xb, yb = aug(xb, yb, gen)
            xb, yb = xb.to(device), yb.to(device)
            with bf16_autocast(device, bf16):
                logits = net(xb)
            # a deeply supervised network stacks its heads on dimension 1 (the loss casts to
            # float32 itself)
            heads = list(torch.unbind(logits, 1)) if logits.dim() > xb.dim() else logits
            loss = loss_fn(heads, yb[:, None])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
            opt.step()
            losses.append(float(loss.item()))
        epoch += 1
        elapsed = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "lr": opt.param_groups[0]["lr"],
            "seconds": elapsed,
        }
        done = elapsed >= budget or epoch >= cfg.max_epochs
        if epoch % cfg.val_every == 0 or done:
            row["val_dice"] = _dice_work(net, val_cases, plan, bf16)
            if row["val_dice"] > best[0]:
                best = (row["val_dice"], copy.deepcopy(net.state_dict()))
        history.append(row)
        bar.n = min(int(elapsed), int(budget))
        bar.set_postfix(loss=f"{row['loss']:.3f}", dice=f"{row.get('val_dice', float('nan')):.3f}")
        bar.refresh()
        if done:
            break
    bar.close()
    net.load_state_dict(best[1])
    net.to("cpu").eval()
    val_pairs = [(ds.cases[i].id, loaded[i]) for i in val_idx]
    entropy: dict[str, float | None] = {}
    # on the CPU, as bundles predict by default: bfloat16 where this CPU has it natively
    cpu_bf16 = bf16 and native_bf16(torch.device("cpu"))
    raw = native_predictions(net, plan, val_pairs, entropy=entropy, bf16=cpu_bf16)
    plan.postprocess, cases_metrics = choose_postprocessing(raw, plan)
    summary = summarize_cases(cases_metrics)
    return TrainedSegmenter(
        net=net,
        plan=plan,
        config=cfg,
        history=history,
        val_metrics={
            "classes": summary,
            "n": len(val_pairs),
            "mean_dice": float(np.mean([summary[c]["dice"]["mean"] for c in summary])),
            "structure_entropy": entropy_summary(entropy.values()),
        },
        val_cases=cases_metrics,
        fingerprint=fp.to_dict(),
        data={
            **ds.source,
            "name": ds.name,
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            # a fine-tuned model has also seen what its starting bundle trained on
            "train_ids": [ds.cases[i].id for i in train_idx]
            + sorted(set(seen) - {ds.cases[i].id for i in train_idx}),
            # ... and recognises its training images under other names by their bytes
            "train_digests": file_digests((ds.cases[i].image for i in train_idx), seen),
            "val_ids": [ds.cases[i].id for i in val_idx],
        },
        seconds=time.perf_counter() - start_all,
    )


def native_predictions(
    net: torch.nn.Module,
    plan: Plan,
    pairs: list[tuple[str, tuple[MedicalImage, MedicalImage | None]]],
    *,
    entropy: dict[str, float | None] | None = None,
    bf16: bool = False,
) -> dict[str, tuple[np.ndarray, MedicalImage]]:
    """Label arrays on each case's own grid (before post-processing), with the true masks;
    ``bf16``: the network runs under bfloat16 autocast.

    A given ``entropy`` dict receives each case's mean voxel entropy inside the predicted
    structures (:func:`~medlabel.segment.uncertainty.structure_entropy`, as bundles report it).
    """
    raw: dict[str, tuple[np.ndarray, MedicalImage]] = {}
    for cid, (image, mask) in pairs:
        assert mask is not None
        x, grid = to_network(image, plan)
        probs = predict_probabilities(
            slice_predictor(torch_predictor(net, bf16=bf16), plan.slice_axis),
            x,
            plan.patch_size,
            batch_size=plan.batch_size,
        )
        raw[cid] = (to_native(probs, grid, plan).array, mask)
        if entropy is not None:
            entropy[cid] = structure_entropy(probs)["all"]
    return raw


def choose_postprocessing(
    raw: dict[str, tuple[np.ndarray, MedicalImage]], plan: Plan
) -> tuple[dict[int, dict[str, bool]], dict[str, dict[str, dict[str, float | None]]]]:
    """Per class, switch largest-component and hole filling on where they raise mean Dice.

    Returns the rules and the per-case metrics with the rules applied.
    """
    rules: dict[int, dict[str, bool]] = {}
    for c in plan.classes:

        def score(rule: dict[str, bool], c: int = c) -> float:
            vals = []
            for pred, mask in raw.values():
                p = postprocess(pred, {c: rule}) == c
                t = mask.array == c
                d = p.sum() + t.sum()
                vals.append(1.0 if d == 0 else 2.0 * (p & t).sum() / d)
            return float(np.mean(vals))

        base = score({})
        candidates = [
            {"largest_component": True},
            {"fill_holes": True},
            {"largest_component": True, "fill_holes": True},
        ]
        scored = [(score(r), r) for r in candidates]
        best_score, best_rule = max(scored, key=lambda t: t[0])
        if best_score > base + 1e-4:
            rules[c] = best_rule
    metrics = {}
    for cid, (pred, mask) in raw.items():
        final = mask.with_array(postprocess(pred, rules), metadata={"labels": plan.classes})
        metrics[cid] = case_metrics(final, mask, plan.classes)
    return rules, metrics


def train_ensemble(
    dataset: SegmentationDataset,
    config: SegTrainConfig | None = None,
    *,
    folds: int = 5,
    progress: bool = True,
) -> list[TrainedSegmenter]:
    """Cross-validation ensemble: one member per fold, all sharing one plan.

    The plan comes from the fingerprint of every training case; member ``k`` holds out fold
    ``k`` for its validation. Post-processing is decided on the pooled out-of-fold predictions
    (each validation case predicted by the member that did not train on it), and the pooled
    per-case metrics become every member's validation record: an honest estimate of one
    member, which the averaged ensemble usually beats.
    """
    cfg = config or SegTrainConfig()
    start = _starting_bundle(cfg.init_from, dataset.classes) if cfg.init_from else None
    seen = trained_ids(start.meta) if start is not None else set()
    splits = dataset.folds(folds, seed=cfg.split_seed, seen=seen)
    train_idx = dataset.indices("train")
    fp = fingerprint_cases(_readable(dataset, train_idx), dataset.modality)
    plan = _plan_for(fp, dataset.classes, cfg, start)
    members: list[TrainedSegmenter] = []
    raw: dict[str, tuple[np.ndarray, MedicalImage]] = {}
    entropy: dict[str, float | None] = {}
    for k, fold in enumerate(splits):
        member_cfg = copy.deepcopy(cfg)
        member_cfg.seed = cfg.seed + k
        member_cfg.init_member = k
        trained = train_segmenter(fold, member_cfg, progress=progress, plan=plan)
        used = set(trained.data["val_ids"])  # less the cases that could not be read
        pairs = [
            (fold.cases[i].id, fold.load(i))
            for i in fold.indices("val")
            if fold.cases[i].id in used
        ]
        raw.update(
            native_predictions(
                trained.net,
                trained.plan,
                pairs,
                entropy=entropy,
                bf16=bool(trained.config.bf16) and native_bf16(torch.device("cpu")),
            )
        )
        members.append(trained)
    rules, cases_metrics = choose_postprocessing(raw, plan)
    summary = summarize_cases(cases_metrics)
    pooled = {
        "classes": summary,
        "n": len(cases_metrics),
        "mean_dice": float(np.mean([summary[c]["dice"]["mean"] for c in summary])),
        "note": f"out-of-fold predictions of {folds} members, pooled",
        # one member's entropy: the averaged ensemble is surer, so its checks are lenient
        "structure_entropy": entropy_summary(entropy.values()),
    }
    for m in members:
        m.plan.postprocess = rules
        m.val_metrics = pooled
        m.val_cases = cases_metrics
    return members
