"""`train_lora`: a `LoraStudent` trained with AdamW under accelerate, early-stopped on its selection labels.

Determinism across process counts. The batches of an epoch are planned on every process alike, from
the seed and the epoch only: the rows are shuffled, cut into windows of 1,024, sorted by length
within a window and grouped into batches of at most `token_budget` tokens (rows x longest row, the
rule of `FrozenEncoder`), and the batches shuffled. Each global batch is then split across the
processes (rows r, r + N, ...), and each process's summed loss is scaled by N / (rows of the global
batch), so DDP's gradient average is the gradient of the mean loss over the global batch: 1 and N
processes take the same steps, up to float summation order (and the padding of the smaller
per-process batches, which changes real tokens' outputs in the last bits only). The base model runs
in eval mode (no dropout masks to draw); LoRA's own dropout is 0 by default, and above 0 its masks
are drawn per process, so N processes then follow another (equally valid) path.

Evaluation points: step 0 (the student is then the linear probe it started from), every
`eval_every` steps (default: once per epoch) and the last step. At each one every split of
`eval_texts` is predicted (batches dealt to processes, gathered per example), the selection error is
the mean loss on `select_split` against `select_labels` (the training loss, on the module's outputs:
log-probabilities for a classification student), and `on_eval(step, predictions)` runs on every
process with the predictions (class probabilities for classification). The weights with the
smallest selection error are kept (step 0 included); `patience` evaluations without a relative
improvement of 1e-4 stop the run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...features.encoder import plan_batches
from ...threads import torch_threads
from ..losses import get_loss
from .student import LoraStudent

_WINDOW = 1024
logger = logging.getLogger(__name__)


def plan_epoch(lengths: np.ndarray, token_budget: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches (row indices) of one epoch: the same on every process, for any process count."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(perm), _WINDOW):
        part = perm[start:start + _WINDOW]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[s] for s in plan_batches(lengths[part], token_budget)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class LoraFit:
    """How `train_lora` went: the kept step, its selection error, and every evaluation point."""

    best_step: int
    best_val_error: float
    steps: int
    stopped_early: bool
    tokens: int  # padded tokens of the training steps, all processes together
    history: list[dict[str, float]] = field(default_factory=list)  # step, epoch, val_error, train_loss, lr


@torch_threads()  # torch's intra-op threads fitted to the free cores (w2s_hf/threads.py)
def train_lora(
    student: LoraStudent,
    train_texts: list[str],
    train_labels: np.ndarray,
    eval_texts: dict[str, list[str]],
    select_split: str,
    select_labels: np.ndarray,
    *,
    lr: float = 2e-4,
    epochs: int = 3,
    token_budget: int = 2048,
    eval_every: int | None = None,
    patience: int = 2,
    loss: str = "squared",
    mixed_precision: str = "auto",
    warmup_fraction: float = 0.05,
    seed: int = 0,
    on_eval: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> LoraFit:
    """Train `student` on (train_texts, train_labels) (every process passes all rows; see the module docstring).

    Regression: labels are (n, k) targets and `loss` a regression loss of `w2s_hf.heads.losses`. Classification (a
    student started at a `MixtureHead`): labels are (n, c) target distributions and `loss` a
    classification loss.
    """
    if select_split not in eval_texts:
        raise ValueError(f"select_split={select_split!r} must be one of the evaluated splits {list(eval_texts)}.")
    loss_fn = get_loss(loss, "regression" if student.n_classes is None else "classification").fn
    acc, device = student.accelerator, student.device
    Y, Y_sel = _checked_labels(student, train_labels, len(train_texts), select_labels, len(eval_texts[select_split]))
    # Tokenizing and the step-0 evaluation take a while on a large split: say what comes first.
    logger.info("lora: tokenizing %d training and %d evaluation rows", len(train_texts),
                sum(len(t) for t in eval_texts.values()))
    tokens = student.tokenize(train_texts)
    lengths = tokens[2]
    eval_tokens = {s: student.tokenize(t) for s, t in eval_texts.items()}
    plans = [plan_epoch(lengths, token_budget, seed, e) for e in range(epochs)]
    total_steps = sum(len(p) for p in plans)
    eval_every = eval_every or len(plans[0])
    logger.info("lora: %d steps in %d epochs (batches of <= %d tokens), evaluating every %d steps on %s; "
                "step 0 (the starting head) first", total_steps, epochs, token_budget, eval_every,
                ", ".join(eval_texts))
    warmup = max(1, int(warmup_fraction * total_steps))
    use_bf16 = mixed_precision == "bf16" or (mixed_precision == "auto" and device.type == "cuda")
    optimizer = torch.optim.AdamW([p for p in student.model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model, backward = student.model, torch.Tensor.backward
    if acc is not None:
        model, optimizer = acc.prepare(model, optimizer)
        backward = acc.backward
    points = _EvaluationPoints(student, eval_texts, eval_tokens, select_split, Y_sel, loss_fn, optimizer,
                               total_steps, patience, on_eval)
    stopped, step, padded = points.evaluate(0, 0.0), 0, 0
    student.train_mode(True)  # once per phase, not per step: an evaluation switches to eval mode and back
    for epoch, batches in enumerate(plans):
        if stopped:
            break
        for i, rows in enumerate(batches):
            # warm-up, then linear decay to 0 (set per step on every process: no prepared scheduler)
            decay = max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            for group in optimizer.param_groups:
                group["lr"] = lr * min((step + 1) / warmup, decay)
            padded += len(rows) * int(lengths[rows].max())
            loss_sum, n_local = _train_step(student, model, optimizer, backward, tokens, rows, Y, loss_fn, use_bf16)
            points.add_training_loss(loss_sum, n_local)
            step += 1
            if step % eval_every == 0 or step == total_steps:
                stopped = points.evaluate(step, epoch + (i + 1) / len(batches))
                if stopped:
                    break
                student.train_mode(True)
    student.train_mode(False)
    if points.best["state"] is not None:
        student.load_trainable_state(points.best["state"])
    return LoraFit(best_step=int(points.best["step"]), best_val_error=float(points.best["error"]), steps=step,
                   stopped_early=bool(stopped), tokens=padded, history=points.history)


def _checked_labels(student: LoraStudent, train_labels: Any, n_train: int, select_labels: Any,
                    n_select: int) -> tuple[torch.Tensor, np.ndarray]:
    """The training labels as a tensor of the head's dtype (float32, or float64 for the classification
    mixture) and the selection labels, each of the student's output width."""
    Y = torch.as_tensor(np.asarray(train_labels, dtype=np.float64).reshape(n_train, -1), dtype=student.head_dtype,
                        device=student.device)
    Y_sel = np.asarray(select_labels, dtype=np.float64).reshape(n_select, -1)
    for name, labels, rows in (("train_labels", Y, n_train), ("select_labels", Y_sel, n_select)):
        if labels.shape != (rows, student.n_outputs):
            raise ValueError(f"{name} has shape {tuple(labels.shape)}; the student predicts {student.n_outputs} "
                             f"columns for {rows} rows")
    return Y, Y_sel


def _train_step(student: LoraStudent, model: Any, optimizer: Any, backward: Callable, tokens: Any,
                rows: np.ndarray, Y: torch.Tensor, loss_fn: Callable, use_bf16: bool) -> tuple[Any, int]:
    """One optimizer step on this process's share of the global batch `rows`; (its loss sum, its rows)."""
    world, rank, device = student.procs.world, student.procs.rank, student.device
    local = rows[rank::world]
    # A process with no row of this batch still runs forward and backward (DDP needs every
    # process in every step): on one row, with the loss multiplied by 0.
    used = local if len(local) else rows[:1]
    batch = student.batch(tokens, used)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
        pred = model(**batch)
    per_example = loss_fn(pred.to(student.head_dtype), Y[torch.as_tensor(used, device=device)])
    scale = world / len(rows) if len(local) else 0.0
    optimizer.zero_grad(set_to_none=True)
    backward(per_example.sum() * scale)
    optimizer.step()
    # the loss stays a tensor: reading it (float()) would wait for the device at every step
    return (per_example.detach().sum(), len(local)) if len(local) else (0.0, 0)


class _EvaluationPoints:
    """The evaluation points of a LoRA run: the selection error, the history, early stopping, the best state."""

    def __init__(self, student, eval_texts, eval_tokens, select_split, Y_sel, loss_fn, optimizer, total_steps,
                 patience, on_eval):
        self.student, self.eval_texts, self.eval_tokens = student, eval_texts, eval_tokens
        self.select_split, self.Y_sel, self.loss_fn, self.optimizer = select_split, Y_sel, loss_fn, optimizer
        self.total_steps, self.patience, self.on_eval = total_steps, patience, on_eval
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"error": math.inf, "step": 0, "state": None}
        self.bad, self.train_sum, self.train_rows = 0, 0.0, 0

    def add_training_loss(self, loss_sum: Any, rows: int) -> None:
        """Add a step's loss sum (a tensor, or 0.0), in float64 on its device: read only at evaluations."""
        if rows:
            self.train_sum = self.train_sum + loss_sum.double()  # float64 adds, as Python floats were before
        self.train_rows += rows

    def evaluate(self, step: int, epoch: float) -> bool:
        """Record one evaluation point; True when the run should stop."""
        student, acc = self.student, self.student.accelerator
        outputs = {s: student.outputs(self.eval_texts[s], self.eval_tokens[s]) for s in self.eval_texts}
        error = float(self.loss_fn(torch.as_tensor(outputs[self.select_split]), torch.as_tensor(self.Y_sel)).mean())
        preds = {s: student.as_predictions(out) for s, out in outputs.items()}
        sums = np.array([float(self.train_sum), self.train_rows], dtype=np.float64)
        if acc is not None and student.procs.world > 1:
            from ...distributed import sum_arrays

            sums = sum_arrays(acc, [sums])[0]
        self.history.append({"step": step, "epoch": epoch, "val_error": error,
                             "train_loss": float(sums[0] / sums[1]) if sums[1] else math.nan,
                             "lr": float(self.optimizer.param_groups[0]["lr"])})
        self.train_sum, self.train_rows = 0.0, 0
        if sums[1]:
            logger.info("lora step %d/%d: %s error %.5f, train loss %.5f", step, self.total_steps, self.select_split,
                        error, self.history[-1]["train_loss"])
        else:  # step 0: no training step yet, so no training loss to report
            logger.info("lora step %d/%d (the starting head): %s error %.5f", step, self.total_steps,
                        self.select_split, error)
        if self.on_eval is not None:
            self.on_eval(step, preds)
        self.bad = 0 if error < self.best["error"] * (1 - 1e-4) else self.bad + 1
        if error < self.best["error"]:
            self.best.update(error=error, step=step, state=student.trainable_state())
        return step > 0 and self.bad >= self.patience
