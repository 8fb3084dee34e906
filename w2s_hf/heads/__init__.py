"""Exact linear heads on frozen features: least squares and ridge from float64 sufficient statistics.

    linear.py  `LinearHead`: predictions and the safetensors file
    stats.py   `SufficientStats`: moments that add across chunks and processes
    ridge.py   Cholesky / eigendecomposition solves, `RidgePath` (every penalty from one eigh)
    fit.py     `gather_stats`, `fit_ridge`, `select_ridge`, `fit_exact`: how heads are fitted

Names are loaded on first use: the config reads `registry`, `losses` and `lora`'s lists of choices,
and importing those must not import scipy (the ridge solves) before `--help` is printed.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "fit_exact": "fit", "fit_ridge": "fit", "gather_stats": "fit", "select_ridge": "fit",
    "LinearHead": "linear", "default_chunk_size": "linear", "RidgePath": "ridge", "SufficientStats": "stats",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
