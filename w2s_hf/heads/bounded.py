"""A teacher that never labels outside the range of the gold labels it was trained on (`weak_clip`).

The misfit theorem asks nothing of the weak model: it is any function, so a clipped head is as much a
teacher as the linear head inside it. What the clip buys is finite-sample sanity. A linear head on raw
features (RDKit descriptors, a minimum-norm fit on few labels) can extrapolate wildly on the few
w2s_train rows whose features lie far outside the rows it saw (measured: a Lipophilicity descriptors
head labelled two w2s_train molecules -63 and 176, gold range -1.5 to 4.5). A ridge-0 student fits those
labels exactly and carries them to every other row: its out-of-sample function is then not the
projection of the teacher, and one such point set the slope of a whole panel. Clipping to the range of
the labels the teacher saw is the usual safeguard of score predictors (essay scores live in [1, 5]).

The bounds are per target column, from the training targets of the rows the head was fitted on (its
weak label budget), and are stored in the head's record (`heads/weak.json`, key `clip`), so a head
reloaded from disk is the same function.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def label_range(y: Any) -> dict[str, list[float]]:
    """{"low": [...], "high": [...]}: per-column min and max of (n, k) or (n,) training targets."""
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1)
    if len(y) == 0 or not np.isfinite(y).all():
        raise ValueError(f"clip bounds need finite training targets, got {len(y)} rows "
                         f"({int((~np.isfinite(y)).sum())} not finite)")
    return {"low": y.min(axis=0).tolist(), "high": y.max(axis=0).tolist()}


class BoundedHead:
    """`inner.predict(X)` clipped column by column to [low, high]; every other attribute is the inner head's."""

    def __init__(self, inner: Any, low: Any, high: Any):
        self.inner = inner
        self.low = np.asarray(low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape or (self.low > self.high).any():
            raise ValueError(f"clip bounds must be matching columns with low <= high, got {self.low}, {self.high}")

    @classmethod
    def from_record(cls, inner: Any, clip: dict[str, list[float]]) -> "BoundedHead":
        return cls(inner, clip["low"], clip["high"])

    def predict(self, features: Any, **kwargs: Any) -> np.ndarray:
        pred = np.asarray(self.inner.predict(features, **kwargs), dtype=np.float64)
        if pred.ndim == 1:
            if self.low.size != 1:
                raise ValueError(f"1-D predictions but {self.low.size} clip columns")
            return np.clip(pred, self.low[0], self.high[0])
        if pred.shape[1] != self.low.size:
            raise ValueError(f"{pred.shape[1]} prediction columns but {self.low.size} clip columns")
        return np.clip(pred, self.low, self.high)

    def clipped_share(self, features: Any) -> float:
        """Share of predicted values (rows x columns) the clip moved by more than rounding: a minimum-norm
        teacher reproduces its training labels, the extreme ones included, to ~1e-13, and such a value on
        the bound is not counted whichever side of it the last bit falls (1 and 2 processes agree)."""
        raw = np.asarray(self.inner.predict(features), dtype=np.float64)
        raw = raw.reshape(len(raw), -1)
        if not raw.size:
            return 0.0
        tol = 1e-9 * (np.abs(self.low) + np.abs(self.high) + 1.0)
        return float(np.mean((raw < self.low - tol) | (raw > self.high + tol)))

    def __getattr__(self, name: str) -> Any:  # save, weight, bias, ...: the inner head's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
