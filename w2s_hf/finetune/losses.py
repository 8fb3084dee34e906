"""Per-example training losses of finetuned students: `loss(pred (n, k), target (n, k)) -> (n,)`.

A loss is a plain function of tensors, registered by name. Regression (`REGRESSION_LOSSES`, picked by
`lora_loss`): the squared error of the theorem, on the head's outputs. Classification
(`CLASSIFICATION_LOSSES`, the k-head students' losses of `w2s_hf.kheads`): `pred` is the head's (n, c)
mixture log-probabilities and `target` (n, c) distributions; the student takes `student_loss`, a head
on gold labels `forward_kl` on one-hot targets (cross-entropy), as `W2SPipeline._fit_classifier` does.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from ..config import STUDENT_LOSSES
from ..kheads import _loss


def squared_error(pred: Any, target: Any) -> Any:
    """Mean over targets of (pred - target)^2, one value per example (the decomposition's average)."""
    return ((pred - target) ** 2).mean(dim=1)


REGRESSION_LOSSES: dict[str, Callable[[Any, Any], Any]] = {"squared": squared_error}
CLASSIFICATION_LOSSES: dict[str, Callable[[Any, Any], Any]] = {name: partial(_loss, kind=name)
                                                                for name in STUDENT_LOSSES}
LOSSES: dict[str, Callable[[Any, Any], Any]] = {**REGRESSION_LOSSES, **CLASSIFICATION_LOSSES}
