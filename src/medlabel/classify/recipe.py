"""Choosing a training recipe from the data and a CPU budget (``--model auto``).

The rules, from measurements on two CPU cores: small images (up to 64 px) train fastest and
best with the compact CNN at their native size; larger 2D images are brought to 128 px for a
ResNet-18 when the budget allows several epochs, else to 64 px for the compact CNN; volumes use
the 3D compact CNN. Flips are enabled only for data without anatomical left/right (histology,
blood cells, dermoscopy, retina).

Example:
    >>> import numpy as np
    >>> from medlabel.data.dataset import ClassificationDataset
    >>> from medlabel.image import MedicalImage
    >>> ds = ClassificationDataset("pneumoniamnist", ["n", "p"], ["a", "b"], np.array([0, 1]),
    ...     np.array(["train", "train"]), loader=lambda i: MedicalImage(np.zeros((28, 28))))
    >>> cfg = auto_config(ds, budget_minutes=10)
    >>> cfg.model, cfg.size, cfg.augment.flip
    ('compact', (28, 28), False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlabel.classify.augment import Augment
from medlabel.classify.train import TrainConfig
from medlabel.data.dataset import ClassificationDataset

__all__ = ["ORIENTATION_FREE", "auto_config"]

#: MedMNIST flags whose images have no anatomical orientation (flips are safe).
ORIENTATION_FREE = {"pathmnist", "dermamnist", "bloodmnist", "tissuemnist", "retinamnist"}


def _probe(ds: ClassificationDataset, n: int = 5) -> tuple[tuple[int, ...], int, int]:
    """Typical spatial size (ITK order reversed to numpy), channels and dims of a few samples."""
    shapes, channels, dims = [], 1, 2
    idx = ds.indices("train")
    for i in idx[: min(n, len(idx))]:
        img = ds.image(int(i))
        shapes.append(img.array.shape[: img.ndim])
        channels = 3 if img.channels >= 3 else 1
        dims = img.ndim if not (img.ndim == 3 and img.size[2] == 1) else 2
    shape = tuple(int(np.median([s[k] for s in shapes])) for k in range(len(shapes[0])))
    return shape[-dims:], channels, dims


def auto_config(
    ds: ClassificationDataset,
    *,
    budget_minutes: float = 10.0,
    size: int | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """A :class:`TrainConfig` suited to ``ds`` within ``budget_minutes`` of CPU training."""
    shape, channels, dims = _probe(ds)
    flag = str(ds.source.get("flag", ds.name)).lower()
    flip = flag in ORIENTATION_FREE
    n_train = len(ds.indices("train"))
    if dims == 3:
        side = size or min(max(shape), 64)
        cfg = TrainConfig(
            model="compact",
            size=(side,) * 3,
            channels=channels,
            batch_size=16,
            epochs=60,
            lr=2e-3,
            model_kwargs={"width": 16},
        )
    elif (size or max(shape)) <= 64:
        side = size or max(shape)
        cfg = TrainConfig(
            model="compact",
            size=(side, side),
            channels=channels,
            batch_size=64,
            epochs=60,
            lr=3e-3,
            model_kwargs={"width": 32},
        )
    else:
        # larger X-rays: 128 px ResNet-18 if the budget affords ~8 epochs, else 64 px compact
        side = size or (128 if budget_minutes * 60 / max(n_train, 1) > 0.8 else 64)
        model = "resnet18" if side >= 128 else "compact"
        cfg = TrainConfig(
            model=model,
            size=(side, side),
            channels=channels,
            batch_size=32,
            epochs=40,
            lr=1e-3 if model == "resnet18" else 3e-3,
            model_kwargs={} if model == "resnet18" else {"width": 32},
        )
    cfg.augment = Augment(flip=flip)
    cfg.budget_minutes = budget_minutes
    cfg.seed = seed
    for key, value in (overrides or {}).items():
        setattr(cfg, key, value)
    return cfg
