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

from . import compat

compat.install()  # old module paths (w2s_hf.misfit, w2s_hf.kheads, ...) keep working

# public name -> module that defines it
_EXPORTS = {
    # data, features, heads
    "load_task": "w2s_hf.data",
    "W2STask": "w2s_hf.data",
    "FrozenEncoder": "w2s_hf.features",
    "fit_exact": "w2s_hf.heads",
    "select_ridge": "w2s_hf.heads",
    "LinearHead": "w2s_hf.heads",
    "SufficientStats": "w2s_hf.heads",
    "fit_adamw": "w2s_hf.heads.adamw",
    "fit_classifier": "w2s_hf.heads.mixture",
    "MixtureHead": "w2s_hf.heads.mixture",
    "LoraStudent": "w2s_hf.heads.lora",
    "train_lora": "w2s_hf.heads.lora",
    # decomposition
    "decompose": "w2s_hf.decomposition",
    "Decomposition": "w2s_hf.decomposition",
    "fit_gain_on_misfit": "w2s_hf.decomposition",
    "select_weak_model": "w2s_hf.decomposition",
    # hooks
    "evaluate_point": "w2s_hf.hooks",
    "MisfitCallback": "w2s_hf.hooks",
    "metric_path": "w2s_hf.hooks",
    "plot_misfit_vs_gain": "w2s_hf.hooks",
    # config, pipeline, experiments
    "W2SConfig": "w2s_hf.config",
    "parse_config": "w2s_hf.config",
    "W2SPipeline": "w2s_hf.pipeline",
    "run_w2s": "w2s_hf.pipeline",
    "SweepConfig": "w2s_hf.config",
    "run_sweep": "w2s_hf.experiments.sweep",
    "SyntheticConfig": "w2s_hf.experiments.synthetic",
    "run_synthetic": "w2s_hf.experiments.synthetic",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif f"w2s_hf.{name}" in compat.ALIASES:  # `w2s_hf.evaluation.metric_path()` after a plain `import w2s_hf`
        value = importlib.import_module(f"w2s_hf.{name}")
    else:
        raise AttributeError(f"module 'w2s_hf' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
