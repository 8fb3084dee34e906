"""Exact linear heads on frozen features: least squares and ridge from float64 sufficient statistics.

    linear.py  `LinearHead`: predictions and the safetensors file
    stats.py   `SufficientStats`: moments that add across chunks and processes
    ridge.py   Cholesky / eigendecomposition solves, `RidgePath` (every penalty from one eigh)
    fit.py     `gather_stats`, `fit_ridge`, `select_ridge`, `fit_exact`: how heads are fitted
"""

from .fit import fit_exact, fit_ridge, gather_stats, select_ridge
from .linear import LinearHead, default_chunk_size
from .ridge import RidgePath
from .stats import SufficientStats

__all__ = ["LinearHead", "RidgePath", "SufficientStats", "default_chunk_size", "fit_exact", "fit_ridge",
           "gather_stats", "select_ridge"]
