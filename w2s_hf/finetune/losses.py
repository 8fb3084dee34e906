"""Per-example training losses of finetuned students: `loss(pred (n, k), target (n, k)) -> (n,)`.

A loss is a plain function of tensors, registered by name; `lora_loss` in the config picks one. The
squared error is the regression loss of the theorem. Classification (the students of `kheads.py`:
reverse / forward KL, hard cross-entropy) plugs in as further entries taking logits.
"""

from __future__ import annotations

from typing import Any, Callable


def squared_error(pred: Any, target: Any) -> Any:
    """Mean over targets of (pred - target)^2, one value per example (the decomposition's average)."""
    return ((pred - target) ** 2).mean(dim=1)


LOSSES: dict[str, Callable[[Any, Any], Any]] = {"squared": squared_error}
