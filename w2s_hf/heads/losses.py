"""Training losses, by name: the one registry that heads, students, configs and sweeps read.

Each entry is a per-example loss `fn(pred (n, k), target (n, k)) -> (n,)` on torch tensors, the task
type it serves, and the divergence of `w2s_hf.decomposition.DIVERGENCES` it minimises (a test checks
that every named divergence exists). Regression heads output values and train on `squared`;
classification heads output (n, c) mixture log-probabilities and train on target distributions:
a head on gold labels on `forward_kl` of one-hot targets (cross-entropy), a student on one of the
`student` losses (`reverse_kl` is the theorem's direction, KL(student || weak)).

Config choices (`student_loss`, `lora_loss`) and the error messages of the fitters are derived from
this table, so a new loss is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingLoss:
    name: str
    task_type: str  # "regression", "classification" or "preference"
    divergence: str  # the name in w2s_hf.decomposition.DIVERGENCES this loss minimises
    fn: Callable[[Any, Any], Any]
    student: bool  # a choice for a head trained on weak labels
    doc: str


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


LOSSES: dict[str, TrainingLoss] = {loss.name: loss for loss in (
    TrainingLoss("squared", "regression", "squared", _squared, True,
                 "mean over targets of (pred - target)^2: the theorem's loss"),
    TrainingLoss("reverse_kl", "classification", "kl", _reverse_kl, True,
                 "KL(student || weak): the direction of the Bregman projection (Mulgund & Pabbaraju 2025)"),
    TrainingLoss("forward_kl", "classification", "kl", _forward_kl, True,
                 "KL(weak || student); on one-hot targets, cross-entropy (heads on gold labels)"),
    TrainingLoss("xent_hard", "classification", "kl", _xent_hard, True,
                 "cross-entropy on the weak model's argmax class"),
    # preferences: pred is the Bradley-Terry logit (n, 1), target P(first preferred) (n, 1)
    TrainingLoss("reverse_binary_kl", "preference", "binary_kl", _reverse_binary_kl, True,
                 "binary KL(student || weak): the direction of the Bregman projection"),
    TrainingLoss("binary_xent", "preference", "binary_kl", _binary_xent, True,
                 "binary cross-entropy on the weak probability (= KL(weak || student) + const); on 0/1 "
                 "labels, logistic loss (heads on gold labels)"),
)}
# a head trained on gold labels minimises its task type's error against them
GOLD_LOSS = {"regression": "squared", "classification": "forward_kl", "preference": "binary_xent"}


def loss_names(task_type: str, *, student: bool = False) -> tuple[str, ...]:
    """Names of the losses of one task type (only the students' choices with `student=True`)."""
    return tuple(n for n, loss in LOSSES.items() if loss.task_type == task_type and (loss.student or not student))


def get_loss(name: str, task_type: str) -> TrainingLoss:
    """The registered loss `name` of `task_type`, or a ValueError naming the choices."""
    loss = LOSSES.get(name)
    if loss is None or loss.task_type != task_type:
        raise ValueError(f"loss={name!r} is not a {task_type} loss: choose one of {', '.join(loss_names(task_type))}.")
    return loss
