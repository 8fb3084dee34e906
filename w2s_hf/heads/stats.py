"""`SufficientStats`: float64 moments of (features, targets) that add across chunks and processes.

Rows are streamed in chunks and only the moments are kept (Gram, cross products, sums, counts), so
the memory beyond the inputs is O(d^2) plus one chunk, and N processes that all-reduce them solve
the same problem as one process on all rows.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arrays import features_and_targets
from ..distributed import agree, num_processes, reduce_array
from .linear import LinearHead, default_chunk_size, single_blas_thread
from .ridge import EPS, RidgePath, check_ridge, cholesky_solve


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
        X, Y, is_1d = features_and_targets(X, Y, allow_empty=False)
        stats = cls.empty(X.shape[1], Y.shape[1], targets_1d=is_1d)
        stats._accumulate(X, Y, chunk_size)
        return stats

    def update(self, X: Any, Y: Any, *, chunk_size: int | None = None) -> SufficientStats:
        """Add the rows of X, Y in place (returns self)."""
        X, Y, _ = features_and_targets(X, Y, allow_empty=True)
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
        if num_processes(accelerator) <= 1:
            return self
        agree(accelerator, None, (self.dim, self.n_targets, self.targets_1d), "sufficient statistics")
        weighted = np.concatenate([[self.n], self.n * self.x_shift, self.n * self.y_shift])
        weighted = reduce_array(accelerator, weighted)
        total = weighted[0]
        if total > 0:
            xs, ys = weighted[1 : 1 + self.dim] / total, weighted[1 + self.dim :] / total
        else:
            xs, ys = np.zeros(self.dim), np.zeros(self.n_targets)
        local = self.shifted(xs, ys)
        parts = [local.xtx, local.xty, local.x_sum, local.y_sum, local.yty, np.array([local.n])]
        flat = reduce_array(accelerator, np.concatenate([p.ravel() for p in parts]))
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
        with single_blas_thread():  # short LAPACK calls: see `single_blas_thread`
            return self._solve(ridge, fit_intercept, rcond)

    def _solve(self, ridge: float, fit_intercept: bool, rcond: float | None) -> LinearHead:
        """The ridge / least-squares head of these statistics.

        A Cholesky solve is used when the (regularised) Gram matrix is safely positive definite,
        i.e. when its estimated condition number shows that `RidgePath` would drop no direction;
        otherwise the eigendecomposition of `RidgePath` gives the minimum-norm solution.
        """
        ridge = check_ridge(ridge)
        gram, cross, x_mean, y_mean = self.normal_equations(fit_intercept)
        cutoff = max(self.n, self.dim) * EPS if rcond is None else float(rcond)
        weight = cholesky_solve(gram, cross, ridge, cutoff)
        if weight is None:
            return RidgePath(self, fit_intercept=fit_intercept, rcond=rcond).head(ridge)
        bias = y_mean - x_mean @ weight if fit_intercept else np.zeros(weight.shape[1])
        return LinearHead(weight, bias, output_1d=self.targets_1d)


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
