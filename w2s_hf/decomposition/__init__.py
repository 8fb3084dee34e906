"""The decomposition layer: pure functions from per-example predictions to the paper's quantities.

    core.py         `decompose` -> `Decomposition` (weak_error, w2s_error, misfit, gain, residual, ...,
                    bootstrap intervals), `fit_gain_on_misfit` (slope and R^2 across runs)
    diagnostics.py  why the residual is what it is: `DIAGNOSTICS` (finite_sample_term + nonrealizability_term
                    = residual exactly, their bounds, the ceiling-as-truth `proxy_*` quantities)
    divergences.py  `DIVERGENCES`: the squared loss and KL (probabilities or logits), by name, with their
                    Bregman geometry (`BregmanMap`); the one table is `w2s_hf.divergences` (with the KL maths)
    selection.py    `select_weak_model`: choose a weak model by its misfit, no gold labels needed
"""

from .core import DIAGNOSTICS, QUANTITIES, Decomposition, decompose, fit_gain_on_misfit
from .divergences import DIVERGENCES, BregmanMap, Divergence
from .selection import Selection, select_weak_model

__all__ = ["DIAGNOSTICS", "DIVERGENCES", "QUANTITIES", "BregmanMap", "Decomposition", "Divergence", "Selection",
           "decompose", "fit_gain_on_misfit", "select_weak_model"]
