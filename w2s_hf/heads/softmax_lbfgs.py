"""The k = 1 softmax head by full-batch L-BFGS in float64: the `exact` classification solver.

One softmax head on standardised features is a smooth problem that quasi-Newton steps solve in tens
of iterations (the forward-KL / cross-entropy loss is convex in the weights), where full-batch AdamW
needed hundreds of epochs and overshoots on the way. Each L-BFGS iteration (strong-Wolfe line search)
evaluates the mean loss over all rows: every process sums its rows' loss and gradient and the sums
are all-reduced in float64 (`distributed.sum_arrays`), so all processes take the same steps and N
processes follow one to the order of the sums.

As with the AdamW heads, the validation loss (all processes' selection rows) is measured after every
iteration and the best iterate is kept: on gold one-hot labels with more features than rows the
optimum is at infinity (separable data), and the kept iterate is then the early-stopped one. The
run ends when the training loss changes by less than a relative `tol` (converged), after `patience`
iterations without a validation improvement (no overshoot to mistake for convergence: L-BFGS steps
never increase the training loss), or after `max_iter` iterations. `weight_decay` is an L2 penalty
(weight_decay / 2) ||W||^2 on the weights in standardised coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def fit_softmax_lbfgs(X: np.ndarray, T: np.ndarray, X_val: np.ndarray, T_val: np.ndarray, *, loss_fn: Callable,
                      n_total: int, n_val: int, x_mean: np.ndarray, scale: np.ndarray, accelerator: Any = None,
                      max_iter: int = 2000, patience: int | None = 10, weight_decay: float = 0.0, tol: float = 1e-10,
                      on_eval: Callable[[int, Any], None] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(MixtureHead with k = 1, its KHeadMixture on standardised features, record) fitted on this process's
    rows (see the module docstring).

    `scale` and `x_mean` map raw features to the standardised ones ((x - x_mean) * scale); the head is
    folded back to raw features. `loss_fn(log_q, targets)` is the per-row loss of `heads.losses`.
    """
    import torch

    from ..distributed import sum_arrays
    from .mixture import KHeadMixture, MixtureHead

    Xs = torch.as_tensor((X - x_mean) * scale, dtype=torch.float64)
    Xv = torch.as_tensor((X_val - x_mean) * scale, dtype=torch.float64)
    Tt, Tv = torch.as_tensor(T, dtype=torch.float64), torch.as_tensor(T_val, dtype=torch.float64)
    d, c = Xs.shape[1], Tt.shape[1]
    W = torch.zeros(d, c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)

    def closure() -> torch.Tensor:
        """Mean training loss over all processes; W.grad and b.grad hold its all-reduced gradient."""
        W.grad, b.grad = None, None
        local = loss_fn(torch.log_softmax(Xs @ W + b, dim=1), Tt).sum()
        local.backward()
        total, gW, gb = sum_arrays(accelerator, [local.detach().numpy().reshape(1), W.grad.numpy(), b.grad.numpy()])
        with torch.no_grad():
            W.grad.copy_(torch.from_numpy(gW / n_total) + weight_decay * W)
            b.grad.copy_(torch.from_numpy(gb / n_total))
        penalty = 0.5 * weight_decay * float((W.detach() ** 2).sum())
        return torch.tensor(total[0] / n_total + penalty, dtype=torch.float64)

    def fold() -> MixtureHead:
        weight = scale[:, None] * W.detach().numpy()
        return MixtureHead(weight, b.detach().numpy() - x_mean @ weight, np.zeros(1), c)

    def val_loss() -> float:
        with torch.no_grad():
            local = loss_fn(torch.log_softmax(Xv @ W + b, dim=1), Tv).sum()
        return float(sum_arrays(accelerator, [local.numpy().reshape(1)])[0][0] / n_val)

    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)
    best = {"val": val_loss(), "iteration": 0, "state": (W.detach().clone(), b.detach().clone())}
    reference = best["val"]  # the last validation loss that counted as an improvement (relative 1e-4)
    # step() returns the loss where it starts: the training loss of iterate `it` comes from the step after it
    history, bad, stop, it = [], 0, "max_iter", 0
    train = float(opt.step(closure))
    for it in range(1, max_iter + 1):
        val = val_loss()
        if on_eval is not None:
            on_eval(it, fold())
        if val < best["val"]:
            best.update(val=val, iteration=it, state=(W.detach().clone(), b.detach().clone()))
        if val < reference * (1 - 1e-4):
            reference, bad = val, 0
        else:
            bad += 1
        previous, train = train, float(opt.step(closure))
        history.append({"epoch": it - 1, "train": train, "val": val})
        if abs(previous - train) <= tol * max(abs(train), 1.0):
            stop = "converged"
            break
        if patience is not None and bad >= patience:
            stop = "patience"
            break
    with torch.no_grad():
        W.copy_(best["state"][0])
        b.copy_(best["state"][1])
    module = KHeadMixture(d, c, 1).double()
    with torch.no_grad():
        module.heads.weight.copy_(W.T)
        module.heads.bias.copy_(b)
    record = {"solver": "lbfgs (full batch, float64)", "k_heads": 1, "best_epoch": best["iteration"],
              "epochs_run": it, "stopped_early": stop != "max_iter", "stop": stop, "val_loss": best["val"],
              "history": history}
    return fold(), module, record
