"""The paper's Figure 2 layout: gain against misfit, one panel per dataset or rubric.

One colour per weak model, one point per run (split seed), the y = x line (the theorem's equality
for a subspace), and the least-squares line of gain on misfit with its slope and R^2 in the legend.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..atomic import atomic_path


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and R^2 of y on x (nan where undefined)."""
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return float(slope), float(intercept), (1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def plot_misfit_vs_gain(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    panel_key: str = "panel",
    color_key: str = "weak_model",
    title: str | None = None,
    ncols: int = 3,
) -> Path:
    """Draw gain vs misfit panels from rows with keys `misfit`, `gain`, `panel_key`, `color_key`.

    Returns the written PNG path. The file is written atomically (temporary file, then rename).
    """
    fig = misfit_vs_gain_figure(rows, panel_key=panel_key, color_key=color_key, title=title, ncols=ncols)
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


def misfit_vs_gain_figure(rows: Iterable[Mapping[str, Any]], *, panel_key: str = "panel",
                          color_key: str = "weak_model", title: str | None = None, ncols: int = 3) -> Any:
    """The figure of `plot_misfit_vs_gain`. The misfit axis starts at 0 (a divergence is never negative);
    a long title is wrapped to the figure's width and kept inside it."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise ValueError("plot_misfit_vs_gain needs at least one row.")
    for key in ("misfit", "gain", panel_key, color_key):
        if key not in rows[0]:
            raise ValueError(f"rows need a {key!r} key; got {sorted(rows[0])}.")
    panels: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        panels[str(row[panel_key])].append(row)
    colours = {name: i for i, name in enumerate(dict.fromkeys(str(r[color_key]) for r in rows))}
    cmap = plt.get_cmap("tab10" if len(colours) <= 10 else "tab20")

    n = len(panels)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False)
    for ax, (panel, members) in zip(axes.flat, panels.items()):
        x = np.array([float(r["misfit"]) for r in members])
        y = np.array([float(r["gain"]) for r in members])
        for name, idx in colours.items():
            pick = [str(r[color_key]) == name for r in members]
            if any(pick):
                ax.scatter(x[pick], y[pick], s=22, color=cmap(idx % cmap.N), label=name, alpha=0.85, edgecolors="none")
        hi = max(float(np.max(x)), float(np.max(y)), 0.0)
        pad = 0.05 * (hi - min(0.0, float(np.min(y))) or 1.0)
        grid = np.linspace(0.0, hi + pad, 2)
        ax.plot(grid, grid, "k--", lw=1, label="y = x")
        slope, intercept, r2 = _fit(x, y)
        if np.isfinite(slope):
            ax.plot(grid, slope * grid + intercept, color="crimson", lw=1.2,
                    label=f"fit: slope {slope:.2f}, $R^2$ {r2:.2f}")
        ax.set_xlim(0.0, hi + pad)
        ax.set_title(panel)
        ax.set_xlabel("misfit")
        ax.set_ylabel("gain (weak_error − w2s_error)")
        ax.legend(fontsize=6.5, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    top = 1.0
    if title:
        lines = textwrap.wrap(title, width=max(30, int(10 * 4.2 * ncols)))  # ~10 characters an inch at 11 pt
        fig.suptitle("\n".join(lines), fontsize=11)
        top = 1.0 - (0.06 + 0.045 * len(lines)) / nrows
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig
