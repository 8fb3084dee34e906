"""Finetuned students: the strong (or weak) transformer with a LoRA adapter (peft) and a linear head.

    student.py  `LoraStudent`: AutoModel up to the configured layer, `FrozenEncoder`'s pooling, a
                `head` started at the linear student's head (a ridge head, or for classification the
                k-head mixture); target modules; save / load; predict
    train.py    `train_lora`: AdamW under accelerate (global batches split across processes),
                early stopping on the head's selection labels, hooks at every evaluation point
    losses.py   per-example training losses, by name (`LOSSES`: regression and classification)

The theorem (gain >= misfit) covers a linear head on a frozen representation, a convex class; a LoRA
student is not in one, so its decomposition is measured, not bounded.
"""

from .losses import CLASSIFICATION_LOSSES, LOSSES, REGRESSION_LOSSES
from .student import LoraStudent, check_lora_targets, lora_target_names
from .train import LoraFit, plan_epoch, train_lora

__all__ = ["CLASSIFICATION_LOSSES", "LOSSES", "REGRESSION_LOSSES", "LoraFit", "LoraStudent", "check_lora_targets",
           "lora_target_names", "plan_epoch", "train_lora"]
