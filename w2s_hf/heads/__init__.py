"""Exact linear heads on frozen features: least squares and ridge from float64 sufficient statistics.

    linear.py  `LinearHead`: predictions and the safetensors file
    stats.py   `SufficientStats`: moments that add across chunks and processes
    ridge.py   Cholesky / eigendecomposition solves, `RidgePath` (every penalty from one eigh)
    fit.py     `gather_stats`, `fit_ridge`, `select_ridge`, `fit_exact`: how heads are fitted

Names are loaded on first use: the config reads `registry`, `losses` and `lora`'s lists of choices,
and importing those must not import scipy (the ridge solves) before `--help` is printed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fit_exact": "fit", "fit_ridge": "fit", "gather_stats": "fit", "select_ridge": "fit",
    "LinearHead": "linear", "default_chunk_size": "linear", "RidgePath": "ridge", "SufficientStats": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return __all__
