"""The k = 1 softmax head by full-batch L-BFGS in float64: the `exact` classification solver.

One softmax head on standardised features is a smooth problem that quasi-Newton steps solve in tens
of iterations (the forward-KL / cross-entropy loss is convex in the weights), where full-batch AdamW
needed hundreds of epochs and overshoots on the way. The solver is scipy's L-BFGS-B (the one scikit-
learn's `lbfgs` uses) on a loss and gradient from torch autograd (any loss of `heads.losses`): every
process sums its rows' loss and gradient and the sums are all-reduced in float64
(`distributed.sum_arrays`), so all processes take the same steps and N processes follow one to the
order of the sums. torch runs on one thread here (a short op's thread barrier stalls on a busy machine).

As with the AdamW heads, the validation loss (all processes' selection rows) is measured after every
iteration and the best iterate is kept: on gold one-hot labels with more features than rows the
optimum is at infinity (separable data), and the kept iterate is then the early-stopped one. The
run ends when the training loss changes by less than a relative `tol` (converged), after `patience`
iterations without a validation improvement (no overshoot to mistake for convergence: line-searched
L-BFGS steps never increase the training loss), or after `max_iter` iterations. `weight_decay` is an L2 penalty
(weight_decay / 2) ||W||^2 on the weights in standardised coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def fit_softmax_lbfgs(X: np.ndarray, T: np.ndarray, X_val: np.ndarray, T_val: np.ndarray, *, loss_fn: Callable,
                      n_total: int, n_val: int, x_mean: np.ndarray, scale: np.ndarray, accelerator: Any = None,
                      max_iter: int = 2000, patience: int | None = 10, weight_decay: float = 0.0, tol: float = 1e-10,
                      on_eval: Callable[[int, Any], None] | None = None, make_head: Callable[..., Any],
                      make_module: Callable[[Any, Any], Any]) -> tuple[Any, Any, dict[str, Any]]:
    """(MixtureHead with k = 1, its KHeadMixture on standardised features, record) fitted on this process's
    rows; `(x - x_mean) * scale` standardises, the head is folded back to raw features. `loss_fn(log_q,
    targets)` is the per-row loss of `heads.losses` (see the module docstring). `make_head(weight, bias, theta,
    classes)` and `make_module(W, b)` build mixture.py's head and module (passed in: mixture.py calls this)."""
    import torch

    from ..distributed import sum_arrays

    Xs = torch.as_tensor((X - x_mean) * scale, dtype=torch.float64)
    Xv = torch.as_tensor((X_val - x_mean) * scale, dtype=torch.float64)
    Tt, Tv = torch.as_tensor(T, dtype=torch.float64), torch.as_tensor(T_val, dtype=torch.float64)
    d, c = Xs.shape[1], Tt.shape[1]
    W = torch.zeros(d, c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)

    def set_params(theta: np.ndarray) -> None:
        with torch.no_grad():
            W.copy_(torch.from_numpy(theta[: d * c].reshape(d, c)))
            b.copy_(torch.from_numpy(theta[d * c :]))

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean training loss over all processes and its gradient (all-reduced in float64)."""
        set_params(theta)
        W.grad, b.grad = None, None
        local = loss_fn(torch.log_softmax(Xs @ W + b, dim=1), Tt).sum()
        local.backward()
        total, gW, gb = sum_arrays(accelerator, [local.detach().numpy().reshape(1), W.grad.numpy(), b.grad.numpy()])
        w = theta[: d * c]
        loss = total[0] / n_total + 0.5 * weight_decay * float(w @ w)
        return loss, np.concatenate([gW.ravel() / n_total + weight_decay * w, gb / n_total])

    def fold() -> Any:
        weight = scale[:, None] * W.detach().numpy()
        return make_head(weight, b.detach().numpy() - x_mean @ weight, np.zeros(1), c)

    def val_loss() -> float:
        with torch.no_grad():
            local = loss_fn(torch.log_softmax(Xv @ W + b, dim=1), Tv).sum()
        return float(sum_arrays(accelerator, [local.numpy().reshape(1)])[0][0] / n_val)

    theta = np.zeros(d * c + c)
    best = {"val": val_loss(), "iteration": 0, "theta": theta}
    state = {"reference": best["val"], "bad": 0, "it": 0, "stop": "max_iter"}
    history: list[dict[str, float]] = []

    def callback(intermediate_result: Any) -> None:
        """Once per iteration, at the accepted point: validation loss, best iterate, patience."""
        state["it"] += 1
        set_params(intermediate_result.x)
        val = val_loss()
        history.append({"epoch": state["it"] - 1, "train": float(intermediate_result.fun), "val": val})
        if on_eval is not None:
            on_eval(state["it"], fold())
        if val < best["val"]:
            best.update(val=val, iteration=state["it"], theta=intermediate_result.x.copy())
        if val < state["reference"] * (1 - 1e-4):
            state["reference"], state["bad"] = val, 0
        else:
            state["bad"] += 1
        if patience is not None and state["bad"] >= patience:
            state["stop"] = "patience"
            raise StopIteration

    result = _minimize_on_one_thread(fun, theta, callback, max_iter, tol)
    if state["stop"] == "max_iter" and result.status == 0:
        state["stop"] = "converged"
    set_params(best["theta"])
    module = make_module(W.detach(), b.detach())
    record = {"solver": "lbfgs (full batch, float64)", "k_heads": 1, "best_epoch": best["iteration"],
              "epochs_run": state["it"], "stopped_early": state["stop"] != "max_iter", "stop": state["stop"],
              "val_loss": best["val"], "history": history}
    return fold(), module, record


def _minimize_on_one_thread(fun: Callable, theta: np.ndarray, callback: Callable, max_iter: int, tol: float) -> Any:
    """scipy's L-BFGS-B (as scikit-learn's lbfgs) with torch on one thread.

    torch's intra-op threads wait at a barrier after every short op: on a busy machine one thread measured
    2x faster than two (docs/performance_notes.md); the result does not depend on it.
    """
    import torch
    from scipy.optimize import minimize

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return minimize(fun, theta, jac=True, method="L-BFGS-B", callback=callback,
                        options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-9, "maxcor": 20})
    finally:
        torch.set_num_threads(threads)
