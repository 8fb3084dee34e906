"""Checks of the arrays users hand in (features, labels, predictions): one place, one set of messages.

Each check names the argument, the shape or row at fault and the fix, and runs before any work
(a fit, a decomposition, a collective) starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SHAPES = {(2,): "2-D (rows, columns)", (1, 2): "1-D (rows,) or 2-D (rows, columns)"}
_SCAN_ROWS = 4096  # rows per step when locating a non-finite value


def to_numpy(a: Any) -> np.ndarray:
    """A numpy view of `a`; torch tensors (on any device, with or without grad) are detached first."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def positive_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, nan where den <= 0 (a ratio to no gap is undefined, not a number)."""
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise naming the first NaN/inf entry; one column-sum pass detects any (no big temporary)."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    # A column sum is NaN/inf whenever the column holds one; it can also overflow for huge finite
    # values, so a non-finite sum is confirmed by the exact scan below.
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum(axis=0)
    if np.all(np.isfinite(total)):
        return
    for start in range(0, a.shape[0], _SCAN_ROWS):
        bad = ~np.isfinite(a[start : start + _SCAN_ROWS])
        if bad.any():
            where = np.argwhere(bad)[0]
            col = f", column {where[1]}" if a.ndim == 2 else ""
            raise ValueError(f"{name} contains NaN or inf ({name} has a NaN or infinite value, first at row "
                             f"{start + where[0]}{col}); drop or impute those rows first")
    # only a float64 overflow of the sum (huge but finite values): nothing to report


def as_real_array(a: Any, name: str, *, ndim: tuple[int, ...] = (1, 2), allow_empty: bool = False) -> np.ndarray:
    """`a` as a finite numeric array of `ndim` dimensions, with rows (unless `allow_empty`) and columns."""
    if a is None:
        raise ValueError(f"{name} is required")
    arr = to_numpy(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        hint = "; use x.reshape(-1, 1) for a single column" if ndim == (2,) and arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {_SHAPES[ndim]}, got shape {arr.shape}{hint}")
    if (arr.ndim == 2 and arr.shape[1] == 0) or (arr.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one row and one column")
    check_finite(arr, name)
    return arr


def as_matrix(a: Any, name: str, *, allow_empty: bool = False) -> tuple[np.ndarray, bool]:
    """(a as a 2-D (rows, columns) array, whether it was 1-D); 1-D input becomes one column."""
    arr = as_real_array(a, name, allow_empty=allow_empty)
    return (arr.reshape(-1, 1), True) if arr.ndim == 1 else (arr, False)


def check_same_rows(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{a_name} has {len(a)} rows but {b_name} has {len(b)}; "
                         "they must describe the same examples in the same order")


def features_and_targets(X: Any, Y: Any, *, allow_empty: bool,
                         names: tuple[str, str] = ("features", "targets")) -> tuple[np.ndarray, np.ndarray, bool]:
    """(X (n, d), Y (n, k), whether Y was 1-D), checked: numeric, finite, aligned."""
    X = as_real_array(X, names[0], ndim=(2,), allow_empty=allow_empty)
    Y, is_1d = as_matrix(Y, names[1], allow_empty=allow_empty)
    check_same_rows(X, names[0], Y, names[1])
    return X, Y, is_1d


# rows of probabilities must sum to 1 within this (float32 softmax outputs, CSV round trips)
SUM_TOL = 1e-6


def check_labels(y: np.ndarray, name: str, n_classes: int, pred_name: str) -> None:
    """Class indices (n, 1), binary probabilities (n, 1) or soft labels (n, C) of `n_classes` classes."""
    if y.shape[1] == 1:
        col = y[:, 0]
        if np.all(col == np.round(col)):
            bad = np.flatnonzero((col < 0) | (col >= n_classes))
            if len(bad):
                raise ValueError(f"{name} holds class index {col[bad[0]]:g} at row {bad[0]}, outside "
                                 f"0..{n_classes - 1} (the {n_classes} classes of {pred_name})")
            return
        if n_classes != 2 or np.any(col < 0) or np.any(col > 1):
            raise ValueError(f"{name} must be class indices (0..{n_classes - 1}) or, for binary, probabilities of "
                             "class 1")
        return
    if y.shape[1] != n_classes:
        raise ValueError(f"{name} has {y.shape[1]} columns but {pred_name} has {n_classes} classes")
    sums = y.sum(axis=1)
    if np.any(y < 0) or np.any(np.abs(sums - 1.0) > SUM_TOL):
        raise ValueError(f"{name}: soft labels must be non-negative rows that sum to 1")
