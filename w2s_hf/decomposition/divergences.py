"""Divergences of the decomposition, by name: `DIVERGENCES` (squared loss, KL on probabilities or logits).

Losses are Bregman divergences D(p, q). Errors are D(y, prediction) and the misfit is D(w2s, weak), the
orientation of the Bregman Pythagorean inequality D(y, weak) >= D(y, w2s) + D(w2s, weak) that holds when
the student is the projection of the weak predictions onto a convex class containing y (Mulgund &
Pabbaraju, ICML 2025). A new divergence is one entry here, plus the training loss that minimises it in
`w2s_hf.heads.losses` (each loss names its divergence; tests/test_repo.py checks that the names meet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Divergence:
    """Per-example divergence: `loss(pred, target)` = D(target, pred), shape (n, m), one column per
    reported target. `check(pred, pred_name, target, target_name)` raises ValueError on bad shapes."""

    name: str
    loss: Callable[[np.ndarray, np.ndarray], np.ndarray]
    check: Callable[[np.ndarray, str, np.ndarray, str], None]
    # D(a, b) between two models' predictions, when it differs from D(label, prediction) (KL: the
    # target is then a predicted distribution, not labels); default: `loss`
    pair_loss: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    # extra per-example quantities (y, weak, w2s, ceiling) -> {name: (n,) array or None}, e.g. accuracies
    # for classification: averaged, and bootstrapped with the same resamples as the base quantities
    extras: Callable[..., dict[str, Any]] | None = None
    # what the errors and the misfit are, for axis labels (plots) and table headers
    label: str = "divergence"


def _same_shape(pred: np.ndarray, pred_name: str, target: np.ndarray, target_name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{pred_name} has shape {pred.shape} but {target_name} has shape "
                         f"{target.shape}; predictions and labels must align row by row and column by column")


SQUARED = Divergence("squared", lambda pred, target: (pred - target) ** 2, _same_shape, label="mean squared error")


def _kl(logits: bool) -> Divergence:
    from . import kl as c

    def check(pred, pred_name, target, target_name):
        c.check_predictions(pred, pred_name, logits=logits)
        c.check_labels(target, target_name, 2 if pred.shape[1] == 1 else pred.shape[1], pred_name)

    return Divergence(
        "kl_logits" if logits else "kl",
        lambda pred, target: c.kl_loss(pred, target, logits=logits, target_is_pred=False),
        check,
        pair_loss=lambda pred, target: c.kl_loss(pred, target, logits=logits, target_is_pred=True),
        extras=lambda y, weak, w2s, ceiling: c.extras(y, weak, w2s, ceiling, logits=logits),
        # errors are KL(gold || model), the cross-entropy minus the labels' entropy (0 for one-hot labels)
        label="errors: cross-entropy, misfit: KL (nats)",
    )


DIVERGENCES: dict[str, Divergence] = {"squared": SQUARED, "kl": _kl(False), "kl_logits": _kl(True)}
