"""Active learning: which pending results a person should review next.

Strategies over the pending predictions of the store:

* ``uncertainty``: highest uncertainty first (normalised entropy, or mean voxel entropy for
  segmentation); results without an uncertainty (rule-based recipes) come last;
* ``margin``: smallest gap between the two most likely classes first (classification);
  results without a margin (segmentations) follow, most uncertain first. Results flagged
  out of distribution (``ood``) lead, as under ``uncertainty`` (where their uncertainty is
  1): their margin says nothing about an image unlike the training data;
* ``random``: a seeded random sample (the baseline every strategy must beat);
* ``diversity``: greedy k-centre on small grey thumbnails, so the chosen items cover the
  archive's appearance instead of clustering on one kind of image; among equally far items
  the more uncertain goes first.

Example:
    >>> rows = [{"item": "a", "uncertainty": 0.2, "margin": 0.6},
    ...         {"item": "b", "uncertainty": 0.9, "margin": 0.1},
    ...         {"item": "c", "uncertainty": None, "margin": None}]
    >>> [r["item"] for r in rank(rows, "uncertainty", 3)]
    ['b', 'a', 'c']
    >>> [r["item"] for r in rank(rows, "margin", 2)]
    ['b', 'a']
    >>> [r["item"] for r in rank([*rows, {"item": "d", "margin": 0.9, "ood": True}], "margin", 2)]
    ['d', 'b']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["STRATEGIES", "k_center", "rank"]

STRATEGIES = ("uncertainty", "margin", "random", "diversity")


def _key(value: Any, descending: bool) -> tuple[bool, float]:
    if value is None:
        return (True, 0.0)
    return (False, -float(value) if descending else float(value))


def k_center(features: np.ndarray, n: int, first: int = 0) -> list[int]:
    """Greedy k-centre: start at ``first``, then always the row farthest from those chosen.

    Example:
        >>> k_center(np.array([[0.0], [0.1], [5.0], [10.0]]), 3)
        [0, 3, 2]
    """
    if len(features) == 0 or n <= 0:
        return []
    chosen = [first]
    dist = np.linalg.norm(features - features[first], axis=1)
    while len(chosen) < min(n, len(features)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            remaining = [i for i in range(len(features)) if i not in chosen]
            chosen += remaining[: n - len(chosen)]
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
    return chosen


def rank(
    rows: Sequence[dict[str, Any]],
    strategy: str,
    n: int,
    *,
    seed: int = 0,
    features: Callable[[dict[str, Any]], np.ndarray | None] | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` rows to review first under ``strategy``.

    ``features`` (for ``diversity``) maps a row to a feature vector (``None`` when the item
    has none; such items follow the diverse ones, most uncertain first).

    Raises:
        ValueError: an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    rows = list(rows)
    if strategy == "uncertainty":
        return sorted(rows, key=lambda r: _key(r.get("uncertainty"), True))[:n]
    if strategy == "margin":
        # out-of-distribution results lead; results without a margin (segmentations) follow
        # those with one, most uncertain first
        return sorted(
            rows,
            key=lambda r: (
                not r.get("ood"),
                *_key(r.get("margin"), False),
                *_key(r.get("uncertainty"), True),
            ),
        )[:n]
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(len(rows))
        return [rows[int(i)] for i in order[:n]]
    by_uncertainty = sorted(rows, key=lambda r: _key(r.get("uncertainty"), True))
    vectors = [features(r) if features else None for r in by_uncertainty]
    with_f = [i for i, v in enumerate(vectors) if v is not None]
    if not with_f:
        return by_uncertainty[:n]
    matrix = np.stack([np.asarray(vectors[i], np.float64).ravel() for i in with_f])
    picked = [with_f[j] for j in k_center(matrix, n)]
    rest = [i for i in range(len(by_uncertainty)) if i not in set(picked)]
    return [by_uncertainty[i] for i in (picked + rest)[:n]]
