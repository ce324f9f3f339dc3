"""Out-of-distribution check: is an image of the kind the classifier was trained on?

A calibrated probability says how sure a model is *between its classes*; it says nothing about
whether the image belongs to its world at all (a photograph or pure noise can come out as
"PNEUMONIA" with probability 1.000). This check measures how far an image's deep features
(the input of the network's last linear layer) lie from those of the training images: the
Mahalanobis distance under a Ledoit-Wolf shrunk covariance (scikit-learn), which stays well
conditioned when the features outnumber the images. The threshold is a high quantile of the
distances of the validation images, which the network never trained on, so about
``1 - quantile`` of new in-distribution images are flagged by chance.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> check = OODCheck.fit(rng.normal(size=(500, 8)), rng.normal(size=(200, 8)))
    >>> check.flags(np.stack([np.zeros(8), np.full(8, 6.0)])).tolist()
    [False, True]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlabel.io.atomic import atomic_output

__all__ = ["OODCheck"]


@dataclass
class OODCheck:
    """Feature mean and precision of the training images, and the flagging threshold.

    Attributes:
        mean: feature mean ``(D,)``.
        precision: inverse of the shrunk covariance ``(D, D)``.
        threshold: distances above this are out of distribution.
        quantile: the validation quantile the threshold came from.
    """

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    quantile: float = 0.995

    @classmethod
    def fit(cls, train: np.ndarray, val: np.ndarray, quantile: float = 0.995) -> OODCheck:
        """Fit on training features; set the threshold on validation features.

        Raises:
            ValueError: too few images, or features of different widths.
        """
        from sklearn.covariance import LedoitWolf

        train, val = np.asarray(train, np.float64), np.asarray(val, np.float64)
        if train.ndim != 2 or val.ndim != 2 or train.shape[1] != val.shape[1]:
            raise ValueError("train and validation features must be (N, D) of one width D")
        if len(train) < 10 or len(val) < 10:
            raise ValueError("the check needs at least 10 training and 10 validation images")
        lw = LedoitWolf().fit(train)
        check = cls(lw.location_, lw.precision_, 0.0, quantile)
        check.threshold = float(np.quantile(check.distance(val), quantile))
        return check

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``feats`` ``(N, D)`` from the training mean."""
        d = np.asarray(feats, np.float64) - self.mean
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, self.precision, d), 0.0))

    def flags(self, feats: np.ndarray) -> np.ndarray:
        """``True`` where an image is out of distribution."""
        return self.distance(feats) > self.threshold

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the check as ``.npz`` (atomically)."""
        with atomic_output(path) as tmp, Path(tmp).open("wb") as fh:
            np.savez(
                fh,
                mean=self.mean.astype(np.float32),
                precision=self.precision.astype(np.float32),
                threshold=np.float64(self.threshold),
                quantile=np.float64(self.quantile),
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OODCheck:
        """Read a check written by :meth:`save`."""
        with np.load(path) as z:
            return cls(
                z["mean"].astype(np.float64),
                z["precision"].astype(np.float64),
                float(z["threshold"]),
                float(z["quantile"]),
            )
