"""Classification heads on cached features: a softmax head and the k-head mixture student.

Mulgund & Pabbaraju (ICML 2025): for classification the misfit is KL(student || weak), and the
inequality gain >= misfit needs a convex student class. Softmax heads are not one; convex
combinations of k of them approach one as k grows. `KHeadMixture` is that class: `Linear(d, c*k)`
gives k heads, each goes through a softmax, they are mixed with weights softmax(theta) (theta in R^k,
starting at 0), and the log of the mixture is returned as the logits. k = 1 is a plain softmax head.

`fit_classifier` trains one on soft targets (the weak model's probabilities, or one-hot gold labels)
with full-batch AdamW, weight decay on the head weights only (not the biases or theta), and keeps the
epoch that is best on the validation targets: for the student those are the weak labels of val, so it
never sees a gold label. Losses: `reverse_kl` KL(student || targets) (the theorem's direction, the
default), `forward_kl` KL(targets || student), `xent_hard` cross-entropy on the targets' argmax.
One process only for now: several processes would need the DDP path of `adamw.py`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

LOSSES = ("reverse_kl", "forward_kl", "xent_hard")


class KHeadMixture(nn.Module):
    def __init__(self, d: int, n_classes: int, k: int = 1):
        super().__init__()
        if k < 1 or n_classes < 2:
            raise ValueError(f"k={k} must be >= 1 and n_classes={n_classes} >= 2.")
        self.k, self.c = int(k), int(n_classes)
        self.heads = nn.Linear(d, self.c * self.k)
        self.theta = nn.Parameter(torch.zeros(self.k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c) log-probabilities of the mixture."""
        per_head = torch.log_softmax(self.heads(x).view(len(x), self.k, self.c), dim=-1)
        weights = torch.log_softmax(self.theta, dim=0)
        return torch.logsumexp(per_head + weights[None, :, None], dim=1)


def _loss(log_q: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    log_t = torch.log(target.clamp_min(1e-12))
    if kind == "reverse_kl":
        return (log_q.exp() * (log_q - log_t)).sum(1).mean()
    if kind == "forward_kl":
        return (target * (log_t - log_q)).sum(1).mean()
    return nn.functional.nll_loss(log_q, target.argmax(1))


@dataclass
class FittedClassifier:
    model: KHeadMixture
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)

    def predict_proba(self, X: Any) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(X), dtype=torch.float32)).exp().double().numpy()


def fit_classifier(X: Any, targets: Any, X_val: Any, targets_val: Any, *, k: int = 1, loss: str = "reverse_kl",
                   epochs: int = 500, lr: float = 0.05, weight_decay: float = 0.0, seed: int = 0) -> FittedClassifier:
    """Train a `KHeadMixture` on (n, c) target distributions (see the module docstring)."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}: choose one of {', '.join(LOSSES)}.")
    from .arrays import as_real_array, check_same_rows
    from .classification import check_labels

    arrays = {}
    for name, t, x_name, x in (("targets", targets, "X", X), ("targets_val", targets_val, "X_val", X_val)):
        x, t = as_real_array(x, x_name, ndim=(2,)), as_real_array(t, name, ndim=(2,))
        check_same_rows(t, name, x, x_name)
        check_labels(t, name, t.shape[1], x_name)  # soft labels: distributions over the classes
        arrays[name], arrays[x_name] = torch.as_tensor(t, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32)
    X, X_val, T, T_val = arrays["X"], arrays["X_val"], arrays["targets"], arrays["targets_val"]
    torch.manual_seed(seed)
    model = KHeadMixture(X.shape[1], T.shape[1], k)
    # Heads start different from each other (a mixture of equal heads is one head) but small.
    nn.init.normal_(model.heads.weight, std=0.01)
    nn.init.zeros_(model.heads.bias)
    groups = [{"params": [model.heads.weight], "weight_decay": weight_decay},
              {"params": [model.heads.bias, model.theta], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr)
    best = (math.inf, -1, None)
    history = []
    for epoch in range(epochs):
        opt.zero_grad(set_to_none=True)
        train_loss = _loss(model(X), T, loss)
        train_loss.backward()
        opt.step()
        with torch.no_grad():
            val_loss = float(_loss(model(X_val), T_val, loss))
        history.append({"epoch": epoch, "train": float(train_loss.detach()), "val": val_loss})
        if val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    return FittedClassifier(model, best[1], best[0], history)
