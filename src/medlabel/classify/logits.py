"""From a classifier's logits to probabilities, without torch.

Prediction through ONNX Runtime needs no deep-learning framework, so this lives apart from
:mod:`.networks`, which imports torch (over a second at start-up on a small CPU).

Example:
    >>> import numpy as np
    >>> p = probabilities(np.array([[0.0, 0.0], [2.0, 0.0]]), "binary")
    >>> p.dtype.name, p.astype(float).round(3).tolist()
    ('float32', [[0.5, 0.5], [0.881, 0.119]])
    >>> probabilities(np.array([[0.0, 2.0]]), "multilabel").astype(float).round(3).tolist()
    [[0.5, 0.881]]
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax

__all__ = ["probabilities"]


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax over classes (a sigmoid per class for multi-label tasks), as float32."""
    x = np.asarray(logits, dtype=np.float32)
    out = expit(x) if task == "multilabel" else softmax(x, axis=1)
    return np.asarray(out, dtype=np.float32)
