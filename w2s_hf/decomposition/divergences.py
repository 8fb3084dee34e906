"""Divergences of the decomposition, by name: `DIVERGENCES` (squared loss, KL on probabilities or logits).

Losses are Bregman divergences D(p, q). Errors are D(y, prediction) and the misfit is D(w2s, weak), the
orientation of the Bregman Pythagorean inequality D(y, weak) >= D(y, w2s) + D(w2s, weak) that holds when
the student is the projection of the weak predictions onto a convex class containing y (Mulgund &
Pabbaraju, ICML 2025). A new divergence is one entry here, plus the training loss that minimises it in
`w2s_hf.heads.losses` (each loss names its divergence; tests/test_repo.py checks that the names meet).

Each entry also carries its `BregmanMap` (the points and gradients of phi, D = D_phi), from which
`w2s_hf.decomposition.diagnostics` splits the residual with the three-point identity
D(y, W) - D(y, S) - D(S, W) = <grad phi(S) - grad phi(W), y - S>.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BregmanMap:
    """The geometry of phi for the residual split, every map returning (n, m, d): m reported targets, d
    the coordinates of one target (1 for the squared loss, the classes for KL).

    `point(pred)`: a prediction as a point of phi's domain (KL: its probabilities); `gradient(pred)`:
    grad phi at that point (squared: 2x; KL: log-probabilities, the +1 of grad(sum p log p) cancels
    against differences of distributions); `label_point(y, pred)`: gold labels as points (KL: one-hot
    or soft distributions; `pred` gives the class count); `weight(point)`: positive weights mu of the
    Cauchy-Schwarz inequality |sum a b| <= sqrt(sum mu a^2) sqrt(sum b^2 / mu) used for the bounds
    (squared: 1, which gives 2 sqrt(misfit * ...); KL: the student's probabilities).
    """

    point: Callable[[np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray], np.ndarray]
    label_point: Callable[[np.ndarray, np.ndarray], np.ndarray]
    weight: Callable[[np.ndarray], np.ndarray]


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
    # phi's points and gradients (the residual split); None: the divergence is not Bregman, no split
    bregman: BregmanMap | None = None


def _same_shape(pred: np.ndarray, pred_name: str, target: np.ndarray, target_name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{pred_name} has shape {pred.shape} but {target_name} has shape "
                         f"{target.shape}; predictions and labels must align row by row and column by column")


_SQUARED_MAP = BregmanMap(
    point=lambda pred: pred[:, :, None],
    gradient=lambda pred: 2.0 * pred[:, :, None],  # phi(x) = x^2
    label_point=lambda y, pred: y[:, :, None],
    weight=np.ones_like,
)
SQUARED = Divergence("squared", lambda pred, target: (pred - target) ** 2, _same_shape, bregman=_SQUARED_MAP)


def _kl(logits: bool, binary: bool = False) -> Divergence:
    from . import kl as c

    def check(pred, pred_name, target, target_name):
        if binary and (pred.ndim != 2 or pred.shape[1] != 1):
            raise ValueError(f"{pred_name} has shape {pred.shape}: binary KL takes one probability per row "
                             "(the first response's, for preferences)")
        c.check_predictions(pred, pred_name, logits=logits)
        c.check_labels(target, target_name, 2 if pred.shape[1] == 1 else pred.shape[1], pred_name)

    return Divergence(
        "binary_kl" if binary else "kl_logits" if logits else "kl",
        lambda pred, target: c.kl_loss(pred, target, logits=logits, target_is_pred=False),
        check,
        pair_loss=lambda pred, target: c.kl_loss(pred, target, logits=logits, target_is_pred=True),
        extras=lambda y, weak, w2s, ceiling: c.extras(y, weak, w2s, ceiling, logits=logits),
        bregman=BregmanMap(
            point=lambda pred: np.exp(c.log_probs(pred, logits=logits))[:, None, :],
            gradient=lambda pred: c.log_probs(pred, logits=logits)[:, None, :],  # phi(p) = sum p log p
            label_point=lambda y, pred: c.label_probs(y, pred, logits=logits)[:, None, :],
            weight=c.clip_probs,
        ),
    )


# binary_kl: preferences (MP25's binary case): P(first preferred) per row, gold labels 1 (A) / 0 (B); errors are
# binary cross-entropy, misfit = KL(Bern(w2s) || Bern(weak)); the extras add accuracies and the forward misfit
DIVERGENCES: dict[str, Divergence] = {"squared": SQUARED, "kl": _kl(False), "kl_logits": _kl(True),
                                      "binary_kl": _kl(False, binary=True)}
