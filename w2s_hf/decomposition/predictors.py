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

Every predictor has a direction fixed by its paper's claim before any data is seen (`DIRECTIONS`):
+1 if a larger value should mean a larger gain, -1 if smaller. The sweep ranks by value x direction
and never fits a sign on test.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

# P = K (K + lambda * tr(K)/n * I)^-1: lambda is in units of the mean eigenvalue of K = X X^T / n
KERNEL_LAMBDA = 0.1
# effective rank: the fewest principal components holding this share of the centred features' variance
VARIANCE_SHARE = 0.9
# a larger misfit predicts a larger gain; the other three predict a smaller gain when they are larger:
# similar models share mistakes (Goel et al.), weak-label mass that the strong span learns although the
# weak span does not hold it is inherited error (Xue et al.), overlapping spans leave no discrepancy
# whose variance the student can average away (Dong et al.)
DIRECTIONS = {"misfit": 1, "similarity": -1, "observed_agreement": -1, "kernel_projection": -1,
              "kernel_operator_norm": -1, "subspace_overlap": -1}
PREDICTORS = tuple(DIRECTIONS)


# ---------------------------------------------------------------------- principal components
class Components(NamedTuple):
    """Principal directions U = Z @ T (n, r) of centred features, never formed: with d <= n, Z is the
    centred (n, d) matrix and T = V / sqrt(eig) from its d x d Gram; with d > n, Z = U and T = I.
    mu (r,): the nonzero eigenvalues of K = Xc Xc^T / n, largest first."""

    Z: np.ndarray
    T: np.ndarray
    mu: np.ndarray

    def coords(self, L: np.ndarray) -> np.ndarray:
        """U^T L."""
        return self.T.T @ (self.Z.T @ L)

    def lift(self, C: np.ndarray) -> np.ndarray:
        """U C."""
        return self.Z @ (self.T @ C)

    def cross(self, other: "Components", rows: int | None = None, cols: int | None = None) -> np.ndarray:
        """U_self[:, :rows]^T U_other[:, :cols], from the (d_self x d_other) cross Gram."""
        return self.T[:, :rows].T @ (self.Z.T @ other.Z) @ other.T[:, :cols]


def principal_components(X: np.ndarray) -> Components:
    """The principal directions of the column-centred X as functions on its rows (float64).

    From the smaller Gram matrix (d x d, or n x n when d > n): O(n min(n, d)^2), a few times cheaper
    than an SVD, and U itself is never formed. Components below 1e-6 of the largest singular value are
    dropped: the Gram route resolves them poorly and their weight mu / (mu + beta) here is below 1e-11.
    """
    if np.ndim(X) != 2 or np.shape(X)[0] < 2:
        raise ValueError(f"features must be a (n, d) array with n >= 2 rows, got shape {np.shape(X)}")
    Xc = np.array(X, dtype=np.float64)  # one float64 copy, centred in place (the same numbers as X - mean)
    Xc -= Xc.mean(axis=0)
    n, d = Xc.shape
    eig, V = np.linalg.eigh(Xc.T @ Xc if d <= n else Xc @ Xc.T)
    eig, V = eig[::-1], V[:, ::-1]
    keep = eig > (1e-12 * eig[0] if eig[0] > 0 else np.inf)
    eig, V = eig[keep], V[:, keep]
    if d <= n:
        return Components(Xc, V / np.sqrt(eig), eig / n)
    return Components(V, np.eye(len(eig)), eig / n)


def smoother(mu: np.ndarray, n: int, lam: float = KERNEL_LAMBDA) -> np.ndarray:
    """Eigenvalues mu / (mu + beta) of P = K (K + beta I)^-1, beta = lam * tr(K) / n."""
    if lam <= 0:
        raise ValueError(f"the kernel ridge lambda must be > 0, got {lam}")
    beta = lam * float(mu.sum()) / n
    return mu / (mu + beta)


def effective_rank(mu: np.ndarray, share: float = VARIANCE_SHARE) -> int:
    """The fewest principal components whose eigenvalues hold `share` of the total variance."""
    if not 0 < share <= 1:
        raise ValueError(f"variance share must be in (0, 1], got {share}")
    if mu.size == 0:
        return 0
    cumulative = np.cumsum(mu) / mu.sum()
    return int(np.searchsorted(cumulative, share - 1e-12) + 1)


# ---------------------------------------------------------------------- kernel projection
def kernel_projection(weak_pc: Components, strong_pc: Components, labels: np.ndarray,
                      lam: float = KERNEL_LAMBDA, cross: np.ndarray | None = None) -> dict[str, Any]:
    """||P_s (I - P_w) w||^2 / n per label column w, its share of ||w - mean(w)||^2, and the label-free
    operator norm ||P_s (I - P_w)||. `weak_pc`, `strong_pc`: `principal_components` of the same rows;
    `cross`: Us^T Uw if already computed (the costliest product at large n)."""
    n = weak_pc.Z.shape[0]
    L = np.asarray(labels, dtype=np.float64).reshape(n, -1)
    dw, ds = smoother(weak_pc.mu, n, lam), smoother(strong_pc.mu, n, lam)
    outside_weak = L - weak_pc.lift(dw[:, None] * weak_pc.coords(L))  # (I - P_w) L
    inside_strong = strong_pc.lift(ds[:, None] * strong_pc.coords(outside_weak))  # P_s (I - P_w) L
    value = (inside_strong ** 2).sum(axis=0) / n
    spread = ((L - L.mean(axis=0)) ** 2).sum(axis=0) / n
    share = np.where(spread > 0, value / np.where(spread > 0, spread, 1.0), np.nan)
    # ||P_s (I - P_w)||^2 = top eigenvalue of Ds (I - M (2 Dw - Dw^2) M^T) Ds, M = Us^T Uw: an
    # (r_s x r_s) problem instead of an (n x n) one
    M = strong_pc.cross(weak_pc) if cross is None else cross
    gram = np.eye(len(ds)) - (M * (2 * dw - dw ** 2)) @ M.T
    gram = ds[:, None] * gram * ds[None, :]
    top = float(np.linalg.eigvalsh((gram + gram.T) / 2)[-1]) if len(ds) else 0.0
    return {"per_column": value, "share": share, "operator_norm": float(np.sqrt(max(top, 0.0))), "lambda": lam}


# ---------------------------------------------------------------------- subspace overlap
def subspace_overlap(weak_pc: Components, strong_pc: Components, share: float = VARIANCE_SHARE,
                     cross: np.ndarray | None = None) -> dict[str, Any]:
    """Effective ranks r_w, r_s, principal angles between the spans of the top r_w weak and r_s strong
    components (as functions on the rows), overlap = sum cos^2 / r_w (1: the weak span lies in the
    strong one) and discrepancy = r_w - sum cos^2 (the dimension of V_w outside V_s). `cross`: Us^T Uw
    if already computed."""
    rw, rs = effective_rank(weak_pc.mu, share), effective_rank(strong_pc.mu, share)
    if rw == 0 or rs == 0:
        return {"effective_rank_weak": rw, "effective_rank_strong": rs, "principal_angles_deg": [],
                "overlap": None, "discrepancy": None, "variance_share": share}
    block = weak_pc.cross(strong_pc, rw, rs) if cross is None else cross[:rs, :rw].T
    cos = np.clip(np.linalg.svd(block, compute_uv=False), 0.0, 1.0)
    inside = float((cos ** 2).sum())
    return {"effective_rank_weak": rw, "effective_rank_strong": rs,
            "principal_angles_deg": np.degrees(np.arccos(cos)).tolist(),
            "overlap": inside / rw, "discrepancy": rw - inside, "variance_share": share}


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
    from threadpoolctl import threadpool_limits

    # below ~1e9 flops BLAS threads cost more than they save, and far more on a shared machine
    # (measured: 1.2 s with threads against 0.04 s without, for 446 x 192 features on 2 busy cores)
    work = max(np.size(x) * min(np.shape(x)) for x in (weak_features, strong_features))
    with threadpool_limits(limits=1 if work < 1e9 else None, user_api="blas"):
        weak_pc, strong_pc = principal_components(weak_features), principal_components(strong_features)
        cross = strong_pc.cross(weak_pc)  # one (d_s x d_w) cross Gram serves both
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
