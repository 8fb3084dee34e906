"""The nets and the training loops of the synthetic experiment (`w2s_hf.experiments.synthetic`).

MLPs at PyTorch's init from a given generator, task heads of either protocol, the two pretraining
loops (`pretrain`: protocol fast; `pretrain_notebook`: the authors' notebook) and `fit_heads_adamw`,
which trains many linear heads at once, each exactly as it would be trained alone.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from typing import Any, Iterator

import numpy as np
import torch


def seed_seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


def torch_generator(seed: int, *key: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed_seq(seed, *key).generate_state(1, np.uint64)[0] >> 1))


def build_mlp(depth: int, in_dim: int, width: int, generator: torch.Generator, *, final_relu: bool = False
              ) -> torch.nn.Sequential:
    """`depth` linear layers of `width` with ReLU between them (and after the last with `final_relu`,
    as the notebook's MLPs have), PyTorch's default init from `generator`.

    `skip_init` keeps construction off the global RNG; U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
    and biases is what `nn.Linear.reset_parameters` draws.
    """
    layers: list[torch.nn.Module] = []
    fan_in = in_dim
    for i in range(depth):
        linear = torch.nn.utils.skip_init(torch.nn.Linear, fan_in, width)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if i < depth - 1 or final_relu:
            layers.append(torch.nn.ReLU())
        fan_in = width
    return torch.nn.Sequential(*layers)


def draw_heads(rng: np.random.Generator, n: int, width: int, protocol: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(weights (n, width), biases (n,) or None) of n task heads on the representation.

    fast: f ~ N(0, I), no bias. notebook: `nn.Linear(width, 1)` at PyTorch's init, U(-b, b) with
    b = 1/sqrt(width) for the weights and the bias.
    """
    if protocol == "fast":
        return rng.standard_normal((n, width)), None
    bound = 1.0 / math.sqrt(width)
    return rng.uniform(-bound, bound, (n, width)), rng.uniform(-bound, bound, n)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the caller's setting.

    Ops on 16-wide layers are far too small to split across threads; a second thread only adds
    synchronisation (steps 3-30x slower on a busy 2-core machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def features(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Representation of the rows of x (float64 in, float64 out; `net` must be float64)."""
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then a cosine decay to 0 at step `total`."""

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return schedule


def _task_labels(true_rep: np.ndarray, heads: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Labels f_t . h*(x) (+ b_t) of (T, n, k) true features under T heads: (T, n)."""
    y = np.einsum("tnk,tk->tn", true_rep, heads)
    return y if bias is None else y + bias[:, None]


def _task_loss(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, points: np.ndarray,
               bias: np.ndarray | None = None) -> tuple[float, float]:
    """(MSE of f_t . h against f_t . h*, label variance) over (T, n, d) points, in float64."""
    flat = points.reshape(-1, points.shape[2])
    true_rep = features(truth, flat).reshape(points.shape[0], -1, heads.shape[1])
    rep = features(net, flat).reshape(true_rep.shape)
    y = _task_labels(true_rep, heads, bias)
    return float(np.mean((_task_labels(rep, heads, bias) - y) ** 2)), float(np.var(y))


def _pretrain_stats(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, bias: np.ndarray | None,
                    x: np.ndarray, x_heldout: np.ndarray, curve: list[float], *, steps: int, batch: int,
                    label_var: float, seconds: float) -> dict[str, Any]:
    """What a pretraining run reports: final train and held-out losses, a 21-point loss curve."""
    epochs = len(curve)
    train_loss, _ = _task_loss(net, truth, heads, x, bias)
    heldout_loss, heldout_var = _task_loss(net, truth, heads, x_heldout, bias)
    marks = sorted({int(round(e)) for e in np.linspace(0, epochs - 1, min(epochs, 21))})
    return {
        "samples_per_task": x.shape[1], "epochs": epochs, "steps": steps, "batch_size": batch,
        "final_loss": train_loss, "final_loss_rel": train_loss / label_var,
        "heldout_loss": heldout_loss, "heldout_loss_rel": heldout_loss / heldout_var,
        "label_variance": label_var, "loss_curve_rel": [[e + 1, curve[e]] for e in marks],
        "seconds": seconds,
    }


def pretrain(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, x: np.ndarray, x_heldout: np.ndarray,
             *, epochs: int, batch_size: int, lr: float, weight_decay: float, warmup_fraction: float,
             generator: torch.Generator) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Protocol fast: train `net` on T tasks with the true heads frozen, minibatches mixing the tasks;
    x is (T, N, d). Returns (float64 copy, stats)."""
    start = time.perf_counter()
    n_tasks, n_per_task, _ = x.shape
    heads64 = torch.from_numpy(heads)
    true_rep = torch.from_numpy(features(truth, x.reshape(-1, x.shape[2]))).reshape(n_tasks, n_per_task, -1)
    labels = torch.einsum("tnk,tk->tn", true_rep, heads64)
    X = torch.from_numpy(x.reshape(-1, x.shape[2])).float()
    Y = labels.reshape(-1).float()
    task_heads = heads64.float().repeat_interleave(n_per_task, dim=0)  # (T*N, k): each row's head
    label_var = float(labels.var())

    net = net.float().train()
    batch = min(batch_size, len(X))
    steps_per_epoch = math.ceil(len(X) / batch)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(max(1, int(warmup_fraction * total)), total))
    curve = []
    with single_thread():
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=generator)
            epoch_loss = 0.0
            for i in range(steps_per_epoch):
                idx = order[i * batch : (i + 1) * batch]
                loss = torch.mean(((net(X[idx]) * task_heads[idx]).sum(dim=1) - Y[idx]) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss += loss.item() * len(idx)
            curve.append(epoch_loss / len(X) / label_var)

    net = net.double().eval().requires_grad_(False)
    stats = _pretrain_stats(net, truth, heads, None, x, x_heldout, curve, steps=total, batch=batch,
                            label_var=label_var, seconds=time.perf_counter() - start)
    return net, stats


def pretrain_notebook(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, bias: np.ndarray,
                      x: np.ndarray, x_heldout: np.ndarray, *, snapshots: list[int], batch_size: int, lr: float,
                      weight_decay: float, generator: torch.Generator
                      ) -> dict[int, tuple[torch.nn.Module, dict[str, Any]]]:
    """Protocol notebook: each epoch, for t = 1..T in turn, the rows of task t reshuffled and stepped
    through in minibatches of `batch_size` with head t (weights and bias) frozen; one AdamW at a
    constant rate throughout. x is (T, N, d).

    Returns {epoch: (float64 copy of the net after that many epochs, stats)} for every epoch in
    `snapshots`, from one run to the largest: with a constant rate and the shuffles drawn epoch by
    epoch, that snapshot is exactly the net an e-epoch run would give.
    """
    start = time.perf_counter()
    n_tasks, n_per_task, _ = x.shape
    true_rep = features(truth, x.reshape(-1, x.shape[2])).reshape(n_tasks, n_per_task, -1)
    labels = _task_labels(true_rep, heads, bias)
    X, Y = torch.from_numpy(x).float(), torch.from_numpy(labels).float()
    W, B = torch.from_numpy(heads).float(), torch.from_numpy(bias).float()
    label_var = float(labels.var())

    net = net.float().train()
    batch = min(batch_size, n_per_task)
    steps_per_epoch = n_tasks * math.ceil(n_per_task / batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    wanted, out, curve = set(snapshots), {}, []
    with single_thread():
        for epoch in range(1, max(snapshots) + 1):
            epoch_loss = 0.0
            for t in range(n_tasks):
                order = torch.randperm(n_per_task, generator=generator)
                for i in range(0, n_per_task, batch):
                    idx = order[i : i + batch]
                    loss = torch.nn.functional.mse_loss(net(X[t, idx]) @ W[t] + B[t], Y[t, idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    epoch_loss += loss.item() * len(idx)
            curve.append(epoch_loss / (n_tasks * n_per_task) / label_var)
            if epoch in wanted:
                snap = copy.deepcopy(net).double().eval().requires_grad_(False)
                out[epoch] = snap, _pretrain_stats(
                    snap, truth, heads, bias, x, x_heldout, list(curve), steps=epoch * steps_per_epoch,
                    batch=batch, label_var=label_var, seconds=time.perf_counter() - start,
                )
    return out


def fit_heads_adamw(feats: np.ndarray, targets: np.ndarray, init: np.ndarray, *, epochs: int, batch_size: int,
                    lr: float, weight_decay: float, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """H linear heads (weights and bias) trained at once by AdamW on the squared loss, in float32.

    feats (H, n, k), targets (H, n), init (H, k + 1) = starting [weights | bias]. Head h's loss is
    the mean over its own minibatch, and the summed loss's gradient for head h is that head's own, so
    AdamW (elementwise) moves every head exactly as a run on its own would; the heads share each
    epoch's permutation of the rows. Returns (weights (H, k), biases (H,)) in float64.
    """
    F = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    Y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    W = torch.from_numpy(np.ascontiguousarray(init[:, :-1], dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(init[:, -1], dtype=np.float32))
    n = F.shape[1]
    batch = min(batch_size, n)
    opt = torch.optim.AdamW([W, b], lr=lr, weight_decay=weight_decay, fused=True)
    with single_thread(), torch.no_grad():
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for i in range(0, n, batch):
                idx = order[i : i + batch]
                fb = F[:, idx]  # (H, b, k)
                # d/dW mean_i (w . f_i + b - y_i)^2 = (2/b) sum_i r_i f_i, with r = prediction - target
                r = (torch.baddbmm(b[:, None, None], fb, W[:, :, None]).squeeze(2) - Y[:, idx]) * (2.0 / len(idx))
                W.grad = torch.bmm(r[:, None, :], fb).squeeze(1)
                b.grad = r.sum(dim=1)
                opt.step()
    return W.double().numpy(), b.double().numpy()
