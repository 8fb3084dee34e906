"""Classification heads on cached features: a softmax head and the k-head mixture student.

Mulgund & Pabbaraju (ICML 2025): for classification the misfit is KL(student || weak), and the
inequality gain >= misfit needs a convex student class. Softmax heads are not one; convex
combinations of k of them approach one as k grows. `KHeadMixture` is that class: `Linear(d, c*k)`
gives k heads, each goes through a softmax, they are mixed with weights softmax(theta) (theta in R^k,
starting at 0), and the log of the mixture is returned as the logits. k = 1 is a plain softmax head.

`fit_classifier` trains one on soft targets (the weak model's probabilities, or one-hot gold labels)
with full-batch AdamW under accelerate DDP, weight decay on the head weights only (not the biases or
theta), and keeps the evaluation that is best on the validation targets: for the student those are
the weak labels of val, so it never sees a gold label. Losses: `reverse_kl` KL(student || targets)
(the theorem's direction, the default), `forward_kl` KL(targets || student), `xent_hard`
cross-entropy on the targets' argmax.

Features are whitened with the training rows' moments (`adamw`'s preconditioning, from the heads'
`SufficientStats`), so one learning rate suits any embedding; weight decay therefore acts on the
weights in whitened coordinates. For the default per-column standardisation the features are only
centred, and the forward multiplies the column scale into the (k c, d) weights (no standardised copy
of the features; the loop is in `mixture_train.py`). The trained mixture is folded back into a
`MixtureHead` on the original features (float64 predictions, a safetensors file). Every step uses every
row (full batch): each process sums its rows' loss, DDP sums the gradients, and N processes follow the
trajectory of one up to the order of the sums. Training runs in float64 on CPU and float32 on GPU
(`dtype`): in float32, AdamW's division by the gradient's running scale lets summation-order rounding
grow to ~5e-6 in the probabilities over 150 steps; in float64 two processes give one process's
probabilities to < 1e-12 (tests/test_classification_pipeline.py), for about twice the CPU time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..arrays import as_real_array, check_labels
from ..distributed import sum_arrays
from ..threads import torch_threads
from .adamw import centred_columns, checked_inputs, training_moments
from .linear import default_chunk_size, read_head_file, write_head_file
from .losses import get_loss
from .mixture_train import train_mixture


class KHeadMixture(nn.Module):
    def __init__(self, d: int, n_classes: int, k: int = 1):
        super().__init__()
        if k < 1 or n_classes < 2:
            raise ValueError(f"k={k} must be >= 1 and n_classes={n_classes} >= 2.")
        self.k, self.c = int(k), int(n_classes)
        self.heads = nn.Linear(d, self.c * self.k)
        self.theta = nn.Parameter(torch.zeros(self.k))

    @classmethod
    def from_head(cls, head: MixtureHead, dtype: torch.dtype = torch.float64) -> KHeadMixture:
        """The module of a folded `MixtureHead` (original coordinates): it gives `head.log_proba`."""
        module = cls(head.in_features, head.n_classes, head.k).to(dtype)
        with torch.no_grad():
            module.heads.weight.copy_(torch.as_tensor(head.weight.T))
            module.heads.bias.copy_(torch.as_tensor(head.bias))
            module.theta.copy_(torch.as_tensor(head.theta))
        return module

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """(n, c) log-probabilities of the mixture; `scale` (d,) multiplies x's columns (folded into the weights).

        The logits of all k heads come from one product as a (k c, n) array, so the softmax over each head's
        classes and the log-sum-exp over the heads run along contiguous rows of n values; on the (n, k, c)
        layout they reduce over the last, tiny axis (c values), which took as long as the two products
        (docs/performance.md). The result is a transposed (n, c) view.
        """
        weight = self.heads.weight if scale is None else self.heads.weight * scale
        z = torch.addmm(self.heads.bias[:, None], weight, x.T)  # (k * c, n)
        if self.k == 1:  # one softmax head (theta is then a constant: log softmax of one value is 0)
            return (torch.log_softmax(z, dim=0) + (self.theta - self.theta.detach())).T
        per_head = torch.log_softmax(z.view(self.k, self.c, -1), dim=1)
        weights = torch.log_softmax(self.theta, dim=0)
        return torch.logsumexp(per_head + weights[:, None, None], dim=0).T


@dataclass(eq=False)
class MixtureHead:
    """A k-head softmax mixture on the original features, in float64: the folded `KHeadMixture`.

    weight (d, c*k) and bias (c*k,) give the k heads' logits (head j's classes at columns
    j*c .. j*c+c-1), theta (k,) the mixing logits. `predict` returns (n, c) probabilities.
    """

    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    n_classes: int

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, np.float64)
        self.bias = np.asarray(self.bias, np.float64).reshape(-1)
        self.theta = np.asarray(self.theta, np.float64).reshape(-1)
        self.n_classes = int(self.n_classes)
        if self.weight.ndim != 2 or self.weight.shape[1] != self.n_classes * len(self.theta) or \
                self.bias.shape != (self.weight.shape[1],):
            raise ValueError(f"inconsistent MixtureHead shapes: weight {self.weight.shape}, bias {self.bias.shape}, "
                             f"theta {self.theta.shape}, {self.n_classes} classes")

    @property
    def k(self) -> int:
        return len(self.theta)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[0])

    def log_proba(self, features: Any) -> np.ndarray:
        X = as_real_array(features, "features", ndim=(2,), allow_empty=True)
        if X.shape[1] != self.in_features:
            raise ValueError(f"features has {X.shape[1]} columns but the head expects {self.in_features}; "
                             "use features from the same representation the head was fitted on")
        log_w = self.theta - _logsumexp(self.theta, axis=0)
        out = np.empty((len(X), self.n_classes))
        step = default_chunk_size(self.in_features)
        for start in range(0, len(X), step):
            z = (np.asarray(X[start : start + step], np.float64) @ self.weight + self.bias)
            z = z.reshape(len(z), self.k, self.n_classes)
            per_head = z - _logsumexp(z, axis=2)[:, :, None]
            out[start : start + step] = _logsumexp(per_head + log_w[None, :, None], axis=1)
        return out

    def predict(self, features: Any) -> np.ndarray:
        """(n, c) class probabilities."""
        return np.exp(self.log_proba(features))

    def save(self, path: str | os.PathLike) -> None:
        write_head_file(path, "MixtureHead", {"weight": self.weight, "bias": self.bias, "theta": self.theta},
                        n_classes=str(self.n_classes))

    @classmethod
    def load(cls, path: str | os.PathLike) -> MixtureHead:
        t, meta = read_head_file(path, "MixtureHead", ("weight", "bias", "theta"))
        return cls(t["weight"], t["bias"], t["theta"], int(meta["n_classes"]))


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


@dataclass
class FittedClassifier:
    head: MixtureHead
    model: KHeadMixture  # the trained module, in whitened coordinates
    best_epoch: int
    best_val_loss: float
    epochs: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head.predict(X)


def fit_classifier(X: Any, targets: Any, X_val: Any, targets_val: Any, *, k: int = 1, loss: str = "reverse_kl",
                   epochs: int = 500, lr: float = 0.05, weight_decay: float = 0.0, patience: int | None = None,
                   eval_every: int = 1, seed: int = 0, accelerator: Any = None, precondition: str = "standardize",
                   dtype: torch.dtype | None = None, solver: str = "adamw",
                   on_eval: Callable[[int, MixtureHead], None] | None = None) -> FittedClassifier:
    """Train a `KHeadMixture` on (n, c) target distributions (see the module docstring).

    X/targets and X_val/targets_val are this process's rows. Evaluations (every `eval_every` epochs)
    measure the loss on all processes' val rows; the best is kept, and training stops after
    `patience` evaluations without a relative improvement of 1e-4 (None: never). `solver="lbfgs"` (k = 1
    only): full-batch L-BFGS in float64 to the optimum (softmax_lbfgs.py), `epochs` its iterations, `lr` unused.
    """
    loss_fn = get_loss(loss, "classification").fn
    _check_settings(epochs=epochs, lr=lr, eval_every=eval_every, k=k, weight_decay=weight_decay, solver=solver,
                    precondition=precondition)
    X, T, X_val, T_val = checked_inputs(accelerator, X, targets, X_val, targets_val,
                                         names=("X", "targets", "X_val", "targets_val"), check=_check_targets)
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    if dtype is None:
        dtype = torch.float64 if torch.device(device).type == "cpu" else torch.float32
    n_val = int(sum_arrays(accelerator, [np.array([len(X_val)], dtype=np.float64)])[0][0])
    if n_val == 0:
        raise ValueError("X_val is empty on every process: the kept epoch is chosen on validation rows.")
    if solver == "lbfgs":
        from .softmax_lbfgs import fit_softmax_lbfgs

        x_mean, x_map, _, _, n_total = training_moments(accelerator, X, T, precondition)
        head, module, record = fit_softmax_lbfgs(
            X, T, X_val, T_val, loss_fn=loss_fn, n_total=n_total, n_val=n_val, x_mean=x_mean,
            scale=np.diagonal(x_map).copy(), accelerator=accelerator, max_iter=epochs, patience=patience,
            weight_decay=weight_decay, on_eval=on_eval, make_head=MixtureHead, make_module=_one_softmax_module)
        return FittedClassifier(head, module, record["best_epoch"], record["val_loss"], record["epochs_run"],
                                record["stopped_early"], record["history"])
    Xs, Xv, scale, unfold, n_total = _model_features(accelerator, X, X_val, T, precondition)

    def as_t(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    torch.manual_seed(seed)
    model = KHeadMixture(Xs.shape[1], T.shape[1], k).to(device=device, dtype=dtype)
    # Heads start different from each other (a mixture of equal heads is one head) but small.
    nn.init.normal_(model.heads.weight, std=0.01)
    nn.init.zeros_(model.heads.bias)

    def fold() -> MixtureHead:
        weight, bias = unfold(model.heads.weight.detach().double().cpu().numpy().T,  # (d', c*k)
                              model.heads.bias.detach().double().cpu().numpy())
        return MixtureHead(weight, bias, model.theta.detach().double().cpu().numpy(), T.shape[1])

    with torch_threads(device):  # torch's intra-op threads fitted to the free cores (w2s_hf/threads.py)
        stopper, history, epochs_run = train_mixture(
            model, (as_t(Xs), as_t(Xv), as_t(T), as_t(T_val)), scale=as_t(scale), loss_fn=loss_fn, epochs=epochs,
            lr=lr, weight_decay=weight_decay, patience=patience, eval_every=eval_every, accelerator=accelerator,
            counts=(n_total, n_val), on_eval=None if on_eval is None else lambda epoch: on_eval(epoch, fold()))
    return FittedClassifier(fold(), model, stopper.best_step, stopper.best, epochs_run, stopper.should_stop, history)


def _model_features(accelerator: Any, X: np.ndarray, X_val: np.ndarray, T: np.ndarray, precondition: str
                    ) -> tuple:
    """(X, X_val as the model takes them (float64), the column scale the forward applies (or None), unfold, n).

    "standardize": the rows are centred with the training moments (the copy is written by the pass that
    sums the squared deviations) and the scale 1 / std is left to the forward, which multiplies it into
    the (k c, d) weights: no standardised (n, d) copy. "whiten": (x - mean) @ M, mapped here.
    `unfold(W, b)` turns a head on what the model sees into weight and bias on the original features.
    """
    if precondition == "standardize":
        # torch's allocator, not numpy's: numpy asks for transparent huge pages on large arrays, and on a busy
        # VM the kernel's compaction for them stalled the first touch of this copy (70-420 ms against 40-60)
        Xs, x_mean, x_std, n_total = centred_columns(accelerator, X, torch.empty(X.shape, dtype=torch.float64).numpy())
        scale = 1.0 / x_std
        Xv = np.subtract(X_val, x_mean, out=torch.empty(X_val.shape, dtype=torch.float64).numpy(), dtype=np.float64)
    else:
        x_mean, x_map, _, _, n_total = training_moments(accelerator, X, T, precondition)
        scale, Xs, Xv = None, (X - x_mean) @ x_map, (X_val - x_mean) @ x_map

    def unfold(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weight = scale[:, None] * W if scale is not None else x_map @ W
        return weight, b - x_mean @ weight

    return Xs, Xv, scale, unfold, n_total


def _one_softmax_module(W: torch.Tensor, b: torch.Tensor) -> KHeadMixture:
    """The k = 1 `KHeadMixture` (float64) whose head is the (d, c) weight `W` and bias `b`."""
    module = KHeadMixture(W.shape[0], W.shape[1], 1).double()
    with torch.no_grad():
        module.heads.weight.copy_(W.T)
        module.heads.bias.copy_(b)
    return module


def _check_settings(*, epochs: int, lr: float, eval_every: int, k: int, weight_decay: float, solver: str,
                    precondition: str) -> None:
    for name, value in (("epochs", epochs), ("lr", lr), ("eval_every", eval_every), ("k", k)):
        if not value > 0:
            raise ValueError(f"{name}={value} must be > 0.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay} must be >= 0.")
    if solver not in ("adamw", "lbfgs") or (solver == "lbfgs" and (k != 1 or precondition != "standardize")):
        raise ValueError(f"solver={solver!r} must be 'adamw', or 'lbfgs' for k = 1 on standardised features.")


def _check_targets(t: np.ndarray, t_val: np.ndarray) -> None:
    for name, arr, x_name in (("targets", t, "X"), ("targets_val", t_val, "X_val")):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be (n, classes) distributions, got shape {arr.shape}")
        check_labels(arr, name, arr.shape[1], x_name)  # soft labels: distributions over the classes
