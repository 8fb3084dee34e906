"""Finetuned students: the strong (or weak) transformer with a LoRA adapter (peft) and a linear head.

    student.py  `LoraStudent`: AutoModel up to the configured layer, `FrozenEncoder`'s pooling, a
                linear `head` started at an exact ridge head; target modules; save / load; predict
    train.py    `train_lora`: AdamW under accelerate (global batches split across processes),
                early stopping on the head's selection labels, hooks at every evaluation point
    losses.py   per-example training losses, by name (`LOSSES`)

The theorem (gain >= misfit) covers a linear head on a frozen representation, a convex class; a LoRA
student is not in one, so its decomposition is measured, not bounded.
"""

from .losses import LOSSES
from .student import LoraStudent, check_lora_targets, lora_target_names
from .train import LoraFit, plan_epoch, train_lora

__all__ = ["LOSSES", "LoraFit", "LoraStudent", "check_lora_targets", "lora_target_names", "plan_epoch",
           "train_lora"]
