"""``medlabel train classify`` and ``medlabel train segment``.

Example:
    >>> from typer.testing import CliRunner
    >>> from medlabel.cli import app
    >>> CliRunner().invoke(app, ["train", "--help"]).exit_code
    0
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from medlabel.cli.app import (
    _errors,
    app,
)
from medlabel.errors import MedlabelError
from medlabel.segment.networks import SEGMENTATION_NETWORKS

train_app = typer.Typer(help="Train models (writes a model bundle).", no_args_is_help=True)
app.add_typer(train_app, name="train")


DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="Training device: auto (a CUDA GPU if torch sees one), cpu, cuda."
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto (segmentation: bfloat16 autocast where the hardware has it natively; "
        "classification: float32), bf16 or fp32.",
    ),
]
FromReviewOpt = Annotated[
    Path | None,
    typer.Option(
        "--from-review",
        help="Train on the accepted and corrected results of this annotation job folder.",
    ),
]
ReviewModelOpt = Annotated[
    str | None,
    typer.Option("--review-model", help="With --from-review: whose results (model name)."),
]


def _reviewed_data(folder: Path, model: str | None, task: str) -> tuple[Path, str]:
    """Export reviewed results to a training CSV; returns it and the label mapping."""
    from medlabel.review.export import export_reviewed

    if not model:
        raise MedlabelError(folder, "--from-review needs --review-model NAME (whose results)")
    export = export_reviewed(folder, model)
    if export.task != task:
        raise MedlabelError(folder, f"model {model} is a {export.task} model, not {task}")
    typer.echo(f"training on {export.rows} reviewed result(s) of {model} ({export.path})")
    return export.path, export.labels


def _check_out(out: Path, kinds: tuple[str, ...], data: Path | None) -> None:
    """Refuse an ``--out`` that saving the bundle would destroy, before any training: see
    :func:`~medlabel.models.files.check_bundle_target`."""
    from medlabel.models.files import check_bundle_target

    check_bundle_target(out, kinds, data)


def _precision(value: str) -> bool | None:
    """``--precision``: ``None`` for auto, else whether to autocast to bfloat16."""
    if value not in ("auto", "bf16", "fp32"):
        raise typer.BadParameter("auto, bf16 or fp32", param_hint="--precision")
    return None if value == "auto" else value == "bf16"


@train_app.command("classify")
@_errors
def train_classify(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="MedMNIST .npz, CSV manifest or class folders."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="auto, compact, resnet18, resnet34, resnet50, densenet121, efficientnet-b0, "
            "or classic:<logistic|svm|random-forest|gradient-boosting>.",
        ),
    ] = "auto",
    size: Annotated[
        int | None, typer.Option("--size", min=8, help="Input size in pixels (28/64/128/224).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Maximum epochs.")] = None,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", min=0.01, help="CPU training budget per model.")
    ] = 10.0,
    ensemble: Annotated[
        int, typer.Option("--ensemble", min=1, help="Train N seeds and average them.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    flip: Annotated[
        bool | None, typer.Option("--flip/--no-flip", help="Allow flips (default: by data).")
    ] = None,
    licence: Annotated[
        str | None, typer.Option("--licence", help="Data licence for the model card.")
    ] = None,
    group_regex: Annotated[
        str | None,
        typer.Option("--group-regex", help="Regex finding the patient id in file names."),
    ] = None,
    precision: PrecisionOpt = "auto",
    device: DeviceOpt = "auto",
    from_review: FromReviewOpt = None,
    review_model: ReviewModelOpt = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Fine-tune: start from this CNN bundle's network, recipe and weights (its "
            "classes must include the data's; a tenth of its learning rate).",
        ),
    ] = None,
) -> None:
    """Train a classifier and write a model bundle (weights, ONNX, preprocessing, card)."""
    from medlabel.classify.bundle import (
        KINDS,
        load_bundle,
        save_bundle,
        save_classic_bundle,
        train_config_of,
    )
    from medlabel.classify.classic import train_classic
    from medlabel.classify.recipe import auto_config
    from medlabel.classify.train import MIN_CALIBRATION_IMAGES, train_classifier
    from medlabel.data.sources import open_dataset
    from medlabel.devices import resolve_device

    resolve_device(device)  # a wrong --device fails before any data is read
    bf16 = _precision(precision)
    _check_out(out, KINDS, data)
    if init_from is not None and (model != "auto" or size is not None):
        raise typer.BadParameter(
            "fine-tuning keeps the bundle's network and input size; drop --model and --size",
            param_hint="--init-from",
        )
    start = load_bundle(init_from, engine="torch") if init_from is not None else None
    if start is not None and start.kind != "cnn":
        raise MedlabelError(start.path, "fine-tuning starts from a CNN bundle, not a classic one")
    if from_review is not None:
        data, _ = _reviewed_data(from_review, review_model, "classification")
    if data is None:
        raise MedlabelError(None, "give --data DATA or --from-review JOB_FOLDER")
    _check_out(out, KINDS, data)
    dataset = open_dataset(data, group_pattern=group_regex)
    command = "medlabel " + " ".join(sys.argv[1:]) if sys.argv else None
    if model.startswith("classic:"):
        trained = train_classic(
            dataset, estimator=model.split(":", 1)[1], size=(size or 64,) * 2, seed=seed
        )
        path = save_classic_bundle(trained, out, licence=licence, command=command)
        typer.echo(f"wrote {path} (validation AUC {_auc_text(trained.val_metrics.get('auc'))})")
        return
    if start is not None:  # the bundle's own recipe, on this run's clock and seed
        cfg = train_config_of(start)
        cfg.budget_minutes, cfg.seed, cfg.num_threads = budget_minutes, seed, None
        cfg.init_from = init_from
    else:
        cfg = auto_config(dataset, budget_minutes=budget_minutes, size=size, seed=seed)
    if model != "auto":
        cfg.model = model
        if model != "compact":
            cfg.model_kwargs = {}
    if epochs is not None:
        cfg.epochs = epochs
    if flip is not None:
        cfg.augment.flip = flip
    cfg.device = device
    if bf16 is not None:
        cfg.bf16 = bf16
    members = []
    for k in range(ensemble):
        cfg_k = type(cfg).from_dict({**cfg.to_dict(), "seed": seed + k, "init_member": k})
        members.append(train_classifier(dataset, cfg_k))
    if len(members) > 1:
        from medlabel.classify.ensemble import calibrate_ensemble

        temperature, threshold = calibrate_ensemble(members)
    else:
        temperature, threshold = members[0].temperature, members[0].threshold
    path = save_bundle(
        members, out, temperature=temperature, threshold=threshold, licence=licence, command=command
    )
    skipped = sum(len(m.failures) for m in members)
    val = members[0].val_metrics
    typer.echo(
        f"wrote {path} ({cfg.model} {'x'.join(map(str, cfg.size))}, "
        f"validation AUC {_auc_text(val.get('auc'))} on {val['n']} images"
        + (" (too few to judge)" if val["n"] < MIN_CALIBRATION_IMAGES else "")
        + (f", {skipped} unreadable image(s) skipped" if skipped else "")
        + ")"
    )
    if val.get("calibration"):
        typer.echo(f"note: calibration: {val['calibration']}")
    if members[0].ood is None:
        typer.echo(
            "note: no out-of-distribution check (it needs at least 10 training and 10 "
            "validation images): annotate cannot flag images unlike the training data"
        )


@train_app.command("segment")
@_errors
def train_segment(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="MSD folder (imagesTr/labelsTr), images/+masks/, CSV."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Mask value to class name, e.g. 150=lung_right,250=heart."),
    ] = None,
    dims: Annotated[
        int | None,
        typer.Option("--dims", help="2 or 3 (default: that of the images); 2 on volumes: slices."),
    ] = None,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", min=0.01, help="CPU training budget.")
    ] = 15.0,
    network: Annotated[
        str,
        typer.Option(
            "--network",
            help=f"{', '.join(SEGMENTATION_NETWORKS[:-1])} or {SEGMENTATION_NETWORKS[-1]}.",
        ),
    ] = "unet",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Cases held out for validation.")
    ] = 0.2,
    ensemble: Annotated[
        int, typer.Option("--ensemble", min=1, help="N > 1: N-fold cross-validation ensemble.")
    ] = 1,
    width: Annotated[
        int,
        typer.Option("--width", help="Channels of the first level (x2 per level, up to x8)."),
    ] = 16,
    elastic: Annotated[
        float,
        typer.Option("--elastic", help="Elastic deformation strength in voxels (0: off)."),
    ] = 0.0,
    precision: PrecisionOpt = "auto",
    mirror: Annotated[
        str,
        typer.Option(
            "--mirror",
            help="Flips in augmentation and TTA: auto (left-right on volumes without "
            "left/right classes), all (every axis, as nnU-Net) or none.",
        ),
    ] = "auto",
    full_res: Annotated[
        bool,
        typer.Option(
            "--full-res",
            help="A first network level at the input's resolution (finer boundaries; a step "
            "costs 4-5x more on a CPU).",
        ),
    ] = False,
    optimizer: Annotated[
        str,
        typer.Option(
            "--optimizer",
            help="adamw, or sgd (momentum 0.99, Nesterov, as nnU-Net; peak rate 1e-2).",
        ),
    ] = "adamw",
    device: DeviceOpt = "auto",
    licence: Annotated[
        str | None, typer.Option("--licence", help="Data licence for the model card.")
    ] = None,
    from_review: FromReviewOpt = None,
    review_model: ReviewModelOpt = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Fine-tune: start from this segmentation bundle's plan and weights (same "
            "classes; a tenth of the usual learning rate).",
        ),
    ] = None,
) -> None:
    """Train a self-configuring U-Net and write a segmentation bundle (weights, ONNX, plan).

    The time budget is per network (an ensemble of N takes N times as long).
    """
    from medlabel.devices import resolve_device
    from medlabel.segment.augment import SegAugment
    from medlabel.segment.bundle import KINDS, save_segmentation_bundle
    from medlabel.segment.dataset import open_segmentation_dataset
    from medlabel.segment.plan import MIRROR_CHOICES
    from medlabel.segment.train import (
        OPTIMIZERS,
        SegTrainConfig,
        train_ensemble,
        train_segmenter,
    )

    resolve_device(device)  # a wrong --device fails before any data is read
    bf16 = _precision(precision)
    if mirror not in MIRROR_CHOICES:
        raise typer.BadParameter(", ".join(MIRROR_CHOICES), param_hint="--mirror")
    if optimizer not in OPTIMIZERS:
        raise typer.BadParameter(", ".join(OPTIMIZERS), param_hint="--optimizer")
    _check_out(out, KINDS, data)
    if from_review is not None:
        data, mapping = _reviewed_data(from_review, review_model, "segmentation")
        labels = labels or mapping
    if data is None:
        raise MedlabelError(None, "give --data DATA or --from-review JOB_FOLDER")
    _check_out(out, KINDS, data)
    dataset = open_segmentation_dataset(data, labels)
    image, _ = dataset.load(0)
    if dims is not None and dims > image.ndim:
        raise typer.BadParameter(
            f"the images are {image.ndim}D; a {dims}D model needs volumes", param_hint="--dims"
        )
    cfg = SegTrainConfig(
        budget_minutes=budget_minutes,
        network=network,
        seed=seed,
        val_fraction=val_fraction,
        dims=dims if dims is not None and dims < image.ndim else None,
        width=width,
        bf16=bf16,
        augment=SegAugment(elastic=elastic),
        device=device,
        mirror=mirror,
        full_res=full_res,
        optimizer=optimizer,
        init_from=init_from,
    )
    trained = (
        train_ensemble(dataset, cfg, folds=ensemble)
        if ensemble > 1
        else [train_segmenter(dataset, cfg)]
    )
    command = "medlabel " + " ".join(sys.argv[1:]) if sys.argv else None
    path = save_segmentation_bundle(trained, out, licence=licence, command=command)
    dice = ", ".join(
        f"{c} {v['dice']['mean']:.4f}" for c, v in trained[0].val_metrics["classes"].items()
    )
    typer.echo(f"wrote {path} (validation Dice: {dice})")


def _auc_text(auc: float | None) -> str:
    """A validation AUC as printed (``n/a`` when it cannot be scored).

    Example:
        >>> _auc_text(0.98765), _auc_text(None)
        ('0.9877', 'n/a')
    """
    return "n/a" if auc is None else f"{auc:.4f}"
