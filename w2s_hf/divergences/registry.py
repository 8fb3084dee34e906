"""The divergences, by name: one entry each holds the numpy divergence the decomposition evaluates and the
torch losses heads and students train on. Adding a divergence is one entry in `DIVERGENCES`, here.

Losses are Bregman divergences D(p, q). Errors are D(y, prediction) and the misfit is D(w2s, weak), the
orientation of the Bregman Pythagorean inequality D(y, weak) >= D(y, w2s) + D(w2s, weak) that holds when
the student is the projection of the weak predictions onto a convex class containing y (Mulgund &
Pabbaraju, ICML 2025). Each entry carries its `BregmanMap` (the points and gradients of phi, D = D_phi),
from which `w2s_hf.decomposition.diagnostics` splits the residual with the three-point identity
D(y, W) - D(y, S) - D(S, W) = <grad phi(S) - grad phi(W), y - S>.

Derived from this table, never restated: `LOSSES` (every training loss by name, with its task type and
divergence), the config's loss choices and their `--help` (`loss_names`), the fitters' error messages
(`get_loss`), and a sweep's extra CSV columns (`Divergence.columns`). The layer sits below `heads` and
`decomposition` so both read it; torch is imported inside the loss functions only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
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
class TrainingLoss:
    """A per-example torch loss `fn(pred (n, k), target (n, k)) -> (n,)`. `task_type` and `divergence` are
    filled in from the `Divergence` entry that lists it (in `LOSSES`)."""

    name: str
    fn: Callable[[Any, Any], Any]
    doc: str  # one line for --help
    student: bool = True  # a choice for a head trained on weak labels
    task_type: str = ""  # "regression", "classification" or "preference"
    divergence: str = ""  # the name in DIVERGENCES this loss minimises


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
    # what the errors and the misfit are, for axis labels (plots) and table headers
    label: str = "divergence"
    # the task type whose heads train on `losses` (None: evaluation only, e.g. KL on logits)
    task_type: str | None = None
    losses: tuple[TrainingLoss, ...] = ()
    # the names `extras` returns, in a sweep's CSV column order (a test checks they match)
    columns: tuple[str, ...] = ()


def _same_shape(pred: np.ndarray, pred_name: str, target: np.ndarray, target_name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{pred_name} has shape {pred.shape} but {target_name} has shape "
                         f"{target.shape}; predictions and labels must align row by row and column by column")


# ---------------------------------------------------------------- torch training losses
def _squared(pred: Any, target: Any) -> Any:
    return ((pred - target) ** 2).mean(dim=1)


def _log_target(target: Any) -> Any:
    import torch

    return torch.log(target.clamp_min(1e-12))


def _reverse_kl(log_q: Any, target: Any) -> Any:
    return (log_q.exp() * (log_q - _log_target(target))).sum(1)


def _forward_kl(log_q: Any, target: Any) -> Any:
    import torch

    return (target * (torch.where(target > 0, _log_target(target), 0.0) - log_q)).sum(1)


def _xent_hard(log_q: Any, target: Any) -> Any:
    return -log_q.gather(1, target.argmax(1, keepdim=True))[:, 0]


def _binary_xent(z: Any, target: Any) -> Any:
    """Soft binary cross-entropy of logits z against P(first preferred): softplus(z) - t z."""
    import torch.nn.functional as F

    return (F.softplus(z) - target * z).sum(1)


def _reverse_binary_kl(z: Any, target: Any) -> Any:
    """KL(Bern(sigmoid(z)) || Bern(t)), with log s and log(1 - s) from softplus (no overflow)."""
    import torch
    import torch.nn.functional as F

    log_s, log_1s = -F.softplus(-z), -F.softplus(z)
    return (torch.exp(log_s) * (log_s - _log_target(target)) + torch.exp(log_1s) * (log_1s - _log_target(1 - target))
            ).sum(1)


# ---------------------------------------------------------------- the numpy divergences
SQUARED = Divergence(
    "squared", lambda pred, target: (pred - target) ** 2, _same_shape, label="mean squared error",
    bregman=BregmanMap(point=lambda pred: pred[:, :, None],
                       gradient=lambda pred: 2.0 * pred[:, :, None],  # phi(x) = x^2
                       label_point=lambda y, pred: y[:, :, None], weight=np.ones_like),
    task_type="regression", losses=(
        TrainingLoss("squared", _squared, "mean over targets of (pred - target)^2: the theorem's loss"),))

_KL_COLUMNS = ("weak_accuracy", "w2s_accuracy", "ceiling_accuracy", "misfit_forward")


def _kl(logits: bool, binary: bool = False, task_type: str | None = None,
        losses: tuple[TrainingLoss, ...] = ()) -> Divergence:
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
        # errors are KL(gold || model), the cross-entropy minus the labels' entropy (0 for one-hot labels)
        label="errors: cross-entropy, misfit: KL (nats)",
        task_type=task_type, losses=losses, columns=_KL_COLUMNS,
    )


# classification heads output (n, c) mixture log-probabilities and train on target distributions: a head on
# gold labels on forward_kl of one-hot targets (cross-entropy), a student on any of them. binary_kl:
# preferences (MP25's binary case): the Bradley-Terry logit (n, 1) against P(first preferred) (n, 1); errors
# are binary cross-entropy, misfit = KL(Bern(w2s) || Bern(weak)); the extras add accuracies and the forward misfit
DIVERGENCES: dict[str, Divergence] = {d.name: d for d in (
    SQUARED,
    _kl(False, task_type="classification", losses=(
        TrainingLoss("reverse_kl", _reverse_kl, "KL(student || weak): the direction of the Bregman projection "
                     "(Mulgund & Pabbaraju 2025)"),
        TrainingLoss("forward_kl", _forward_kl, "KL(weak || student); on one-hot targets, cross-entropy (heads on "
                     "gold labels)"),
        TrainingLoss("xent_hard", _xent_hard, "cross-entropy on the weak model's argmax class"))),
    _kl(True),
    _kl(False, binary=True, task_type="preference", losses=(
        TrainingLoss("reverse_binary_kl", _reverse_binary_kl, "binary KL(student || weak): the direction of the "
                     "Bregman projection"),
        TrainingLoss("binary_xent", _binary_xent, "binary cross-entropy on the weak probability (= KL(weak || "
                     "student) + const); on 0/1 labels, logistic loss (heads on gold labels)"))),
)}


class _Losses(Mapping):
    """`LOSSES`, read from `DIVERGENCES` on every access: an entry added there (a test's, too) is a loss here."""

    def _current(self) -> dict[str, TrainingLoss]:
        return {loss.name: dataclasses.replace(loss, task_type=d.task_type, divergence=d.name)
                for d in DIVERGENCES.values() for loss in d.losses}

    def __getitem__(self, name: str) -> TrainingLoss:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


# every training loss by name, with the task type and divergence of the entry that lists it
LOSSES: Mapping[str, TrainingLoss] = _Losses()


def loss_names(task_type: str, *, student: bool = False) -> tuple[str, ...]:
    """Names of the losses of one task type (only the students' choices with `student=True`)."""
    return tuple(n for n, loss in LOSSES.items() if loss.task_type == task_type and (loss.student or not student))


def loss_help(task_type: str) -> str:
    """'name, what it is; ...' for the students' losses of `task_type`: the config's --help."""
    return "; ".join(f"{loss.name}, {loss.doc}" for loss in LOSSES.values()
                     if loss.task_type == task_type and loss.student)


def get_loss(name: str, task_type: str) -> TrainingLoss:
    """The registered loss `name` of `task_type`, or a ValueError naming the choices."""
    loss = LOSSES.get(name)
    if loss is None or loss.task_type != task_type:
        raise ValueError(f"loss={name!r} is not a {task_type} loss: choose one of {', '.join(loss_names(task_type))}.")
    return loss


def sweep_columns(divergence: str) -> tuple[str, ...]:
    """The columns a sweep adds for `divergence`: its extras, the decomposition with the ceiling as truth
    (the diagnostics' proxy_residual under its earlier name) and the mixture's k; none without extras."""
    columns = DIVERGENCES[divergence].columns
    return (*columns, "residual_ceiling_as_truth", "k_heads") if columns else ()
