"""Matplotlib pictures of calibration (lessons 08 and 09);
the only module that imports it."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from numpy.typing import ArrayLike

from lsce_scratch.calibration import (
    ReliabilityBins,
    expected_calibration_error,
    reliability_bins,
)


# --8<-- [start:reliability_diagram]
def reliability_diagram(
    ax: Axes,
    probs: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    title: str | None = None,
) -> ReliabilityBins:
    """Draw a top-label reliability diagram (Guo et al. 2017) on ``ax``;
    return its bins.

    Blue bars: acc(B_m) per confidence bin; red hatched bars: the gap up or down to
    conf(B_m); dashed: perfect calibration. Empty bins are left blank. The bar
    width shows the bin, not how many rows it holds, so the count of each bin is
    printed at its foot.
    """
    bins = reliability_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    filled = bins.count > 0
    left, width = bins.edges[:-1][filled], 1.0 / n_bins
    accuracy, confidence = bins.accuracy[filled], bins.confidence[filled]
    ax.bar(
        left,
        accuracy,
        width,
        align="edge",
        color="tab:blue",
        edgecolor="k",
        label="accuracy",
    )
    ax.bar(
        left,
        confidence - accuracy,
        width,
        bottom=accuracy,
        align="edge",
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        label="gap to confidence",
    )
    for x, count in zip(left, bins.count[filled], strict=True):
        ax.text(
            x + width / 2,
            0.01,
            str(count),
            ha="center",
            va="bottom",
            fontsize=6,
            rotation=90,
        )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.text(0.04, 0.93, f"ECE = {100 * ece:.2f} %", transform=ax.transAxes, va="top")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_xticks(np.linspace(0, 1, 6))
    if title is not None:
        ax.set_title(title)
    return bins


# --8<-- [end:reliability_diagram]
