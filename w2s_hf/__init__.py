"""w2s_hf: weak-to-strong generalization on the HuggingFace stack.

Frozen representations from any HuggingFace model, linear heads fitted exactly (or with AdamW) across
processes with `accelerate`, and the misfit decomposition of Charikar, Pabbaraju & Shiragur
(NeurIPS 2024): gain = weak_error - w2s_error >= misfit, with equality when the strong class is a
linear subspace.

Public names are imported lazily so that `import w2s_hf` stays cheap (no torch / transformers until
a name that needs them is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "fit_exact": "w2s_hf.heads",
    "LinearHead": "w2s_hf.heads",
    "SufficientStats": "w2s_hf.heads",
    "decompose": "w2s_hf.misfit",
    "Decomposition": "w2s_hf.misfit",
    "FrozenEncoder": "w2s_hf.features",
    "load_task": "w2s_hf.data",
    "W2STask": "w2s_hf.data",
    "select_ridge": "w2s_hf.heads",
    "fit_gain_on_misfit": "w2s_hf.misfit",
    "select_weak_model": "w2s_hf.selection",
    "W2SConfig": "w2s_hf.config",
    "parse_config": "w2s_hf.config",
    "W2SPipeline": "w2s_hf.pipeline",
    "run_w2s": "w2s_hf.pipeline",
    "plot_misfit_vs_gain": "w2s_hf.plotting",
    "fit_adamw": "w2s_hf.adamw",
    "MisfitCallback": "w2s_hf.callbacks",
    "metric_path": "w2s_hf.evaluation",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'w2s_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
