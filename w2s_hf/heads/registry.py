"""Head fitters by (task type, solver): the one table the pipeline dispatches on.

A fitter is named `"module:function"` and imported on first use (the exact heads need scipy, the
iterative ones torch), so reading `SOLVERS` for a config's choices imports nothing heavy. Every fitter
has one interface, `fit(request) -> (head, record)` (`FitRequest` in fitters.py); `head_class` says
which class loads the saved artifact (`.load(path)`), and `artifact` the file suffix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# solvers of the linear heads (the config's choices); "lora" is the finetuned students' own solver
SOLVERS = ("exact", "adamw")


@dataclass(frozen=True)
class Fitter:
    fit: str  # "module:function", called with a FitRequest -> (head, record)
    head_class: str  # "module:Class" with .load(path), for the saved artifact
    artifact: str  # what a fitted head leaves in the run folder

    def load_fit(self) -> Callable[..., Any]:
        return _resolve(self.fit)

    def load_head_class(self) -> Any:
        return _resolve(self.head_class)


def _resolve(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


_F = "w2s_hf.heads.fitters"
_LINEAR = "w2s_hf.heads.linear:LinearHead"
_MIXTURE = "w2s_hf.heads.mixture:MixtureHead"
_LORA = "w2s_hf.heads.lora.student:LoraStudent"
_BT = "w2s_hf.heads.bradley_terry:BradleyTerryHead"
FITTERS: dict[tuple[str, str], Fitter] = {
    ("regression", "exact"): Fitter(f"{_F}:fit_exact_head", _LINEAR, "safetensors"),
    ("regression", "adamw"): Fitter(f"{_F}:fit_adamw_head", _LINEAR, "safetensors"),
    # "exact": a softmax head (k = 1) by full-batch L-BFGS (a mixture, k > 1, by AdamW); "adamw": AdamW for any k
    ("classification", "exact"): Fitter(f"{_F}:fit_softmax_head", _MIXTURE, "safetensors"),
    ("classification", "adamw"): Fitter(f"{_F}:fit_mixture_head", _MIXTURE, "safetensors"),
    # a Bradley-Terry head is a convex fit: "exact" and "adamw" both run the float64 Newton fit to its optimum
    ("preference", "exact"): Fitter(f"{_F}:fit_bradley_terry_head", _BT, "safetensors"),
    ("preference", "adamw"): Fitter(f"{_F}:fit_bradley_terry_head", _BT, "safetensors"),
    ("regression", "lora"): Fitter(f"{_F}:fit_lora_head", _LORA, "adapter"),
    ("classification", "lora"): Fitter(f"{_F}:fit_lora_head", _LORA, "adapter"),
}


def register_fitter(task_type: str, solver: str, fitter: Fitter) -> None:
    """Add a fitter (a new task kind or solver is one registration)."""
    FITTERS[(task_type, solver)] = fitter


def get_fitter(task_type: str, solver: str) -> Fitter:
    try:
        return FITTERS[(task_type, solver)]
    except KeyError:
        known = sorted(s for t, s in FITTERS if t == task_type)
        raise ValueError(f"no head fitter for task_type={task_type!r} and solver={solver!r}; "
                         f"choose one of {known}.") from None
