"""Scaling over N as a figure: errors against the number of training rows, log-log, with fitted power laws.

One panel per (weak model, target) of a sweep or `w2s scaling`: each series is an error's mean over
seeds at each size (markers) and its fitted line err = a * N^(-alpha) (dashed, alpha in the legend);
a level (the weak model's error, which the w2s_train size does not move) is a horizontal line. The
panels are built by `w2s_hf.experiments.scaling.scaling_panels`; this module only draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path

COLORS = {"w2s_error": "#1f77b4", "ceiling_error": "#2ca02c", "weak_error": "#d62728"}


def _series(ax: Any, series: dict[str, Any]) -> None:
    n, err = np.asarray(series["n"], dtype=float), np.asarray(series["err"], dtype=float)
    color = series.get("color") or COLORS.get(series["error"], None)
    fit = series.get("fit")
    label = series["label"] + (f" (α={fit['alpha']:.2f})" if fit else "")
    line = ax.loglog(n, err, "o", color=color, label=label, markersize=4)[0]
    if fit:
        grid = np.geomspace(n.min(), n.max(), 50)
        ax.loglog(grid, fit["a"] * grid ** -fit["alpha"], "--", color=line.get_color(), linewidth=1)


def plot_scaling(panels: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str | None = None,
                 xlabel: str = "w2s_train rows N", ylabel: str = "test error (mean over seeds)",
                 ncols: int = 3) -> Path:
    """Draw `panels` ({"title", "series": [{"error", "label", "n", "err", "fit"}], "levels": [{"label",
    "value"}]}) into one PNG, atomically. Returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("no scaling panel to draw (the sweep has one w2s_train size and one weak budget)")
    cols = min(ncols, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for series in panel["series"]:
            _series(ax, series)
        for level in panel.get("levels", []):
            ax.axhline(level["value"], color=level.get("color") or COLORS.get(level.get("error"), "#d62728"),
                       linestyle=":",
                       linewidth=1, label=level["label"])
        sizes = sorted({round(float(n)) for series in panel["series"] for n in series["n"]})
        # the sizes themselves as ticks: log-scale minor labels overlap at a few sizes
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=7)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.legend(fontsize=6)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(ylabel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
