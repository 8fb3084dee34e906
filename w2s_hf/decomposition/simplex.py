"""Convex weights of several teachers' predictions: the point of the probability simplex whose mixture
sum_k w_k P_k has the smallest loss against labels (gold labels of the selection split).

Two losses, the decomposition's divergences: `squared` (regression: the mean squared error of the
mixture, a quadratic in w) and `kl` / `binary_kl` (classification and preferences: the mixture of the
teachers' probabilities, scored by the cross-entropy against the gold class = KL(one-hot || mixture)).
Both are convex in w, so the minimiser over the simplex is a global one.

Solver: projected gradient onto the simplex (the sort-based Euclidean projection of Duchi et al., ICML
2008) with Nesterov momentum, a backtracking step (Beck & Teboulle 2009) and a restart whenever the loss
rises; it stops when the gradient mapping ||w - proj(w - g / L)|| * L falls below `tol`. Weights the
projection sets to zero are exactly zero. When the teachers' predictions are collinear the minimiser is
not unique; the solver returns one minimiser (its loss is what is guaranteed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LOSSES = ("squared", "kl", "binary_kl")
_EPS = 1e-12


def project_to_simplex(v: Any) -> np.ndarray:
    """The Euclidean projection of v onto {w >= 0, sum w = 1} (Duchi et al., 2008)."""
    v = np.asarray(v, dtype=np.float64)
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    ks = np.arange(1, len(v) + 1)
    rho = ks[u - cumulative / ks > 0][-1]
    w = np.maximum(v - cumulative[rho - 1] / rho, 0.0)
    return w / w.sum()  # exact normalisation against rounding


def _squared(preds: np.ndarray, y: np.ndarray) -> tuple[Callable, Callable]:
    """Mean squared error of the mixture over rows and target columns, as a quadratic w'Gw - 2b'w + c."""
    flat = preds.reshape(len(preds), -1)
    target = y.reshape(-1)
    gram, cross, const = flat @ flat.T / flat.shape[1], flat @ target / flat.shape[1], float(target @ target) / len(
        target)
    return (lambda w: float(w @ gram @ w - 2 * cross @ w + const)), (lambda w: 2 * (gram @ w - cross))


def _cross_entropy(preds: np.ndarray, y: np.ndarray) -> tuple[Callable, Callable]:
    """Mean -log of the mixture's probability of the gold class; preds (k, n, C) probabilities, y (n, 1)
    class indices. One probability per row (binary_kl: P(class 1)) is read as the two classes (1 - p, p)."""
    if preds.shape[2] == 1:
        preds = np.concatenate([1.0 - preds, preds], axis=2)
    gold = y.reshape(-1).astype(np.int64)
    on_gold = preds[:, np.arange(preds.shape[1]), gold]  # (k, n): each teacher's probability of the gold class

    def loss(w: np.ndarray) -> float:
        return float(-np.mean(np.log(np.maximum(w @ on_gold, _EPS))))

    def grad(w: np.ndarray) -> np.ndarray:
        return -np.mean(on_gold / np.maximum(w @ on_gold, _EPS), axis=1)

    return loss, grad


def _check(preds: Any, y: Any, loss: str) -> tuple[np.ndarray, np.ndarray]:
    if loss not in LOSSES:
        raise ValueError(f"mixture loss must be one of {LOSSES}, got {loss!r}")
    preds, y = np.asarray(preds, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if preds.ndim == 2:
        preds = preds[:, :, None]
    y = y.reshape(len(y), -1)
    if preds.ndim != 3 or len(preds) < 1 or preds.shape[1] != len(y):
        raise ValueError(f"teachers' predictions must be (teachers, rows, columns) with {len(y)} rows, "
                         f"got shape {preds.shape}")
    if loss == "squared" and preds.shape[2] != y.shape[1]:
        raise ValueError(f"teachers predict {preds.shape[2]} columns but the labels have {y.shape[1]}")
    if not np.all(np.isfinite(preds)) or not np.all(np.isfinite(y)):
        raise ValueError("teachers' predictions and labels must be finite")
    return preds, y


def simplex_weights(preds: Any, y: Any, *, loss: str = "squared", tol: float = 1e-9,
                    max_iter: int = 100_000) -> tuple[np.ndarray, dict[str, Any]]:
    """(w, record): the convex weights of k teachers minimising the mixture's `loss` against y.

    preds: (k, n) or (k, n, m) teachers' predictions on the same rows; y: (n,) or (n, m) labels
    (classification: (n, 1) gold class indices). record: the loss at w and at uniform weights, the
    iterations and the final gradient mapping norm (the optimality residual)."""
    preds, y = _check(preds, y, loss)
    f, grad = _squared(preds, y) if loss == "squared" else _cross_entropy(preds, y)
    k = len(preds)
    w = np.full(k, 1.0 / k)
    momentum, t, lipschitz = w.copy(), 1.0, 1.0
    f_w, residual, it = f(w), np.inf, 0
    while it < max_iter:
        it += 1
        g = grad(momentum)
        f_m = f(momentum)
        while True:  # backtracking: the quadratic upper bound at step 1/L must hold
            new = project_to_simplex(momentum - g / lipschitz)
            d = new - momentum
            if f(new) <= f_m + g @ d + 0.5 * lipschitz * (d @ d) + 1e-15 * max(1.0, abs(f_m)):
                break
            lipschitz *= 2.0
        residual = float(np.linalg.norm(project_to_simplex(new - grad(new) / lipschitz) - new) * lipschitz)
        f_new = f(new)
        if f_new > f_w and t > 1.0:  # momentum overshot: restart from the last iterate
            momentum, t = w.copy(), 1.0
            continue
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = new + (t - 1) / t_next * (new - w)
        w, f_w, t = new, f_new, t_next
        if residual <= tol:
            break
    return w, {"loss": loss, "value": f_w, "uniform_value": f(np.full(k, 1.0 / k)), "iterations": it,
               "optimality_residual": residual, "converged": bool(residual <= tol),
               "solver": "projected gradient onto the simplex (Nesterov momentum, backtracking, restarts)"}
