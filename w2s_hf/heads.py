"""Exact linear heads: least squares and ridge from float64 sufficient statistics.

A linear head on frozen features is fitted in closed form. The rows are streamed in chunks and only
the sufficient statistics are kept (Gram matrix, cross products, column sums, row count, per-target
sums of squares), all in float64, so the memory beyond the inputs is O(d^2) plus one chunk. The
statistics of disjoint row sets add, so N processes that each hold their own rows all-reduce them
(`SufficientStats.all_reduce`) and every process solves the same problem as a single process on all
rows would.

Conventions (those of scikit-learn's `Ridge`): minimise ||Y - X W - b||^2 + ridge * ||W||_F^2 with an
unpenalised intercept b. With ridge=0 and a rank-deficient Gram (collinear features, d > n) the
minimum-norm least-squares solution is returned (see `RidgePath` for the cutoff).

Numerics: the statistics are moments of the SHIFTED rows (x - x_shift, y - y_shift), with the shift
taken from the first chunk's column means. Centring the raw moments (X^T X - n m m^T) cancels
catastrophically when features have a large mean relative to their spread; moments about a point
close to the mean do not, and re-expressing them about another point is exact algebra.

Speed: the hot loop is one float64 rank-k update Z^T Z (BLAS syrk, half the flops of a GEMM) per chunk
of rows converted from the caller's dtype, with Z = [x | y | 1] so that the same product also gives
X^T y, the sums and y^T y. With several BLAS threads available, the chunks are shared
among that many Python threads, each running single-threaded BLAS into its own accumulators
(threadpoolctl), which avoids per-call thread barriers; under `accelerate launch` with
OMP_NUM_THREADS=1 one stream per process is used.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import eigh

_EPS = float(np.finfo(np.float64).eps)
# Rows per chunk are chosen so that one float64 chunk is about this many bytes: large enough for
# BLAS to run at full speed, small enough that the chunk stays a small fraction of the features.
_CHUNK_BYTES = 32 << 20


def default_chunk_size(d: int) -> int:
    """Rows per chunk for `d` features (~32 MiB of float64, between 256 and 16384 rows)."""
    return int(min(16384, max(256, _CHUNK_BYTES // (8 * max(d, 1)))))


@dataclass(eq=False)
class LinearHead:
    """An affine map x -> x @ weight + bias, stored in float64.

    `output_1d` records that the head was fitted on 1-D targets, so `predict` returns shape (n,)
    rather than (n, 1).
    """

    weight: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    output_1d: bool = False

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if self.weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (d, k), got shape {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[1],):
            raise ValueError(f"bias must have shape ({self.weight.shape[1]},), got {self.bias.shape}")
        if self.output_1d and self.weight.shape[1] != 1:
            raise ValueError("output_1d=True needs exactly one output column")

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[1])

    def predict(self, features: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Predictions (n,) or (n, k) in float64; features are converted chunk by chunk."""
        X = _as_feature_matrix(features, "features", allow_empty=True)
        if X.shape[1] != self.in_features:
            raise ValueError(
                f"features has {X.shape[1]} columns but the head expects {self.in_features}; "
                "use features from the same representation the head was fitted on"
            )
        step = chunk_size or default_chunk_size(self.in_features)
        out = np.empty((X.shape[0], self.out_features), dtype=np.float64)
        for start in range(0, X.shape[0], step):
            chunk = np.asarray(X[start : start + step], dtype=np.float64)
            np.matmul(chunk, self.weight, out=out[start : start + step])
        out += self.bias
        return out[:, 0] if self.output_1d else out

    def save(self, path: str | os.PathLike) -> None:
        """Write weight, bias and `output_1d` to a safetensors file (atomically)."""
        from safetensors.numpy import save_file

        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_head_", suffix=".safetensors")
        os.close(fd)
        try:
            save_file(
                {"weight": np.ascontiguousarray(self.weight), "bias": np.ascontiguousarray(self.bias)},
                tmp,
                metadata={"format": "w2s_hf.LinearHead", "output_1d": str(bool(self.output_1d))},
            )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearHead:
        """Read a head written by `save`."""
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"no LinearHead file at {path!r}")
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            if not {"weight", "bias"} <= keys or meta.get("format") != "w2s_hf.LinearHead":
                raise ValueError(f"{path!r} is not a LinearHead file (keys {sorted(keys)}, metadata {meta})")
            weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
        return cls(weight, bias, output_1d=meta.get("output_1d") == "True")


@dataclass(eq=False)
class SufficientStats:
    """Float64 moments of (x - x_shift, y - y_shift) over the rows seen so far.

    xtx (d, d) = sum (x - x_shift)(x - x_shift)^T, xty (d, k), x_sum (d,) = sum (x - x_shift),
    y_sum (k,), yty (k,) = per-target sum (y - y_shift)^2, n = rows. The shifts default to zero (raw
    moments); `update` sets them to the first chunk's means. Statistics of disjoint rows add (`+`),
    whatever their shifts.
    """

    xtx: np.ndarray
    xty: np.ndarray
    x_sum: np.ndarray
    y_sum: np.ndarray
    yty: np.ndarray
    n: int = 0
    x_shift: np.ndarray | None = None
    y_shift: np.ndarray | None = None
    targets_1d: bool = False

    def __post_init__(self) -> None:
        self.xtx, self.xty, self.x_sum, self.y_sum, self.yty = (
            np.asarray(a, dtype=np.float64) for a in (self.xtx, self.xty, self.x_sum, self.y_sum, self.yty)
        )
        d, k = self.xty.shape
        if self.xtx.shape != (d, d) or self.x_sum.shape != (d,) or self.y_sum.shape != (k,) or self.yty.shape != (k,):
            raise ValueError(f"inconsistent statistic shapes for d={d}, k={k}")
        self.x_shift = np.zeros(d) if self.x_shift is None else np.asarray(self.x_shift, np.float64)
        self.y_shift = np.zeros(k) if self.y_shift is None else np.asarray(self.y_shift, np.float64)
        self.n = int(self.n)

    @property
    def dim(self) -> int:
        return int(self.xty.shape[0])

    @property
    def n_targets(self) -> int:
        return int(self.xty.shape[1])

    @classmethod
    def empty(cls, d: int, k: int = 1, *, targets_1d: bool = False) -> SufficientStats:
        """Statistics of zero rows, ready for `update`."""
        return cls(np.zeros((d, d)), np.zeros((d, k)), np.zeros(d), np.zeros(k), np.zeros(k), 0,
                   targets_1d=targets_1d)

    @classmethod
    def from_arrays(cls, X: Any, Y: Any, chunk_size: int | None = None) -> SufficientStats:
        """Statistics of the rows of X (n, d) and Y (n,) or (n, k)."""
        X, Y, is_1d = _validated_pair(X, Y, allow_empty=False)
        stats = cls.empty(X.shape[1], Y.shape[1], targets_1d=is_1d)
        stats._accumulate(X, Y, chunk_size)
        return stats

    def update(self, X: Any, Y: Any, *, chunk_size: int | None = None) -> SufficientStats:
        """Add the rows of X, Y in place (returns self)."""
        X, Y, _ = _validated_pair(X, Y, allow_empty=True)
        if X.shape[1] != self.dim or Y.shape[1] != self.n_targets:
            raise ValueError(
                f"features/targets have {X.shape[1]}/{Y.shape[1]} columns but these statistics have "
                f"{self.dim}/{self.n_targets}"
            )
        self._accumulate(X, Y, chunk_size)
        return self

    def _accumulate(self, X: np.ndarray, Y: np.ndarray, chunk_size: int | None) -> None:
        n, d = X.shape
        if n == 0:
            return
        threads = _blas_threads()
        if chunk_size is None:
            # at least ~4 chunks per stream: balances the streams and keeps the buffers a small
            # fraction of a small input
            step = min(default_chunk_size(d), max(256, -(-n // (4 * threads))))
        else:
            step = int(chunk_size)
            if step < 1:
                raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
        if self.n == 0:  # nothing depends on the shift yet: move it close to the data's mean
            first = slice(0, min(step, n))
            self.x_shift = np.mean(X[first], axis=0, dtype=np.float64)
            self.y_shift = np.mean(Y[first], axis=0, dtype=np.float64)
        starts = list(range(0, n, step))
        workers = min(threads, len(starts))
        if workers <= 1:
            parts = [_chunk_moments(X, Y, starts, step, self.x_shift, self.y_shift)]
        else:
            # One single-threaded BLAS stream per core, each on its own chunks and accumulators:
            # no per-call thread barriers, which on shared or busy cores cost more than the work.
            from concurrent.futures import ThreadPoolExecutor

            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(
                    lambda w: _chunk_moments(X, Y, starts[w::workers], step, self.x_shift, self.y_shift),
                    range(workers),
                ))
        k = Y.shape[1]
        gram = sum(p[0] for p in parts)
        self.xtx += 0.5 * (gram + gram.T)  # exactly symmetric whatever the BLAS did
        for _, cross, y_sum, yty in parts:
            self.xty += cross[:, :k]
            self.x_sum += cross[:, k]
            self.y_sum += y_sum
            self.yty += yty
        self.n += n

    def shifted(self, x_shift: np.ndarray, y_shift: np.ndarray) -> SufficientStats:
        """The same statistics expressed as moments about (x_shift, y_shift)."""
        a = self.x_shift - np.asarray(x_shift, np.float64)  # x - x_shift = (x - self.x_shift) + a
        b = self.y_shift - np.asarray(y_shift, np.float64)
        u, v, n = self.x_sum, self.y_sum, self.n
        ua = np.outer(u, a)
        return SufficientStats(
            xtx=self.xtx + ua + ua.T + n * np.outer(a, a),
            xty=self.xty + np.outer(u, b) + np.outer(a, v) + n * np.outer(a, b),
            x_sum=u + n * a,
            y_sum=v + n * b,
            yty=self.yty + 2.0 * b * v + n * b * b,
            n=n,
            x_shift=np.array(x_shift, np.float64),
            y_shift=np.array(y_shift, np.float64),
            targets_1d=self.targets_1d,
        )

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x_mean, y_mean, centred Gram (d,d), centred cross (d,k), centred per-target sum of squares)."""
        if self.n == 0:
            raise ValueError("these statistics hold no rows; add rows with update() first")
        u, v, n = self.x_sum, self.y_sum, self.n
        return (
            self.x_shift + u / n,
            self.y_shift + v / n,
            self.xtx - np.outer(u, u) / n,
            self.xty - np.outer(u, v) / n,
            self.yty - v * v / n,
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if (self.dim, self.n_targets) != (other.dim, other.n_targets):
            raise ValueError(
                f"cannot add statistics of shape (d={self.dim}, k={self.n_targets}) and "
                f"(d={other.dim}, k={other.n_targets})"
            )
        total = self.n + other.n
        w = (self.n / total, other.n / total) if total else (0.5, 0.5)
        xs = w[0] * self.x_shift + w[1] * other.x_shift
        ys = w[0] * self.y_shift + w[1] * other.y_shift
        a, b = self.shifted(xs, ys), other.shifted(xs, ys)
        return SufficientStats(a.xtx + b.xtx, a.xty + b.xty, a.x_sum + b.x_sum, a.y_sum + b.y_sum,
                               a.yty + b.yty, total, xs, ys, self.targets_1d and other.targets_1d)

    def all_reduce(self, accelerator: Any) -> SufficientStats:
        """Sum these statistics over all processes of `accelerator` (no-op with one process).

        Every process must call this. Shifts are first agreed on (row-weighted mean of the local
        shifts), then the float64 moments are summed with one all-reduce.
        """
        if accelerator is None or getattr(accelerator, "num_processes", 1) <= 1:
            return self
        _check_consistent(accelerator, None, self.dim, self.n_targets, self.targets_1d)
        weighted = np.concatenate([[self.n], self.n * self.x_shift, self.n * self.y_shift])
        weighted = _sum_across(accelerator, weighted)
        total = weighted[0]
        if total > 0:
            xs, ys = weighted[1 : 1 + self.dim] / total, weighted[1 + self.dim :] / total
        else:
            xs, ys = np.zeros(self.dim), np.zeros(self.n_targets)
        local = self.shifted(xs, ys)
        parts = [local.xtx, local.xty, local.x_sum, local.y_sum, local.yty, np.array([local.n])]
        flat = _sum_across(accelerator, np.concatenate([p.ravel() for p in parts]))
        d, k = self.dim, self.n_targets
        sizes = np.cumsum([d * d, d * k, d, k, k])
        xtx, xty, x_sum, y_sum, yty, n = np.split(flat, sizes)
        xtx = xtx.reshape(d, d)
        return SufficientStats(0.5 * (xtx + xtx.T), xty.reshape(d, k), x_sum, y_sum, yty,
                               int(round(n[0])), xs, ys, self.targets_1d)

    def normal_equations(self, fit_intercept: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Gram (d,d), cross (d,k), x_mean, y_mean): centred when fitting an intercept, raw if not."""
        if self.n == 0:
            raise ValueError("these statistics hold no rows; cannot fit a head")
        if fit_intercept:
            x_mean, y_mean, gram, cross, _ = self.centred()
            return gram, cross, x_mean, y_mean
        raw = self.shifted(np.zeros(self.dim), np.zeros(self.n_targets))
        return raw.xtx, raw.xty, np.zeros(self.dim), np.zeros(self.n_targets)

    def solve(self, ridge: float = 0.0, fit_intercept: bool = True, *,
              rcond: float | None = None) -> LinearHead:
        """The ridge / least-squares head of these statistics.

        A Cholesky solve is used when the (regularised) Gram matrix is safely positive definite,
        i.e. when its estimated condition number shows that `RidgePath` would drop no direction;
        otherwise the eigendecomposition of `RidgePath` gives the minimum-norm solution.
        """
        ridge = _check_ridge(ridge)
        gram, cross, x_mean, y_mean = self.normal_equations(fit_intercept)
        cutoff = max(self.n, self.dim) * _EPS if rcond is None else float(rcond)
        weight = _cholesky_solve(gram, cross, ridge, cutoff)
        if weight is None:
            return RidgePath(self, fit_intercept=fit_intercept, rcond=rcond).head(ridge)
        bias = y_mean - x_mean @ weight if fit_intercept else np.zeros(weight.shape[1])
        return LinearHead(weight, bias, output_1d=self.targets_1d)


def _cholesky_solve(gram: np.ndarray, cross: np.ndarray, ridge: float, cutoff: float) -> np.ndarray | None:
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
        evals, self.evecs = eigh(gram, overwrite_a=True, check_finite=False, driver="evd")  # divide & conquer: ~4x faster than evr
        self.evals = np.clip(evals, 0.0, None)  # a Gram matrix is PSD; negatives are round-off
        self.proj = self.evecs.T @ cross  # (d, k): cross in the eigenbasis
        self.rcond = float(max(stats.n, stats.dim) * _EPS if rcond is None else rcond)

    def _inverse_spectrum(self, ridge: float) -> np.ndarray:
        ridge = _check_ridge(ridge)
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
        X, Y, _ = _validated_pair(X_val, Y_val, allow_empty=False, names=("X_val", "Y_val"))
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


def select_ridge(stats: SufficientStats, X_val: Any, Y_val: Any, grid: list[float] | None = None, *,
                 fit_intercept: bool = True) -> tuple[float, LinearHead, dict[float, float]]:
    """Choose the penalty with the smallest validation MSE on the caller's labels (gold or weak).

    Returns (best_ridge, head fitted with it, {ridge: val_mse}). Ties go to the larger penalty.
    """
    path = RidgePath(stats, fit_intercept=fit_intercept)
    grid = path.default_grid() if grid is None else [_check_ridge(r, "grid") for r in grid]
    if not grid:
        raise ValueError("grid is empty; pass at least one ridge penalty or grid=None")
    errors = path.val_errors(X_val, Y_val, sorted(set(grid)))
    best = min(errors, key=lambda r: (errors[r], -r))
    return best, path.head(best), errors


def fit_exact(features: Any, targets: Any, ridge: float = 0.0, fit_intercept: bool = True, *,
              chunk_size: int | None = None, accelerator: Any = None) -> LinearHead:
    """Least-squares / ridge head of targets on features, from float64 sufficient statistics.

    features (n, d), targets (n,) or (n, k): all k targets are fitted in one solve. Minimises
    ||Y - X W - b||^2 + ridge ||W||^2 (b unpenalised when `fit_intercept`). Any n and d work: when
    d > n or the features are rank-deficient (collinear columns), ridge=0 returns the minimum-norm
    least-squares solution (what `numpy.linalg.lstsq` returns) and ridge > 0 the unique ridge
    solution. Rows are read in chunks of `chunk_size`, so the memory beyond the inputs is O(d^2).

    With `accelerator` (more than one process), every process passes its own rows and receives the
    head of all rows, equal to a one-process fit up to float64 rounding. Invalid input on any process
    raises on every process (no hang).
    """
    ridge = _check_ridge(ridge)
    multi = accelerator is not None and getattr(accelerator, "num_processes", 1) > 1
    error, X, Y, is_1d = None, None, None, False
    try:
        X, Y, is_1d = _validated_pair(features, targets, allow_empty=multi)
    except ValueError as exc:
        if not multi:
            raise
        error = exc
    if multi:
        d = -1 if X is None else X.shape[1]
        k = -1 if Y is None else Y.shape[1]
        _check_consistent(accelerator, error, d, k, is_1d)
    stats = SufficientStats.empty(X.shape[1], Y.shape[1], targets_1d=is_1d)
    stats._accumulate(X, Y, chunk_size)
    stats = stats.all_reduce(accelerator) if multi else stats
    if stats.n == 0:
        raise ValueError("features is empty on every process; there are no rows to fit")
    return stats.solve(ridge, fit_intercept)


def _chunk_moments(X: np.ndarray, Y: np.ndarray, starts: list[int], step: int, x_shift: np.ndarray,
                   y_shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moments of the shifted rows in the chunks beginning at `starts`: (Gram,
    [X^T Y | column sums of X], sum of Y, per-target sum of squares), all float64.

    With few targets, each chunk is written once into Z = [x - x_shift | y - y_shift | 1] and ONE
    symmetric product Z^T Z (a BLAS syrk) yields every moment at once: a single pass over the chunk
    instead of a Gram, a cross product and two reductions. With many targets the Y^T Y block that
    this also computes would cost more than it saves, so X^T [Y | 1] is then a separate product.
    """
    n, d = X.shape
    k = Y.shape[1]
    rows_max = min(step, n)
    fused = k <= max(16, d // 16)
    width = d + k + 1 if fused else d
    total, product = np.zeros((width, width)), np.empty((width, width))
    buf = np.empty((rows_max, width))
    rhs = buf[:, d:] if fused else np.empty((rows_max, k + 1))  # [y - y_shift | 1]
    rhs[:, k] = 1.0
    if not fused:
        cross, y_sum, yty = np.zeros((d, k + 1)), np.zeros(k), np.zeros(k)
    for start in starts:
        rows = min(step, n - start)
        xc, yc = buf[:rows, :d], rhs[:rows, :k]
        np.copyto(xc, X[start : start + rows])  # cast, then shift in place
        np.subtract(xc, x_shift, out=xc)
        np.subtract(Y[start : start + rows], y_shift, out=yc)
        # numpy runs A^T A as a BLAS syrk (half a GEMM's flops) and, unlike scipy.linalg.blas,
        # releases the GIL, so several of these loops run in parallel threads.
        z = buf[:rows]
        np.matmul(z.T, z, out=product)
        total += product
        if not fused:
            cross += xc.T @ rhs[:rows]
            y_sum += yc.sum(axis=0)
            yty += np.einsum("ij,ij->j", yc, yc)
    if fused:
        moments_y = total[d:, d:]  # [[Y^T Y, Y^T 1], [1^T Y, n]]
        return total[:d, :d], total[:d, d:], moments_y[:k, k].copy(), np.diagonal(moments_y)[:k].copy()
    return total, cross, y_sum, yty


def _blas_threads() -> int:
    """Threads scipy's BLAS would use (respects OMP/OPENBLAS_NUM_THREADS); 1 without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 1
    counts = [info.get("num_threads", 1) for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(1, min(counts)) if counts else 1


def _validated_pair(X: Any, Y: Any, *, allow_empty: bool,
                    names: tuple[str, str] = ("features", "targets")) -> tuple[np.ndarray, np.ndarray, bool]:
    X = _as_feature_matrix(X, names[0], allow_empty=allow_empty)
    Y, is_1d = _as_target_matrix(Y, names[1], allow_empty=allow_empty)
    _check_same_rows(X, names[0], Y, names[1])
    return X, Y, is_1d


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensors, possibly on an accelerator or requiring grad
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_numeric(a: np.ndarray, name: str) -> None:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")


def _check_finite(a: np.ndarray, name: str) -> None:
    """Raise naming the first NaN/inf entry; one column-sum pass detects any (no big temporary)."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    # A column sum is NaN/inf whenever the column holds one; it can also overflow for huge finite
    # values, so a non-finite sum is confirmed by the exact scan below.
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum(axis=0)
    if np.all(np.isfinite(total)):
        return
    step = default_chunk_size(a.shape[1] if a.ndim == 2 else 1)
    for start in range(0, a.shape[0], step):
        bad = ~np.isfinite(a[start : start + step])
        if bad.any():
            where = np.argwhere(bad)[0]
            col = f", column {where[1]}" if a.ndim == 2 else ""
            raise ValueError(
                f"{name} contains NaN or inf (first at row {start + where[0]}{col}); drop or impute "
                "those rows before fitting"
            )
    # only a float64 overflow of the sum (huge but finite values): nothing to report


def _as_feature_matrix(X: Any, name: str, *, allow_empty: bool) -> np.ndarray:
    X = _to_numpy(X)
    _check_numeric(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {X.shape}; "
                         "use x.reshape(-1, 1) for a single feature")
    if X.shape[1] == 0 or (X.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name} is empty (shape {X.shape}); pass at least one row and one column")
    _check_finite(X, name)
    return X


def _as_target_matrix(Y: Any, name: str, *, allow_empty: bool) -> tuple[np.ndarray, bool]:
    Y = _to_numpy(Y)
    _check_numeric(Y, name)
    if Y.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (rows,) or 2-D (rows, targets), got shape {Y.shape}")
    is_1d = Y.ndim == 1
    Y = Y.reshape(-1, 1) if is_1d else Y
    if Y.shape[1] == 0 or (Y.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name} is empty (shape {Y.shape}); pass at least one row and one target")
    _check_finite(Y, name)
    return Y, is_1d


def _check_same_rows(X: np.ndarray, x_name: str, Y: np.ndarray, y_name: str) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{x_name} has {X.shape[0]} rows but {y_name} has {Y.shape[0]}; "
                         "they must describe the same examples in the same order")


def _check_ridge(ridge: Any, name: str = "ridge") -> float:
    try:
        value = float(ridge)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {ridge!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {ridge!r}")
    return value


def _sum_across(accelerator: Any, values: np.ndarray, reduction: str = "sum") -> np.ndarray:
    import torch
    from accelerate.utils import reduce

    device = getattr(accelerator, "device", torch.device("cpu"))
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(device)
    return reduce(tensor, reduction=reduction).cpu().numpy()


def _check_consistent(accelerator: Any, error: Exception | None, d: int, k: int, is_1d: bool) -> None:
    """Raise on every process if any process had invalid input or a different shape (avoids hangs)."""
    flags = np.array([error is not None, d, -d, k, -k, is_1d, -is_1d], dtype=np.float64)
    bad, d_max, d_min, k_max, k_min, one_max, one_min = _sum_across(accelerator, flags, "max")
    if error is not None:
        raise error
    if bad:
        raise ValueError("invalid features/targets on another process (see its error); no head was fitted")
    if (d_max, k_max) != (-d_min, -k_min) or one_max != -one_min:
        raise ValueError(
            f"processes disagree on shapes: features columns in [{-d_min:.0f}, {d_max:.0f}], "
            f"target columns in [{-k_min:.0f}, {k_max:.0f}]; every process needs the same layout"
        )
