"""Full-batch training of a `heads.mixture.KHeadMixture`: AdamW steps, validation passes, the kept epoch.

`heads.mixture.fit_classifier` checks the inputs, centres the features and builds the module; this is its
loop. What each epoch costs beyond the arithmetic a bare torch loop does on the same rows
(docs/performance.md, "k-head classifier against a bare loop"):

- the features are only centred: the per-column scale of the standardisation is multiplied into the
  head weights inside the forward (`KHeadMixture.forward(x, scale)`, a (k c, d) product), so no
  standardised copy of the (n, d) features is made;
- AdamW's update is written out here (`AdamW`: torch.optim.AdamW's arithmetic, bit for bit on CPU).
  torch.optim imports torch._dynamo on its first optimizer (about 1 s, more than the whole fit at
  30,000 x 384); nothing here needs it;
- the validation loss is one forward pass on the validation rows under `torch.inference_mode`, read back
  once per evaluation (the early stopping's only device sync); the best state is kept as tensor copies.

With several processes the module runs under accelerate's DDP (gradients summed during backward) and every
process applies the same update to the same summed gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..distributed import sum_arrays
from .adamw import Plateau


class AdamW:
    """AdamW (decoupled weight decay) on groups of (parameters, weight decay): torch.optim.AdamW's update.

    The same operations in the same order as torch's single-tensor AdamW (its CPU path; amsgrad off),
    so a run gives the same parameters bit for bit (tests/test_classification.py checks it), without
    torch.optim's one-time import of torch._dynamo. `step(lr)` takes the learning rate of this step.
    """

    def __init__(self, groups: list[tuple[list[torch.Tensor], float]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.groups = [(list(params), float(decay)) for params, decay in groups]
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        # per parameter, as torch keeps them: (steps taken, first moment, second moment)
        self.state = {id(p): [0, torch.zeros_like(p), torch.zeros_like(p)] for ps, _ in self.groups for p in ps}

    def zero_grad(self) -> None:
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update of every parameter that has a gradient (the others keep their state, as in torch)."""
        for params, decay in self.groups:
            for p in params:
                if p.grad is None:
                    continue
                state = self.state[id(p)]
                state[0] += 1
                exp_avg, exp_avg_sq = state[1], state[2]
                if decay != 0:
                    p.mul_(1 - lr * decay)
                exp_avg.lerp_(p.grad, 1 - self.beta1)
                exp_avg_sq.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
                step_size = lr / (1 - self.beta1 ** state[0])
                denom = (exp_avg_sq.sqrt() / (1 - self.beta2 ** state[0]) ** 0.5).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def train_mixture(model: torch.nn.Module, data: tuple, *, scale: torch.Tensor | None, loss_fn: Callable, epochs: int,
                  lr: float, weight_decay: float, patience: int | None, eval_every: int, accelerator: Any,
                  counts: tuple[int, int], on_eval: Callable[[int], None] | None = None) -> tuple[Any, list, int]:
    """Train `model` in place on `data` = (X, X_val, T, T_val) tensors; it ends holding the best evaluation's state.

    `scale` (d,) is the column scale folded into the heads (None: the features are already mapped).
    `counts` = (training rows, validation rows) over all processes. `on_eval(epoch)` runs after each
    evaluation. Returns (the `adamw.Plateau` that chose the epoch, the history, the epochs run).
    """
    Xs, Xv, Tt, Tv = data
    (n_total, n_val), n_proc = counts, accelerator.num_processes if accelerator is not None else 1
    unwrapped, forward, backward = model, model, torch.Tensor.backward
    opt = AdamW([([model.heads.weight], weight_decay), ([model.heads.bias, model.theta], 0.0)])
    if accelerator is not None and n_proc > 1:
        forward, backward = accelerator.prepare(model), accelerator.backward
    params = [unwrapped.heads.weight, unwrapped.heads.bias, unwrapped.theta]
    stopper = Plateau(patience if patience is not None else epochs + 1, overshoot_guard=True)
    history: list[dict[str, float]] = []
    best_state, epoch, epoch_lr = None, 0, lr
    for epoch in range(epochs):
        opt.zero_grad()
        # Sum of this process's rows over all rows; DDP averages over processes, hence * n_proc.
        train = loss_fn(forward(Xs, scale), Tt).sum()
        backward(train * (n_proc / n_total))
        opt.step(epoch_lr)
        if (epoch + 1) % eval_every and epoch + 1 != epochs:
            continue
        with torch.inference_mode():
            val = loss_fn(unwrapped(Xv, scale), Tv).double().sum()
        val_sum, train_sum = sum_arrays(accelerator, [val.cpu().numpy().reshape(1),
                                                      train.detach().double().cpu().numpy().reshape(1)])
        val_loss, train_loss = float(val_sum[0] / n_val), float(train_sum[0] / n_total)
        history.append({"epoch": epoch, "train": train_loss, "val": val_loss})
        if on_eval is not None:
            on_eval(epoch + 1)
        if stopper.update(val_loss, train_loss, epoch):
            best_state = [p.detach().clone() for p in params]
        epoch_lr = lr * stopper.lr_scale
        if stopper.should_stop:
            break
    if best_state is not None:
        with torch.no_grad():
            for p, best in zip(params, best_state):
                p.copy_(best)
    return stopper, history, epoch + 1

