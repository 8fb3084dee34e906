"""Why the residual is what it is: its exact split, the split's bounds, and the proxy-truth decomposition.

For a Bregman divergence D = D_phi (the squared loss: phi(x) = x^2; KL: phi(p) = sum p log p) the
three-point identity gives, row by row and with no assumption,

    residual = D(y, W) - D(y, S) - D(S, W) = <grad phi(S) - grad phi(W), y - S>
             = <grad phi(S) - grad phi(W), C - S>   finite_sample_term
             + <grad phi(S) - grad phi(W), y - C>   nonrealizability_term

with W weak, S student (w2s), C ceiling, y gold. For the squared loss that is
2 (W - S)(S - C) + 2 (W - S)(C - y). The finite-sample term vanishes for a subspace student on its own
fitted rows (S - C lies in the span the student's residual W - S is orthogonal to); the
non-realizability term vanishes when the ceiling is the truth (C = y), and is what the ceiling's own
error (epsilon) lets the residual be. Cauchy-Schwarz with the divergence's weights mu bounds each term:
|term| <= sqrt(mean sum mu (grad S - grad W)^2) * sqrt(mean sum (C - S)^2 / mu) (resp. (y - C)^2); for
the squared loss (mu = 1) these are 2 sqrt(misfit * mean (S - C)^2) and 2 sqrt(misfit * ceiling_error).
For KL (mu = the student's probabilities) the first factor is the student-weighted second moment of the
log-ratio log S/W (about 2 * misfit when S is near W) and the second a chi-square divergence.

The proxy-truth decomposition (Mulgund & Pabbaraju's `stgt`) is every quantity again with the
ceiling's predictions as the truth: there the non-realizability term is 0 by construction, so
proxy_residual equals the finite-sample term. `decompose` bootstraps all of it in the same resamples
as the base quantities. More: docs/diagnostics.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..arrays import positive_ratio
from .divergences import Divergence

SPLIT = ("finite_sample_term", "nonrealizability_term", "finite_sample_bound", "nonrealizability_bound")
PROXY = ("proxy_weak_error", "proxy_w2s_error", "proxy_gain", "proxy_residual", "proxy_predicted_w2s_error",
         "proxy_pgr")
# Every diagnostic, in the order of tables, tracker keys and CSV columns.
DIAGNOSTICS = SPLIT + PROXY
# Per-example columns (one block of m targets each) averaged by the bootstrap; the rest derive from them.
_COLUMNS = ("finite_sample_term", "nonrealizability_term", "gradient_gap", "student_ceiling_gap",
            "ceiling_label_gap", "proxy_weak_error", "proxy_w2s_error")


def per_example_columns(div: Divergence, y: np.ndarray, weak: np.ndarray, w2s: np.ndarray,
                        ceiling: np.ndarray | None) -> np.ndarray:
    """(n, len(_COLUMNS) * m) per-example columns, one block of m targets per name of `_COLUMNS`; (n, 0)
    without a ceiling (nothing to split at) or for a divergence without a `BregmanMap`."""
    if ceiling is None or div.bregman is None:
        return np.empty((len(y), 0))
    geo = div.bregman
    grad_gap = geo.gradient(w2s) - geo.gradient(weak)  # (n, m, d)
    s, c, t = geo.point(w2s), geo.point(ceiling), geo.label_point(y, w2s)
    mu = geo.weight(s)
    pair = div.pair_loss or div.loss  # D(a, b) between two models' predictions
    cols = [
        (grad_gap * (c - s)).sum(axis=2),
        (grad_gap * (t - c)).sum(axis=2),
        (mu * grad_gap**2).sum(axis=2),  # the Cauchy-Schwarz factor shared by both bounds
        ((c - s) ** 2 / mu).sum(axis=2),
        ((t - c) ** 2 / mu).sum(axis=2),
        pair(weak, ceiling),  # D(C, W)
        pair(w2s, ceiling),  # D(C, S)
    ]
    return np.concatenate(cols, axis=1)


def derive(means: np.ndarray, misfit: np.ndarray) -> dict[str, np.ndarray]:
    """Diagnostics from replicate means (B, len(_COLUMNS) * m) and the misfit (B, m) of the same
    replicates: per target (B, m) and averaged over targets (`<name>_avg`, (B,))."""
    c = dict(zip(_COLUMNS, np.split(means, len(_COLUMNS), axis=1)))
    root = lambda a: np.sqrt(np.maximum(a, 0.0))  # noqa: E731  (sums of squares, >= 0 up to rounding)
    out = {
        "finite_sample_term": c["finite_sample_term"],
        "nonrealizability_term": c["nonrealizability_term"],
        "finite_sample_bound": root(c["gradient_gap"] * c["student_ceiling_gap"]),
        "nonrealizability_bound": root(c["gradient_gap"] * c["ceiling_label_gap"]),
        "proxy_weak_error": c["proxy_weak_error"],
        "proxy_w2s_error": c["proxy_w2s_error"],
        "proxy_gain": c["proxy_weak_error"] - c["proxy_w2s_error"],
        "proxy_residual": c["proxy_weak_error"] - c["proxy_w2s_error"] - misfit,
        "proxy_predicted_w2s_error": c["proxy_weak_error"] - misfit,
        # with the ceiling as the truth its error is 0: the gap to recover is the proxy weak error
        "proxy_pgr": positive_ratio(c["proxy_weak_error"] - c["proxy_w2s_error"], c["proxy_weak_error"]),
    }
    # the mean of per-target bounds bounds the mean of per-target terms; averaged proxy_pgr is
    # sum(gain) / sum(gap), as the base pgr
    avg = {f"{k}_avg": v.mean(axis=1) for k, v in out.items()}
    avg["proxy_pgr_avg"] = positive_ratio(avg["proxy_gain_avg"], avg["proxy_weak_error_avg"])
    return {**out, **avg}


def reading(values: dict[str, Any], misfit: float, residual: float) -> str | None:
    """One line saying why the residual is what it is, from averaged diagnostics; None without a split.

    When the non-realizability bound exceeds the misfit, the ceiling's own error leaves room for a
    residual as large as the misfit itself: the misfit cannot predict the gain at this epsilon.
    """
    finite, nonreal, bound, finite_bound = (values.get(k) for k in (
        "finite_sample_term", "nonrealizability_term", "nonrealizability_bound", "finite_sample_bound"))
    if finite is None or nonreal is None or bound is None:
        return None
    split = f"residual {residual:+.4f} = finite-sample {finite:+.4f} + non-realizability {nonreal:+.4f}"
    # a finite-sample term as large as the misfit: the student is far from the projection of the weak labels
    # (a ridge-0 student on few rows for its dimension, or a teacher's extreme labels on its training rows)
    student = ("; finite-sample term larger than the misfit: the student is not the projection of the weak labels "
               "here (few w2s_train rows for the strong dimension, or extreme weak labels it fitted)"
               if abs(finite) > misfit else "")
    if bound > misfit:
        return (f"{split}; non-realizability bound {bound:.4f} > misfit {misfit:.4f}: at this ceiling error "
                f"the misfit cannot predict the gain{student}")
    return (f"{split}; non-realizability bound {bound:.4f} <= misfit {misfit:.4f}: the ceiling is close enough to "
            f"the truth for the misfit to predict the gain, up to the finite-sample term (bound {finite_bound:.4f})"
            f"{student}")
