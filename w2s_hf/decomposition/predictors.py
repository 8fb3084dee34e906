"""Predictors of the weak-to-strong gain, side by side, from a run's cached features and predictions.

Pure numpy functions (no torch, no I/O). Each predictor says what it reads; docs/predictors.md gives
the one-line definitions and the papers:

    misfit              d(w2s, weak) on unlabelled rows (Charikar, Pabbaraju & Shiragur 2024)
    similarity          CAPA (classification) or residual correlation (regression) of weak vs ceiling
                        (Goel et al., ICML 2025); its observed-agreement part reads no gold label
    kernel_projection   ||P_s (I - P_w) w||^2 / n: weak labels inside the strong principal span but
                        outside the weak one (after Xue, Li & Mirzasoleiman, ICML 2025)
    subspace_overlap    effective ranks and principal angles of the weak and strong spans
                        (Dong et al., ICML 2025, "Discrepancies are Virtue")

The two feature-based predictors (principal components, kernel projection, subspace overlap) are in
`spans.py`, which also says what they cost and what it caches within a process.

Every predictor has a direction fixed by its paper's claim before any data is seen (`DIRECTIONS`):
+1 if a larger value should mean a larger gain, -1 if smaller. The sweep ranks by value x direction
and never fits a sign on test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# the representation-based predictors live in spans.py; their names are this module's too
from .spans import (  # noqa: F401
    KERNEL_LAMBDA,
    VARIANCE_SHARE,
    Components,
    effective_rank,
    kernel_projection,
    principal_components,
    smoother,
    span_pair,
    subspace_overlap,
)

# a larger misfit predicts a larger gain; the other three predict a smaller gain when they are larger:
# similar models share mistakes (Goel et al.), weak-label mass that the strong span learns although the
# weak span does not hold it is inherited error (Xue et al.), overlapping spans leave no discrepancy
# whose variance the student can average away (Dong et al.)
DIRECTIONS = {"misfit": 1, "similarity": -1, "observed_agreement": -1, "kernel_projection": -1,
              "kernel_operator_norm": -1, "subspace_overlap": -1}
PREDICTORS = tuple(DIRECTIONS)


# ---------------------------------------------------------------------- model similarity
def capa(p_a: np.ndarray, p_b: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Chance-adjusted probabilistic agreement of two classifiers' (n, C) probabilities (Goel et al. 2025).

    observed = mean_x sum_o p_a(o|x) p_b(o|x) reads no label. With gold class indices `labels`:
    expected = pa pb + (1 - pa)(1 - pb) / (C - 1), p = mean probability on the gold class, and
    kappa = (observed - expected) / (1 - expected) (None when expected is 1: nothing to adjust by).
    """
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    if p_a.shape != p_b.shape or p_a.ndim != 2 or p_a.shape[1] < 2:
        raise ValueError(f"capa needs two (n, C >= 2) probability arrays of one shape, got {p_a.shape}, {p_b.shape}")
    out: dict[str, Any] = {"observed": float(np.mean((p_a * p_b).sum(axis=1)))}
    if labels is None:
        return out
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    rows = np.arange(len(y))
    pa, pb = float(p_a[rows, y].mean()), float(p_b[rows, y].mean())
    expected = pa * pb + (1 - pa) * (1 - pb) / (p_a.shape[1] - 1)
    kappa = (out["observed"] - expected) / (1 - expected) if expected < 1 - 1e-12 else None
    return {**out, "expected": expected, "kappa": kappa}


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation per column; nan where either column is constant."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    den = np.sqrt((a ** 2).sum(axis=0) * (b ** 2).sum(axis=0))
    return np.where(den > 0, (a * b).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)


def residual_correlation(pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray | None = None) -> dict[str, Any]:
    """The regression analogue of CAPA, per target column.

    observed = corr(a, b) reads no label; with gold `y`, kappa = corr(a - y, b - y): the agreement
    of the two models' errors. cov(a - y, b - y) = cov(a, b) - [cov(a, y) + cov(b, y) - var(y)]:
    the observed covariance minus what the two models' accuracies alone make them share, as
    CAPA's observed minus expected.
    """
    a = np.asarray(pred_a, dtype=np.float64).reshape(len(pred_a), -1)
    b = np.asarray(pred_b, dtype=np.float64).reshape(a.shape)
    out: dict[str, Any] = {"observed": _correlation(a, b)}
    if y is not None:
        y = np.asarray(y, dtype=np.float64).reshape(a.shape)
        out["kappa"] = _correlation(a - y, b - y)
    return out


# ---------------------------------------------------------------------- one run's block
# Which rows and which labels each predictor reads (results.json repeats this next to the values).
READS = {
    "misfit": "the student's and the weak model's predictions on the inputs of {eval} (no label)",
    "similarity": "weak and ceiling predictions and gold labels of {gold} (the ceiling was fitted on w2s_train "
                  "gold labels)",
    "observed_agreement": "weak and ceiling predictions on the inputs of {eval} (no label of {eval}; the ceiling "
                          "was fitted on w2s_train gold labels)",
    "kernel_projection": "weak and strong features of w2s_train and the weak labels there (no gold label)",
    "kernel_operator_norm": "weak and strong features of w2s_train (no label at all)",
    "subspace_overlap": "weak and strong features of w2s_train (no label at all)",
}


def predictor_block(*, weak_features: np.ndarray, strong_features: np.ndarray, weak_labels: np.ndarray,
                    weak_pred: dict[str, np.ndarray], ceiling_pred: dict[str, np.ndarray] | None,
                    gold: dict[str, np.ndarray], misfit: dict[str, float], targets: list[str],
                    classification: bool = False, eval_split: str = "test", gold_split: str = "val",
                    lam: float = KERNEL_LAMBDA, share: float = VARIANCE_SHARE) -> dict[str, Any]:
    """Every predictor of one run. Features and `weak_labels` are the w2s_train rows; `weak_pred`,
    `ceiling_pred`, `gold` are {split: (n, k)}; `misfit` is {target: misfit on eval_split}. A
    classification run has one target and (n, C) probabilities; its gold labels are class indices.
    Gold labels are read from `gold_split` only, never from `eval_split`."""
    if gold_split == eval_split:
        raise ValueError(f"gold_split and eval_split are both {eval_split!r}: the similarity's gold labels would "
                         "come from the split whose gain it predicts")
    # the products over the rows run in the heads' own streams, the small algebra on one thread (spans.py)
    weak_pc, strong_pc, cross = span_pair(weak_features, strong_features)
    kernel = kernel_projection(weak_pc, strong_pc, weak_labels, lam, cross)
    overlap = subspace_overlap(weak_pc, strong_pc, share, cross)
    per_target: dict[str, dict[str, float | None]] = {t: {"misfit": misfit.get(t)} for t in targets}
    # classification: the C probability columns are one target, their projections add up
    kp = [float(kernel["per_column"].sum())] if classification else kernel["per_column"].tolist()
    details: dict[str, Any] = {"kernel_projection": {"share": _floats(kernel["share"]), "lambda": lam},
                               "subspace_overlap": overlap}
    for t, v in zip(targets, kp):
        per_target[t].update(kernel_projection=v, kernel_operator_norm=kernel["operator_norm"],
                             subspace_overlap=overlap["overlap"])
    if ceiling_pred is not None:
        similar = _similarity(weak_pred, ceiling_pred, gold, classification, eval_split, gold_split)
        details["similarity"] = similar
        for j, t in enumerate(targets):
            per_target[t].update(similarity=similar["kappa"][j], observed_agreement=similar["observed"][j])
    values = {p: _mean([per_target[t].get(p) for t in targets]) for p in PREDICTORS}
    reads = {p: r.format(eval=eval_split, gold=gold_split) for p, r in READS.items()}
    return {"values": values, "per_target": per_target, "directions": dict(DIRECTIONS), "reads": reads,
            "details": details}


def _similarity(weak_pred, ceiling_pred, gold, classification, eval_split, gold_split) -> dict[str, list]:
    """kappa (gold labels of gold_split) and observed agreement (inputs of eval_split), one per target."""
    if classification:
        chance = capa(weak_pred[gold_split], ceiling_pred[gold_split], gold[gold_split])
        observed = capa(weak_pred[eval_split], ceiling_pred[eval_split])["observed"]
        return {"kappa": [chance["kappa"]], "observed": [observed], "expected_on_" + gold_split: [chance["expected"]],
                "observed_on_" + gold_split: [chance["observed"]], "measure": "CAPA (kappa_p)"}
    chance = residual_correlation(weak_pred[gold_split], ceiling_pred[gold_split], gold[gold_split])
    observed = residual_correlation(weak_pred[eval_split], ceiling_pred[eval_split])["observed"]
    return {"kappa": _floats(chance["kappa"]), "observed": _floats(observed),
            "measure": "residual correlation corr(weak - y, ceiling - y)"}


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known and len(known) == len(values) else None
