"""The bootstrap of a sweep's gain-on-misfit line: resample what is independent, the molecules (row ids).

Points of a sweep are not independent. Every weak model of a seed is scored on the same test rows,
and a random split puts one molecule in the test set of several seeds; a weak model is shared by every
seed. Resampling points (or runs) as if independent narrows the interval. What is independent is the
row: each molecule's (input, label) is one draw. So one replicate draws row ids with replacement
from the union of every point's evaluation rows, and every point's gain and misfit is recomputed as
the weighted mean over its own rows with those multiplicities: a molecule drawn twice counts twice
in every point (every weak model, every seed) whose test set holds it.

Not resampled, so the interval is conditional on them: the weak models (a fixed family, not a draw),
the heads' training rows (the heads are not refitted per replicate) and the split itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLING_UNIT = ("row id (molecule / example): every point's gain and misfit recomputed from the same "
                   "resampled rows; conditional on the weak models, the fitted heads and the splits")


@dataclass
class PointRows:
    """One point's evaluation rows: their ids and each row's contribution to gain and misfit."""

    ids: Sequence[str]
    gain: np.ndarray  # (n,) weak loss - student loss of each row
    misfit: np.ndarray  # (n,) divergence of the student from the weak labels of each row


def ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, intercept, r2 of each row of y (B, p) on the same row of x (B, p); nan where x is flat."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    sxx, sxy, syy = (xc * xc).sum(axis=1), (xc * yc).sum(axis=1), (yc * yc).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
        r2 = np.where((sxx > 0) & (syy > 0), sxy * sxy / (sxx * syy), np.nan)
    return slope, y.mean(axis=1) - slope * x.mean(axis=1), r2


def row_bootstrap_line(points: Sequence[PointRows], n_boot: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> dict:
    """Percentile intervals of the slope, intercept and r2 of gain on misfit, rows resampled by id.

    A replicate in which some point drew none of its rows is skipped (counted in `n_skipped`).
    """
    ids = sorted({str(i) for p in points for i in p.ids})
    where = {i: k for k, i in enumerate(ids)}
    rng = np.random.default_rng(seed)
    # (B, U) multiplicities of each distinct id, then each point's weighted means
    counts = np.stack([np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
                       for _ in range(n_boot)]).astype(np.float64)
    gains, misfits = [], []
    for p in points:
        w = counts[:, [where[str(i)] for i in p.ids]]
        total = w.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gains.append(np.where(total > 0, w @ p.gain / total, np.nan))
            misfits.append(np.where(total > 0, w @ p.misfit / total, np.nan))
    gain, misfit = np.stack(gains, axis=1), np.stack(misfits, axis=1)
    keep = np.isfinite(gain).all(axis=1)
    slope, intercept, r2 = ols(misfit[keep], gain[keep])
    alpha = (1.0 - confidence) / 2.0
    ci = {}
    for key, vals in (("slope", slope), ("intercept", intercept), ("r2", r2)):
        vals = vals[np.isfinite(vals)]
        ci[key] = [float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))] if vals.size else [None, None]
    return {"ci": ci, "n_ids": len(ids), "n_boot": int(n_boot), "n_skipped": int((~keep).sum()),
            "resampling_unit": RESAMPLING_UNIT}
