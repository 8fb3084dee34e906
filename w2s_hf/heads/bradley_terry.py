"""Bradley–Terry heads for pairwise preferences: P(first preferred) = sigmoid(w . (phi(first) - phi(second))).

No bias: swapping the two sides negates the feature difference, so the head gives 1 - p, as a preference model
must (position can carry no signal). Fitting is a damped Newton method in float64 on the mean training loss (a
name in `w2s_hf.heads.losses.LOSSES`, applied to the logit) plus a ridge term: every process passes its own
rows and the loss, gradient and curvature (X^T diag(h) X, h the loss's exact second derivative in the logit,
floored at a tenth of the Fisher s(1-s) where the loss is locally concave) are summed across processes before
each step, so N processes take the steps of one up to float summation order. The loss's gradient comes from
autograd on the registered loss, so a loss is defined once. The ridge penalty is relative to the mean squared
feature (lambda * mean(diag(X^T X) / n)), so one grid serves every representation; `ridge=None` chooses it on
the selection rows by the same loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..distributed import sum_arrays
from .linear import read_head_file, write_head_file

RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass(eq=False)
class BradleyTerryHead:
    """weight (d,) float64; `predict` gives (n, 1) probabilities that the first side is preferred."""

    weight: np.ndarray

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64).reshape(-1)

    def logits(self, features: Any) -> np.ndarray:
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.weight):
            raise ValueError(f"features have shape {X.shape} but the head expects (n, {len(self.weight)}); use "
                             "difference features from the representation the head was fitted on")
        return X @ self.weight

    def predict(self, features: Any) -> np.ndarray:
        z = self.logits(features)
        return (0.5 * (1.0 + np.tanh(0.5 * z)))[:, None]  # sigmoid without overflow

    def save(self, path: str | os.PathLike) -> None:
        write_head_file(path, "BradleyTerryHead", {"weight": self.weight})

    @classmethod
    def load(cls, path: str | os.PathLike) -> BradleyTerryHead:
        tensors, _ = read_head_file(path, "BradleyTerryHead", ("weight",))
        return cls(tensors["weight"])


def _loss_terms(X: np.ndarray, t: np.ndarray, w: np.ndarray, fn: Any, curvature: bool) -> list[np.ndarray]:
    """[sum of losses, X^T dloss/dz, (X^T diag(s(1-s)) X)] on this process's rows."""
    import torch

    z = torch.from_numpy(X @ w).requires_grad_(True)
    loss = fn(z[:, None], torch.from_numpy(t)).sum()
    (dz,) = torch.autograd.grad(loss, z, create_graph=curvature)
    out = [np.array([loss.item()]), X.T @ dz.detach().numpy()]
    if curvature:
        s = 1.0 / (1.0 + np.exp(-np.clip(z.detach().numpy(), -40, 40)))
        # each row's loss depends on its own logit only: the Hessian in z is diagonal, one backward pass.
        # The exact curvature gives Newton's quadratic convergence for reverse KL too (its Fisher s(1-s)
        # alone converges linearly); where reverse KL is locally concave in z the Fisher floor keeps H > 0.
        (h,) = torch.autograd.grad(dz.sum(), z)
        weight = np.maximum(h.numpy(), 0.1 * s * (1 - s))
        out.append((X * weight[:, None]).T @ X)
    return out


def _objective(X, t, w, fn, lam, n, accelerator) -> float:
    total = sum_arrays(accelerator, _loss_terms(X, t, w, fn, False)[:1])[0][0]
    return total / n + 0.5 * lam * float(w @ w)


def newton_fit(X: np.ndarray, t: np.ndarray, fn: Any, lam: float, n: int, accelerator: Any = None,
               w0: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-20) -> tuple[np.ndarray, int]:
    """(weight, iterations) minimising mean fn(Xw, t) + lam/2 |w|^2 over all processes' rows.

    Stops when the Newton decrement g^T H^-1 g / 2 is below `tol` (Newton converges quadratically, so the
    step after 1e-10 reaches ~1e-20 and the gradient float precision), or when no step lowers the objective
    any more (it is then at float precision too)."""
    d = X.shape[1]
    w = np.zeros(d) if w0 is None else w0.copy()
    for it in range(1, max_iter + 1):
        loss, grad, fisher = sum_arrays(accelerator, _loss_terms(X, t, w, fn, True))
        g = grad / n + lam * w
        H = fisher / n + lam * np.eye(d)
        step = np.linalg.solve(H + 1e-12 * np.trace(H) / d * np.eye(d), g)
        decrement = float(g @ step)
        if decrement / 2 <= tol:
            return w, it
        f0, alpha = loss[0] / n + 0.5 * lam * float(w @ w), 1.0
        while alpha > 1e-8:  # Armijo backtracking: reverse KL is not convex in z, the line search keeps it safe
            trial = w - alpha * step
            if _objective(X, t, trial, fn, lam, n, accelerator) <= f0 - 1e-4 * alpha * decrement:
                break
            alpha /= 2
        else:
            return w, it
        w = trial
    return w, max_iter


def fit_bradley_terry(X: np.ndarray, t: np.ndarray, X_val: np.ndarray, t_val: np.ndarray, *, loss: str,
                      ridge: float | None = None, accelerator: Any = None) -> tuple[BradleyTerryHead, dict]:
    """A Bradley–Terry head on this process's rows (X: feature differences, t: P(first preferred)).

    `ridge` None: each of `RIDGE_GRID` (largest first, warm-started) is fitted and the one with the lowest
    mean loss on the selection rows (all processes' X_val, t_val) is kept.
    """
    from .losses import get_loss

    fn = get_loss(loss, "preference").fn
    X, X_val = np.asarray(X, dtype=np.float64), np.asarray(X_val, dtype=np.float64)
    t, t_val = np.asarray(t, dtype=np.float64).reshape(-1, 1), np.asarray(t_val, dtype=np.float64).reshape(-1, 1)
    counts = sum_arrays(accelerator, [np.array([len(X), len(X_val)], dtype=np.float64),
                                      (X * X).sum(axis=0)])
    n, n_val = int(counts[0][0]), int(counts[0][1])
    if n == 0 or n_val == 0:
        raise ValueError(f"a Bradley-Terry head needs training and selection rows; got {n} and {n_val}")
    scale = float(counts[1].mean() / n) or 1.0  # mean squared feature: makes the ridge grid scale-free
    grid = sorted(RIDGE_GRID, reverse=True) if ridge is None else [float(ridge)]
    best, path, w = None, [], None
    for value in grid:
        w, iters = newton_fit(X, t, fn, value * scale, n, accelerator, w0=w)
        val = _objective(X_val, t_val, w, fn, 0.0, n_val, accelerator)
        path.append({"ridge": value, "val_loss": val, "iterations": iters})
        if best is None or val < best[1]:
            best = (w.copy(), val, value)
    return BradleyTerryHead(best[0]), {"solver": "newton (float64)", "loss": loss, "ridge": best[2],
                                       "val_loss": best[1], "ridge_path": path if ridge is None else []}
