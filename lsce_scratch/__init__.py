"""lsce-scratch: label-smoothing cross-entropy from scratch.

The NumPy core is importable from here without importing torch; the PyTorch bridge lives
in :mod:`lsce_scratch.nn`.
"""

from lsce_scratch.gradcheck import check_gradient, numerical_gradient, rel_error
from lsce_scratch.losses import (
    label_smoothing_cross_entropy,
    lsce_backward,
    lsce_forward,
    smooth_labels,
)
from lsce_scratch.softmax import log_softmax, logsumexp, softmax

__all__ = [
    "check_gradient",
    "label_smoothing_cross_entropy",
    "log_softmax",
    "logsumexp",
    "lsce_backward",
    "lsce_forward",
    "numerical_gradient",
    "rel_error",
    "smooth_labels",
    "softmax",
]
__version__ = "0.1.0"
