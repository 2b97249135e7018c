"""lsce-scratch: label-smoothing cross-entropy from scratch.

The NumPy core is importable from here without importing torch; the PyTorch bridge lives
in :mod:`lsce_scratch.nn`. ``lsce_forward``, ``lsce_backward`` and
``label_smoothing_cross_entropy`` here are the fast versions of :mod:`lsce_scratch.fast`
(lesson 09); :mod:`lsce_scratch.losses` keeps the simple ones that lesson 05 derives,
with the same contract and the same results.
"""

from lsce_scratch.fast import label_smoothing_cross_entropy, lsce_backward, lsce_forward
from lsce_scratch.gradcheck import check_gradient, numerical_gradient, rel_error
from lsce_scratch.losses import smooth_labels
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
__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it
