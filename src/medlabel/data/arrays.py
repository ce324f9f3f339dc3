"""Loading dataset samples as network-ready ``uint8`` arrays, with progress and failures.

Unreadable or unusable files (corrupt, wrong dimensionality, no finite values) are skipped
and reported with their reason instead of stopping the job.

Example:
    >>> import numpy as np
    >>> from medlabel.data.dataset import ClassificationDataset
    >>> from medlabel.image import MedicalImage
    >>> from medlabel.preprocess.network import InputSpec
    >>> ds = ClassificationDataset("toy", ["a", "b"], ["x", "y"], np.array([0, 1]),
    ...     np.array(["train", "train"]), loader=lambda i: MedicalImage(np.full((40, 40), i)))
    >>> batch = load_arrays(ds, np.array([0, 1]), InputSpec((16, 16)), progress=False)
    >>> batch.images.shape, batch.labels.tolist(), batch.failures, batch.sizes.tolist()
    ((2, 1, 16, 16), [0, 1], [], [[40, 40], [40, 40]])
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.errors import MedlabelError
from medlabel.preprocess.network import InputSpec, native_size, network_input

__all__ = ["ArrayBatch", "load_arrays"]

log = logging.getLogger(__name__)


@dataclass
class ArrayBatch:
    """Images ``(N, C, *size)`` uint8, their labels and ids, the samples that failed, and
    each image's native spatial size before resizing (``(N, dims)``, array order)."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    indices: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    sizes: np.ndarray | None = None


def load_arrays(
    dataset: ClassificationDataset,
    indices: np.ndarray,
    spec: InputSpec,
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "loading images",
) -> ArrayBatch:
    """Read and prepare the given samples (threads overlap file decoding).

    Raises:
        DatasetError: every sample failed.
    """

    def one(i: int) -> tuple[np.ndarray, tuple[int, ...]] | str:
        try:
            image = dataset.image(int(i))
            return network_input(image, spec), native_size(image, spec)
        except MedlabelError as err:
            return err.reason
        except (OSError, ValueError) as err:
            return f"{type(err).__name__}: {err}"

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(n_workers) as pool:
        results = list(
            tqdm(
                pool.map(one, indices),
                total=len(indices),
                desc=desc,
                unit="img",
                disable=None if progress else True,
                leave=False,
            )
        )
    done = [(k, r) for k, r in enumerate(results) if not isinstance(r, str)]
    keep = [k for k, _ in done]
    failures = [
        (dataset.ids[int(indices[k])], str(r)) for k, r in enumerate(results) if isinstance(r, str)
    ]
    for sample, reason in failures[:5]:
        log.warning("skipped %s: %s", sample, reason)
    if not keep:
        first = failures[0][1] if failures else "?"
        raise DatasetError(
            dataset.source.get("path"), f"none of {len(indices)} images could be used; {first}"
        )
    images = np.stack([array for _, (array, _) in done])
    sizes = np.array([size for _, (_, size) in done], dtype=np.int64)
    idx = np.asarray(indices)[keep]
    return ArrayBatch(
        images=images,
        labels=dataset.labels[idx],
        ids=[dataset.ids[int(i)] for i in idx],
        indices=idx,
        failures=failures,
        sizes=sizes,
    )
