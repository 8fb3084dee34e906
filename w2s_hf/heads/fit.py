"""Fitting an exact head: the one path every caller takes (pipeline, sweep, `fit_exact`).

`gather_stats` turns each process's rows into the sufficient statistics of all rows; `fit_ridge`
solves them with a fixed penalty or the one chosen on validation labels (gold or weak: the caller's).
"""

from __future__ import annotations

from typing import Any

from ..arrays import features_and_targets
from ..distributed import agree, num_processes
from .linear import LinearHead, single_blas_thread
from .ridge import RidgePath, check_ridge, dropped_directions
from .stats import SufficientStats


def gather_stats(features: Any, targets: Any, *, accelerator: Any = None,
                 chunk_size: int | None = None) -> SufficientStats:
    """Statistics of every process's rows: each process passes its own (possibly no) rows.

    Invalid input on any process raises on every process (no hang).
    """
    multi = num_processes(accelerator) > 1
    error, X, Y, is_1d = None, None, None, False
    try:
        X, Y, is_1d = features_and_targets(features, targets, allow_empty=multi)
    except ValueError as exc:
        if not multi:
            raise
        error = exc
    if multi:
        d = -1 if X is None else X.shape[1]
        k = -1 if Y is None else Y.shape[1]
        agree(accelerator, error, (d, k, is_1d), "features/targets")
    stats = SufficientStats.empty(X.shape[1], Y.shape[1], targets_1d=is_1d)
    stats._accumulate(X, Y, chunk_size)
    return stats.all_reduce(accelerator) if multi else stats


def select_ridge(stats: SufficientStats, X_val: Any, Y_val: Any, grid: list[float] | None = None, *,
                 fit_intercept: bool = True) -> tuple[float, LinearHead, dict[float, float]]:
    """Choose the penalty with the smallest validation MSE on the caller's labels (gold or weak).

    Returns (best_ridge, head fitted with it, {ridge: val_mse}). Ties go to the larger penalty.
    """
    grid = None if grid is None else [check_ridge(r, "grid") for r in grid]
    if grid is not None and not grid:
        raise ValueError("grid is empty; pass at least one ridge penalty or grid=None")
    with single_blas_thread():  # one eigh and small products: see `single_blas_thread`
        path = RidgePath(stats, fit_intercept=fit_intercept)
        errors = path.val_errors(X_val, Y_val, sorted(set(path.default_grid() if grid is None else grid)))
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

    Ridge 0 is a *truncated* solve on the Gram X^T X, not what `numpy.linalg.lstsq` returns on X:
    eigenvalues of the Gram at or below max(n, d) * eps * max are dropped, and forming the Gram squares
    the condition number. At cond(X) = 1e6 nothing is dropped, but the weights differ from lstsq by
    ~1e-4 relative (predictions ~1e-6); from cond(X) ~ 1e7 on directions are dropped that lstsq keeps,
    and the weights are a different (smaller-norm) solution. `fit_ridge` records how many directions
    a ridge-0 fit dropped (`dropped_directions`).
    """
    ridge = check_ridge(ridge)
    stats = gather_stats(features, targets, accelerator=accelerator, chunk_size=chunk_size)
    if stats.n == 0:
        raise ValueError("features is empty on every process; there are no rows to fit")
    return stats.solve(ridge, fit_intercept)




def fit_ridge(X: Any, Y: Any, X_val: Any, Y_val: Any, *, ridge: float | None = None, fit_intercept: bool = True,
              accelerator: Any = None) -> tuple[LinearHead, dict[str, Any]]:
    """(head, record): ridge head of this process's rows (X, Y) over all processes.

    `ridge=None` chooses the penalty on (X_val, Y_val), the full validation rows on every process;
    the record then holds the validation curve. It always holds the penalty used.
    """
    stats = gather_stats(X, Y, accelerator=accelerator)
    record: dict[str, Any] = {}
    if ridge is None:
        ridge, head, curve = select_ridge(stats, X_val, Y_val, fit_intercept=fit_intercept)
        record["val_errors"] = {repr(float(k)): float(v) for k, v in curve.items()}
    else:
        head = stats.solve(ridge=ridge, fit_intercept=fit_intercept)
    record["ridge"] = float(ridge)
    if ridge == 0:  # the theorem's setting, solved by truncation: say how much was cut
        record["dropped_directions"] = dropped_directions(stats, fit_intercept)
    return head, record
