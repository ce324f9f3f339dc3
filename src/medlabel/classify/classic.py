"""The classic family: hand-crafted image features and scikit-learn estimators.

Features are computed on the same ``uint8`` network inputs the CNNs see (so preprocessing is
shared): intensity statistics, grey-level co-occurrence (GLCM) properties, local binary
pattern (LBP) histograms and a histogram of oriented gradients (HOG). Estimators sit in a
``Pipeline`` after a ``StandardScaler`` and their hyper-parameters are chosen by stratified
cross-validation on the training split only.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (6, 1, 32, 32)).astype(np.uint8)
    >>> image_features(images).shape[0]
    6
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from skimage.feature import graycomatrix, graycoprops, hog, local_binary_pattern
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from medlabel.classify.logits import probabilities
from medlabel.classify.resolution import size_record
from medlabel.data.arrays import load_arrays
from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.errors import MedlabelError
from medlabel.evaluate.calibration import TemperatureScaler, choose_threshold
from medlabel.models.files import file_digests
from medlabel.preprocess.network import InputSpec

__all__ = [
    "ESTIMATORS",
    "ClassicModel",
    "feature_names",
    "fit_classic",
    "image_features",
    "train_classic",
]

log = logging.getLogger(__name__)

_GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
_GLCM_DIST = (1, 2, 4)
_LBP = ((8, 1.0), (16, 2.0))
_HOG_SIZE = 64


def _plane(image: np.ndarray) -> np.ndarray:
    """One grey 2D plane from a network input ``(C, H, W)`` (3D: the middle slice)."""
    arr = image.mean(axis=0) if image.shape[0] > 1 else image[0]
    if arr.ndim == 3:
        arr = arr[arr.shape[0] // 2]
    return np.asarray(arr, dtype=np.uint8)


def _one(image: np.ndarray) -> np.ndarray:
    plane = _plane(image)
    values = plane.astype(np.float64).ravel()
    hist = np.bincount(plane.ravel(), minlength=256) / values.size
    nz = hist[hist > 0]
    first = [
        values.mean(),
        values.std(),
        *np.percentile(values, [1, 10, 25, 50, 75, 90, 99]),
        float(stats.skew(values)) if values.std() > 0 else 0.0,
        float(stats.kurtosis(values)) if values.std() > 0 else 0.0,
        float(-(nz * np.log2(nz)).sum()),
    ]
    quantised = (plane // 8).astype(np.uint8)  # 32 grey levels
    glcm = graycomatrix(
        quantised,
        _GLCM_DIST,
        [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
        levels=32,
        symmetric=True,
        normed=True,
    )
    texture = [graycoprops(glcm, p).mean(axis=1) for p in _GLCM_PROPS]  # per distance
    lbp = []
    for points, radius in _LBP:
        codes = local_binary_pattern(plane, points, radius, method="uniform")
        lbp.append(np.bincount(codes.astype(int).ravel(), minlength=points + 2) / codes.size)
    from PIL import Image

    small = np.asarray(Image.fromarray(plane).resize((_HOG_SIZE, _HOG_SIZE)), dtype=np.float64)
    grad = hog(small, orientations=8, pixels_per_cell=(16, 16), cells_per_block=(2, 2))
    return np.concatenate([first, *texture, *lbp, grad]).astype(np.float32)


def feature_names() -> list[str]:
    """Names of the columns :func:`image_features` returns."""
    names = ["mean", "std", *[f"p{q}" for q in (1, 10, 25, 50, 75, 90, 99)]]
    names += ["skewness", "kurtosis", "entropy"]
    names += [f"glcm_{p}_d{d}" for p in _GLCM_PROPS for d in _GLCM_DIST]
    names += [f"lbp{p}r{int(r)}_{i}" for p, r in _LBP for i in range(p + 2)]
    cells = _HOG_SIZE // 16 - 1
    names += [f"hog_{i}" for i in range(cells * cells * 4 * 8)]
    return names


def image_features(images: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """Feature matrix ``(N, F)`` for ``uint8`` network inputs ``(N, C, ...)``."""
    rows = [
        _one(img)
        for img in tqdm(images, desc="features", unit="img", disable=None if progress else True)
    ]
    return np.stack(rows)


#: Estimators and the hyper-parameter grids searched by cross-validation.
ESTIMATORS: dict[str, tuple[Any, dict[str, list[Any]]]] = {
    "logistic": (
        LogisticRegression(max_iter=5000),
        {"clf__C": [0.01, 0.1, 1.0, 10.0]},
    ),
    "svm": (
        SVC(kernel="rbf", probability=True, random_state=0),
        {"clf__C": [0.3, 1.0, 3.0, 10.0], "clf__gamma": ["scale"]},
    ),
    "random-forest": (
        RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=-1),
        {"clf__max_depth": [None, 12], "clf__min_samples_leaf": [1, 3]},
    ),
    "gradient-boosting": (
        HistGradientBoostingClassifier(random_state=0, early_stopping=False),
        {
            "clf__learning_rate": [0.05, 0.1],
            "clf__max_leaf_nodes": [15, 31],
            "clf__max_iter": [300],
        },
    ),
}


def fit_classic(
    features: np.ndarray,
    labels: np.ndarray,
    estimator: str = "gradient-boosting",
    *,
    folds: int = 5,
    seed: int = 0,
) -> GridSearchCV:
    """Fit scaler + estimator, choosing hyper-parameters by stratified CV (ROC-AUC).

    ``folds`` drops to the size of the smallest class, so that every fold trains on every
    class.

    Raises:
        MedlabelError: unknown estimator, multi-label labels (not supported here), or a
            class with fewer than 2 samples (no cross-validation can train on it in every
            fold).
    """
    if estimator not in ESTIMATORS:
        raise MedlabelError(
            None, f"unknown estimator {estimator!r}; choose {', '.join(ESTIMATORS)}"
        )
    if labels.ndim != 1:
        raise MedlabelError(None, "classic models support single-label tasks")
    counts = np.bincount(labels)
    least = int(counts[counts > 0].min())
    if least < 2:
        raise MedlabelError(
            None,
            f"a class has {least} training sample: cross-validation needs at least 2 of each",
        )
    base, grid = ESTIMATORS[estimator]
    pipe = Pipeline([("scale", StandardScaler()), ("clf", base)])
    scoring = "roc_auc" if len(np.unique(labels)) == 2 else "roc_auc_ovr"
    search = GridSearchCV(
        pipe,
        grid,
        scoring=scoring,
        cv=StratifiedKFold(min(folds, least), shuffle=True, random_state=seed),
        n_jobs=1,
        refit=True,
    )
    search.fit(features, labels)
    log.info("%s: best %s, CV %s %.4f", estimator, search.best_params_, scoring, search.best_score_)
    return search


@dataclass
class ClassicModel:
    """A fitted classic model with its calibration, threshold and validation record."""

    search: GridSearchCV
    estimator: str
    spec: InputSpec
    class_names: list[str]
    task: str
    temperature: float
    threshold: float | None
    val_metrics: dict[str, Any]
    data: dict[str, Any]
    seconds: float
    failures: list[tuple[str, str]]

    def log_probs(self, images: np.ndarray) -> np.ndarray:
        """Log-probabilities (the 'logits' that temperature scaling divides)."""
        probs = self.search.predict_proba(image_features(images))
        return np.log(np.clip(probs, 1e-7, 1.0))


def train_classic(
    dataset: ClassificationDataset,
    *,
    estimator: str = "gradient-boosting",
    size: tuple[int, ...] = (64, 64),
    channels: int = 1,
    seed: int = 0,
    val_fraction: float = 0.1,
    progress: bool = True,
) -> ClassicModel:
    """Fit a classic model on ``train`` (CV for hyper-parameters), calibrate on ``val``.

    Metrics that cannot be computed are ``None``; ``data["skipped_files"]`` lists the inputs
    the source or the image loading skipped.

    Raises:
        DatasetError: before any training, a class with a single image, missing from the
            data set's own ``val`` split, or left with a single training image (see
            :meth:`~medlabel.data.dataset.ClassificationDataset.with_validation_split`).
    """
    start = time.perf_counter()
    ds = dataset.with_validation_split(val_fraction, seed=seed)
    _refuse_thin_training(ds)
    spec = InputSpec(size, channels)
    train = load_arrays(ds, ds.indices("train"), spec, progress=progress)
    val = load_arrays(ds, ds.indices("val"), spec, progress=progress, desc="val")
    search = fit_classic(
        image_features(train.images, progress=progress), train.labels, estimator, seed=seed
    )
    model = ClassicModel(
        search,
        estimator,
        spec,
        list(ds.class_names),
        str(ds.task),
        1.0,
        None,
        {},
        {
            **ds.summary(train.failures + val.failures),
            "train_used": len(train.ids),
            "val_used": len(val.ids),
            # so that evaluating on them is noticed (medlabel.models.files.trained_ids)
            "train_ids": list(train.ids),
            "val_ids": list(val.ids),
            **(
                {"train_digests": file_digests(ds.file(int(i)) for i in train.indices)}
                if ds.files is not None
                else {}
            ),
            "native_size": size_record(train.sizes) if train.sizes is not None else None,
        },
        0.0,
        train.failures + val.failures,
    )
    val_logits = model.log_probs(val.images)
    model.temperature = float(TemperatureScaler().fit(val_logits, val.labels).temperature)
    probs = probabilities(val_logits / model.temperature, model.task)
    if model.task == "binary":
        model.threshold = float(choose_threshold(val.labels, probs[:, 1], "youden"))
    model.val_metrics = {
        "auc": _val_auc(val.labels, probs, model.task),
        "cv_auc": float(search.best_score_) if np.isfinite(search.best_score_) else None,
        "best_params": {k: v for k, v in search.best_params_.items()},
        "n": len(val.labels),
    }
    model.seconds = time.perf_counter() - start
    return model


def _refuse_thin_training(ds: ClassificationDataset) -> None:
    """Refuse a class with a single training image once validation is set aside: the
    cross-validation that chooses hyper-parameters must train on every class in every fold."""
    counts = ds.counts().get("train", {})
    thin = [f"class {c!r} has {n} training image" for c, n in counts.items() if n == 1]
    if thin:
        raise DatasetError(
            ds.source.get("path"),
            f"{', '.join(thin)} once validation images are set aside: classic models choose "
            "their settings by cross-validation on the training images and need at least 2 "
            "of each class; add images, or train a CNN (e.g. --model compact)",
        )


def _val_auc(labels: np.ndarray, probs: np.ndarray, task: str) -> float | None:
    """Validation ROC-AUC over the classes present (one-vs-rest for more than 2), or
    ``None`` when fewer than 2 classes are present.

    Example:
        >>> probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
        >>> _val_auc(np.array([0, 1, 1]), probs, "multiclass")
        1.0
        >>> _val_auc(np.array([1, 1]), probs[:2], "binary") is None
        True
    """
    present = np.unique(labels)
    if len(present) < 2:
        return None
    if task == "binary":
        return float(roc_auc_score(labels, probs[:, 1]))
    sub = probs[:, present] / probs[:, present].sum(axis=1, keepdims=True).clip(1e-12)
    if len(present) == 2:
        return float(roc_auc_score(labels == present[1], sub[:, 1]))
    return float(roc_auc_score(labels, sub, multi_class="ovr", labels=present))
