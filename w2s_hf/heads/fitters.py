"""The fitters of `registry.FITTERS`: one interface, `fit(request) -> (head, record)`.

The pipeline fills a `FitRequest` from a protocol row (which features, which rows, which labels, which
loss) and calls the fitter of (task type, solver); a fitter knows nothing about the protocol. Each
process passes its own rows: the all-reduce (exact) or DDP (adamw, mixture, LoRA) makes the head that
of all rows. `record` is what the run folder keeps beside the head (heads/<name>.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FitRequest:
    """What one head is fitted on. Arrays are this process's rows unless named `_all`."""

    y: np.ndarray  # training targets: values, or (n, classes) distributions
    y_val: np.ndarray  # selection targets of this process's selection rows
    accelerator: Any
    head: Any  # HeadArguments: solver, ridge, lr, epochs, ...
    seed: int
    loss: str  # a name in w2s_hf.heads.losses.LOSSES
    X: np.ndarray | None = None  # frozen features (linear and mixture heads)
    X_val: np.ndarray | None = None
    X_val_all: np.ndarray | None = None  # every selection row (the exact ridge path is chosen on all of them)
    y_val_all: np.ndarray | None = None
    k: int = 1  # classification: softmax heads in the mixture
    ridge: float | None = None  # exact heads: the fixed penalty of this head (None: chosen on the selection rows)
    on_eval: Callable[[int, Any], None] | None = None
    # finetuned students only
    lora: Any = None  # LoraArguments
    encoder: Any = None  # a fresh representation whose model is trained in place
    init_head: Any = None  # the linear head the student starts at
    texts: dict[str, list[str]] = field(default_factory=dict)  # split -> texts (train, selection, evaluation)
    train_split: str = ""
    select_split: str = ""
    eval_splits: tuple[str, ...] = ()


def fit_exact_head(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """Least squares / ridge from all-reduced float64 sufficient statistics; ridge chosen on val."""
    from .fit import fit_ridge

    return fit_ridge(req.X, req.y, req.X_val_all, req.y_val_all, ridge=req.ridge,
                     fit_intercept=req.head.fit_intercept, accelerator=req.accelerator)


def fit_adamw_head(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """A linear head by AdamW under DDP, early-stopped on the selection rows."""
    from .adamw import fit_adamw

    cfg = req.head
    head = fit_adamw(req.X, req.y, req.X_val, req.y_val, accelerator=req.accelerator, lr=cfg.lr,
                     epochs=cfg.max_epochs(False), batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                     eval_every=cfg.eval_every, patience=cfg.patience, seed=req.seed, on_eval=req.on_eval)
    return head, {}


def fit_mixture_head(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """A softmax head (k = 1) or the k-head mixture, full batch under DDP, best epoch on the selection rows."""
    from .mixture import fit_classifier

    cfg = req.head
    fitted = fit_classifier(req.X, req.y, req.X_val, req.y_val, k=req.k, loss=req.loss, epochs=cfg.max_epochs(True),
                            lr=cfg.lr, weight_decay=cfg.weight_decay, patience=cfg.patience,
                            eval_every=cfg.eval_every or 1, seed=req.seed, accelerator=req.accelerator,
                            on_eval=req.on_eval)
    return fitted.head, {"solver": "adamw (full batch)", "k_heads": req.k, "loss": req.loss,
                         "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs,
                         "stopped_early": fitted.stopped_early, "val_loss": fitted.best_val_loss}


def fit_bradley_terry_head(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """A Bradley–Terry head on feature differences, Newton in float64 on all-reduced sums; ridge chosen on
    the selection rows unless fixed."""
    from .bradley_terry import fit_bradley_terry

    return fit_bradley_terry(req.X, req.y, req.X_val, req.y_val, loss=req.loss, ridge=req.ridge,
                             accelerator=req.accelerator)


def fit_lora_head(req: FitRequest) -> tuple[Any, dict[str, Any]]:
    """A LoRA student (heads/lora): its head starts at `init_head`, so its step 0 is that linear head."""
    from .lora import LoraStudent, train_lora

    cfg = req.lora
    student = LoraStudent(req.encoder, req.init_head, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_target_modules, seed=req.seed, accelerator=req.accelerator)
    kwargs = {**cfg.train_kwargs(), "loss": req.loss}
    fit = train_lora(student, req.texts[req.train_split], req.y, {s: req.texts[s] for s in req.eval_splits},
                     req.select_split, req.y_val, seed=req.seed, on_eval=req.on_eval, **kwargs)
    record = {"solver": "lora", "target_modules": student.targets, "best_step": fit.best_step, "steps": fit.steps,
              "stopped_early": fit.stopped_early, "training_tokens": fit.tokens, "history": fit.history}
    if student.n_classes is None:
        record["train_val_mse"] = fit.best_val_error
    else:
        record.update({"loss": req.loss, "k_heads": student.k, "val_loss": fit.best_val_error})
    return student, record
