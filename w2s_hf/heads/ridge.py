"""Ridge and least-squares solves: a Cholesky solve when it is safe, else one eigendecomposition
(`RidgePath`) that serves every penalty and gives the minimum-norm solution of a singular Gram.

Conventions (those of scikit-learn's `Ridge`): minimise ||Y - X W - b||^2 + ridge * ||W||_F^2 with
an unpenalised intercept b.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.linalg import eigh

from ..arrays import features_and_targets
from .linear import LinearHead, default_chunk_size

if TYPE_CHECKING:
    from .stats import SufficientStats

EPS = float(np.finfo(np.float64).eps)


def cholesky_solve(gram: np.ndarray, cross: np.ndarray, ridge: float, cutoff: float) -> np.ndarray | None:
    """(gram + ridge I)^-1 cross by Cholesky, or None when the matrix is too close to singular.

    The 1-norm condition number is within a factor d of the 2-norm one, so requiring
    rcond_1 > 10 d cutoff guarantees every eigenvalue exceeds cutoff * max eigenvalue: the
    eigendecomposition path would keep all directions and give the same answer.
    """
    from scipy.linalg import lapack

    d = gram.shape[0]
    a = gram + ridge * np.eye(d)
    anorm = float(np.abs(a).sum(axis=0).max())
    if not np.isfinite(anorm) or anorm == 0.0:
        return None
    factor, info = lapack.dpotrf(a, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        return None
    rcond, info = lapack.dpocon(factor, anorm, uplo="U")
    if info != 0 or not rcond > 10.0 * d * cutoff:
        return None
    weight, info = lapack.dpotrs(factor, cross, lower=0)
    return weight if info == 0 else None


class RidgePath:
    """One eigendecomposition of the (centred) Gram matrix, serving every ridge penalty.

    With G = V diag(lam) V^T and c = X^T Y (centred when fitting an intercept), the ridge solution is
    W = V diag(1 / (lam + ridge)) V^T c. For ridge = 0, eigenvalues at or below
    rcond * max(lam) are treated as zero, which gives the minimum-norm least-squares solution
    (pseudo-inverse). The default rcond = max(n, d) * eps(float64) is numpy's lstsq tolerance
    applied to the eigenvalues of the Gram (squared singular values): forming the Gram squares the
    condition number, so directions whose variance is below that fraction of the largest one are
    numerically indistinguishable from zero and dropped.
    """

    def __init__(self, stats: SufficientStats, *, fit_intercept: bool = True, rcond: float | None = None):
        self.fit_intercept = bool(fit_intercept)
        self.targets_1d = stats.targets_1d
        self.n = stats.n
        gram, cross, self.x_mean, self.y_mean = stats.normal_equations(fit_intercept)
        evals, self.evecs = eigh(
            gram, overwrite_a=True, check_finite=False, driver="evd"
        )  # divide & conquer: ~4x faster than evr
        self.evals = np.clip(evals, 0.0, None)  # a Gram matrix is PSD; negatives are round-off
        self.proj = self.evecs.T @ cross  # (d, k): cross in the eigenbasis
        self.rcond = float(max(stats.n, stats.dim) * EPS if rcond is None else rcond)

    def _inverse_spectrum(self, ridge: float) -> np.ndarray:
        ridge = check_ridge(ridge)
        top = float(self.evals[-1]) if self.evals.size else 0.0
        keep = self.evals > self.rcond * top if ridge == 0.0 else np.ones_like(self.evals, bool)
        inv = np.zeros_like(self.evals)
        inv[keep] = 1.0 / (self.evals[keep] + ridge)
        return inv

    def coefficients(self, ridge: float) -> tuple[np.ndarray, np.ndarray]:
        """(weight (d, k), bias (k,)) for one penalty."""
        weight = self.evecs @ (self._inverse_spectrum(ridge)[:, None] * self.proj)
        bias = self.y_mean - self.x_mean @ weight if self.fit_intercept else np.zeros(weight.shape[1])
        return weight, bias

    def head(self, ridge: float = 0.0) -> LinearHead:
        weight, bias = self.coefficients(ridge)
        return LinearHead(weight, bias, output_1d=self.targets_1d)

    def default_grid(self, num: int = 17, low: float = 1e-6, high: float = 1e2) -> list[float]:
        """0 plus `num` log-spaced penalties from low to high times the mean eigenvalue of the Gram."""
        scale = float(np.mean(self.evals)) if self.evals.size else 1.0
        scale = scale if scale > 0 else 1.0
        return [0.0] + [float(r) for r in scale * np.logspace(np.log10(low), np.log10(high), num)]

    def val_errors(self, X_val: Any, Y_val: Any, grid: list[float]) -> dict[float, float]:
        """Mean squared error (over rows and targets) on (X_val, Y_val) for each penalty."""
        X, Y, _ = features_and_targets(X_val, Y_val, allow_empty=False, names=("X_val", "Y_val"))
        if X.shape[1] != self.evecs.shape[0] or Y.shape[1] != self.proj.shape[1]:
            raise ValueError(
                f"X_val/Y_val have {X.shape[1]}/{Y.shape[1]} columns but the fitted statistics have "
                f"{self.evecs.shape[0]}/{self.proj.shape[1]}"
            )
        # Rotate the validation rows into the eigenbasis once; each penalty is then a cheap rescale.
        step = default_chunk_size(X.shape[1])
        Z = np.empty((X.shape[0], self.evecs.shape[0]))
        for start in range(0, X.shape[0], step):
            Z[start : start + step] = (np.asarray(X[start : start + step], np.float64) - self.x_mean) @ self.evecs
        target = Y - self.y_mean
        errors = {}
        for ridge in grid:
            pred = Z @ (self._inverse_spectrum(ridge)[:, None] * self.proj)
            errors[float(ridge)] = float(np.mean((pred - target) ** 2))
        return errors


def dropped_directions(stats: SufficientStats, fit_intercept: bool = True, rcond: float | None = None) -> int:
    """How many eigen-directions of the Gram a ridge-0 solve treats as zero (the truncation of
    `RidgePath`: eigenvalues <= rcond * max, rcond = max(n, d) * eps by default)."""
    from scipy.linalg import eigvalsh

    gram = stats.normal_equations(fit_intercept)[0]
    evals = np.clip(eigvalsh(gram, check_finite=False), 0.0, None)
    cutoff = max(stats.n, stats.dim) * EPS if rcond is None else float(rcond)
    return int(np.sum(evals <= cutoff * (evals[-1] if evals.size else 0.0)))


def check_ridge(ridge: Any, name: str = "ridge") -> float:
    try:
        value = float(ridge)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {ridge!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {ridge!r}")
    return value
