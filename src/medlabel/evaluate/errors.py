"""The exception type of the evaluation layer.

Example:
    >>> from medlabel.errors import MedlabelError
    >>> err = EvaluationError(None, "y_true has 5 cases but probs has 4 rows")
    >>> isinstance(err, MedlabelError), str(err)
    (True, 'y_true has 5 cases but probs has 4 rows')
"""

from __future__ import annotations

from medlabel.errors import MedlabelError

__all__ = ["EvaluationError"]


class EvaluationError(MedlabelError):
    """Labels, probabilities or settings given to an evaluation function are unusable.

    Raised for mismatched lengths, probabilities outside ``[0, 1]`` or rows that do not sum
    to one, labels outside ``0..K-1``, NaN values, unknown tasks and similar bad input.
    """
