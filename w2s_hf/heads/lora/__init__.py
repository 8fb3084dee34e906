"""Finetuned students: the strong (or weak) transformer with a LoRA adapter (peft) and a linear head.

    student.py  `LoraStudent`: AutoModel up to the configured layer, `FrozenEncoder`'s pooling, a
                `head` started at the linear student's head (a ridge head, or for classification the
                k-head mixture); target modules; save / load; predict
    train.py    `train_lora`: AdamW under accelerate (global batches split across processes),
                early stopping on the head's selection labels, hooks at every evaluation point

Training losses are `w2s_hf.heads.losses`. The theorem (gain >= misfit) covers a linear head on a
frozen representation, a convex class; a LoRA student is not in one, so its decomposition is
measured, not bounded. Names load on first use (torch and peft are heavy).
"""

from __future__ import annotations

import importlib
from typing import Any

# auto: bf16 autocast on a GPU, float32 on the CPU (the config's choices)
MIXED_PRECISION = ("auto", "no", "bf16")
_EXPORTS = {"LoraStudent": "student", "check_lora_targets": "student", "lora_target_names": "student",
            "LoraFit": "train", "plan_epoch": "train", "train_lora": "train"}
__all__ = ["MIXED_PRECISION", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
