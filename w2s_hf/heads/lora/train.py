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

import numpy as np
import torch

from ...features.encoder import plan_batches
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
    acc = student.accelerator
    world, rank = student.procs.world, student.procs.rank
    device = student.device
    dtype = student.head_dtype  # float32 (regression) or float64 (the classification mixture)
    Y = torch.as_tensor(np.asarray(train_labels, dtype=np.float64).reshape(len(train_texts), -1), dtype=dtype,
                        device=device)
    Y_sel = np.asarray(select_labels, dtype=np.float64).reshape(len(eval_texts[select_split]), -1)
    for name, labels, rows in (("train_labels", Y, len(train_texts)), ("select_labels", Y_sel, len(Y_sel))):
        if labels.shape != (rows, student.n_outputs):
            raise ValueError(f"{name} has shape {tuple(labels.shape)}; the student predicts {student.n_outputs} "
                             f"columns for {rows} rows")
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

    params = [p for p in student.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model = student.model
    backward = torch.Tensor.backward
    if acc is not None:
        model, optimizer = acc.prepare(model, optimizer)
        backward = acc.backward

    history: list[dict[str, float]] = []
    best = {"error": math.inf, "step": 0, "state": None}
    bad, train_sum, train_rows, padded = 0, 0.0, 0, 0

    def evaluate(step: int, epoch: float) -> bool:
        """Record one evaluation point; True when the run should stop."""
        nonlocal bad, train_sum, train_rows
        outputs = {s: student.outputs(eval_texts[s], eval_tokens[s]) for s in eval_texts}
        error = float(loss_fn(torch.as_tensor(outputs[select_split]), torch.as_tensor(Y_sel)).mean())
        preds = {s: student.as_predictions(out) for s, out in outputs.items()}
        sums = np.array([train_sum, train_rows], dtype=np.float64)
        if acc is not None and world > 1:
            from ...distributed import sum_arrays

            sums = sum_arrays(acc, [sums])[0]
        history.append({"step": step, "epoch": epoch, "val_error": error,
                        "train_loss": float(sums[0] / sums[1]) if sums[1] else math.nan,
                        "lr": float(optimizer.param_groups[0]["lr"])})
        train_sum, train_rows = 0.0, 0
        if sums[1]:
            logger.info("lora step %d/%d: %s error %.5f, train loss %.5f", step, total_steps, select_split, error,
                        history[-1]["train_loss"])
        else:  # step 0: no training step yet, so no training loss to report
            logger.info("lora step %d/%d (the starting head): %s error %.5f", step, total_steps, select_split, error)
        if on_eval is not None:
            on_eval(step, preds)
        bad = 0 if error < best["error"] * (1 - 1e-4) else bad + 1
        if error < best["error"]:
            best.update(error=error, step=step, state=student.trainable_state())
        return step > 0 and bad >= patience

    stopped = evaluate(0, 0.0)
    step = 0
    for epoch, batches in enumerate(plans):
        if stopped:
            break
        for i, rows in enumerate(batches):
            # warm-up, then linear decay to 0 (set per step on every process: no prepared scheduler)
            decay = max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            for group in optimizer.param_groups:
                group["lr"] = lr * min((step + 1) / warmup, decay)
            local = rows[rank::world]
            # A process with no row of this batch still runs forward and backward (DDP needs every
            # process in every step): on one row, with the loss multiplied by 0.
            used = local if len(local) else rows[:1]
            batch = student.batch(tokens, used)
            padded += len(rows) * int(lengths[rows].max())
            student.train_mode(True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = model(**batch)
            per_example = loss_fn(pred.to(dtype), Y[torch.as_tensor(used, device=device)])
            scale = world / len(rows) if len(local) else 0.0
            step_loss = per_example.sum() * scale
            optimizer.zero_grad(set_to_none=True)
            backward(step_loss)
            optimizer.step()
            step += 1
            if len(local):
                train_sum += float(per_example.detach().sum())
                train_rows += len(local)
            if step % eval_every == 0 or step == total_steps:
                stopped = evaluate(step, epoch + (i + 1) / len(batches))
                if stopped:
                    break
    student.train_mode(False)
    if best["state"] is not None:
        student.load_trainable_state(best["state"])
    return LoraFit(best_step=int(best["step"]), best_val_error=float(best["error"]), steps=step,
                   stopped_early=bool(stopped), tokens=padded, history=history)
