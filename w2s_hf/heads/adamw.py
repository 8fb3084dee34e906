"""The `adamw` solver: a linear head trained with AdamW under accelerate (DDP across processes).

The exact solver (`w2s_hf.heads.fit_exact`) is the default for the squared loss; this one exists for
losses with no closed form and as a check that gradient training reaches the same head. On the same
data it gets within 1% of the exact head's validation error (tests/test_adamw.py). 1 and N processes
batch different rows together, so their heads agree to ~1.5 digits, not bitwise (use `exact` for that).

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arrays import as_real_array, check_same_rows
from ..distributed import agree, sum_arrays
from .linear import LinearHead


@dataclass
class AdamWFit:
    """Result of `train_adamw`: the best head and how it was found."""

    head: LinearHead
    best_step: int
    best_val_error: float
    steps: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)  # step, epoch, val_error, train_loss, lr


def _check(X: Any, Y: Any, xname: str, yname: str) -> tuple[np.ndarray, np.ndarray]:
    X = as_real_array(X, xname, ndim=(2,), allow_empty=True)
    Y = as_real_array(Y, yname, allow_empty=True).astype(np.float64, copy=False)
    check_same_rows(X, xname, Y, yname)
    return X, Y


def checked_inputs(accelerator: Any, X_train: Any, Y_train: Any, X_val: Any, Y_val: Any,
                    names: tuple[str, str, str, str] = ("X_train", "Y_train", "X_val", "Y_val"),
                    check: Callable[..., None] | None = None) -> tuple[np.ndarray, ...]:
    """Validate this process's arrays (and `check(Y_train, Y_val)` if given); with several processes, a
    bad input anywhere raises everywhere.

    Raising on one process only would leave the others waiting in the next all-reduce forever.
    """
    n_proc = accelerator.num_processes if accelerator is not None else 1
    error, shapes = None, (-1, -1, -1)
    xt, yt, xv, yv = names
    try:
        X_train, Y_train = _check(X_train, Y_train, xt, yt)
        X_val, Y_val = _check(X_val, Y_val, xv, yv)
        if X_val.shape[1] != X_train.shape[1]:
            raise ValueError(f"{xv} has {X_val.shape[1]} features but {xt} has {X_train.shape[1]}.")
        k_train, k_val = Y_train.reshape(len(Y_train), -1).shape[1], Y_val.reshape(len(Y_val), -1).shape[1]
        if Y_val.ndim != Y_train.ndim or k_val != k_train:
            raise ValueError(f"{yv} has shape {Y_val.shape} but {yt} has {Y_train.shape}: the targets must match.")
        if check is not None:
            check(Y_train, Y_val)
        shapes = (X_train.shape[1], k_train, Y_train.ndim)
    except ValueError as exc:
        if n_proc == 1:
            raise
        error = exc
    if n_proc > 1:
        agree(accelerator, error, shapes, "/".join(names))
    return X_train, Y_train, X_val, Y_val


def training_moments(accelerator: Any, X: np.ndarray, Y: np.ndarray,
                      precondition: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(x_mean, M, y_mean, y_std, n): the model sees (x - x_mean) @ M and (y - y_mean) / y_std.

    "whiten": M = V diag(1 / sqrt(lambda)) from the eigendecomposition of the covariance, from the
    heads' `SufficientStats` of the training rows summed over processes (float64, about a shift near
    the mean). It makes the loss perfectly conditioned, so AdamW reaches the least-squares optimum in
    a few hundred steps even on strongly correlated embeddings; directions with (numerically) zero
    variance are dropped, which keeps the folded head the minimum-norm one there, like the exact
    solver. "standardize": M = diag(1 / std) from per-column moments only (O(n d), no Gram). A zero
    std becomes 1.
    """
    if precondition == "standardize":
        x_mean, x_std, n = _column_moments(accelerator, X)
        y_mean, y_std, _ = _column_moments(accelerator, Y)
        return x_mean, np.diag(1.0 / x_std), y_mean, y_std, n
    from .stats import SufficientStats

    stats = SufficientStats.empty(X.shape[1], Y.shape[1]).update(X, Y).all_reduce(accelerator)
    if stats.n == 0:
        raise ValueError("no training rows on any process: X_train is empty.")
    x_mean, y_mean, gram, _, y_ss = stats.centred()
    n = stats.n
    y_std = _nonzero_std(np.sqrt(np.maximum(y_ss, 0.0) / n), y_mean)
    lam, V = np.linalg.eigh(gram / n)
    keep = lam > 1e-10 * max(lam.max(), 1e-300)
    if not keep.any():
        keep[:] = True  # constant features: nothing to learn but the bias
        lam = np.ones_like(lam)
    return x_mean, V[:, keep] / np.sqrt(lam[keep]), y_mean, y_std, n


def _column_moments(accelerator: Any, A: np.ndarray,
                    centred: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and (population) std of the columns of A over all processes, two passes in float64.

    With `centred` (an array shaped like A), the second pass also writes A - mean into it (float64 values).
    """
    # float64 accumulators without a float64 copy of A (the same sums, bit for bit: the cast is exact)
    n, s = sum_arrays(accelerator, [np.array([len(A)], dtype=np.float64), A.sum(0, dtype=np.float64)])
    n_total = int(n[0])
    if n_total == 0:
        raise ValueError("no training rows on any process: X_train is empty.")
    mean = s / n_total
    std = np.sqrt(sum_arrays(accelerator, [_squared_deviations(A, mean, centred=centred)])[0] / n_total)
    return mean, _nonzero_std(std, mean), n_total


def centred_columns(accelerator: Any, A: np.ndarray,
                    out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(A - mean in float64, mean, std, n): the column moments over all processes, and the centred copy
    written by the pass that sums the squared deviations (one pass over A for both) into `out` (a float64
    array shaped like A; a new one if None)."""
    centred = np.empty(A.shape) if out is None else out
    mean, std, n = _column_moments(accelerator, A, centred)
    return centred, mean, std, n


def _squared_deviations(A: np.ndarray, mean: np.ndarray, step: int | None = None,
                        centred: np.ndarray | None = None) -> np.ndarray:
    """((A - mean) ** 2).sum(0) in float64, bit for bit, through a buffer of `step` rows (about 512 KB by default).

    The full-size float64 temporaries cost more than the arithmetic: fresh pages are slow to touch on a
    busy VM (0.06-0.3 s at 27,000 x 384). numpy sums axis 0 row after row, so carrying the running sum
    as the buffer's first row keeps the order of the additions, hence the result, of the one-shot sum.
    A buffer that fits the core's L2 cache keeps the squaring and the sum out of main memory (2,048 rows
    of 384 took 15-25 ms for them at 27,000 rows, 170 rows 7 ms). With `centred`, the deviations are
    written there (the caller's copy) and squared into the buffer while they are still in cache.
    """
    step = step or max(8, (1 << 19) // (8 * max(1, A.shape[1])))
    buf = np.empty((min(step, len(A)) + 1, A.shape[1]))
    acc = np.zeros(A.shape[1])
    for start in range(0, len(A), step):
        rows = A[start : start + step]
        buf[0] = acc
        sq = buf[1 : len(rows) + 1]
        if centred is None:
            np.subtract(rows, mean, out=sq, dtype=np.float64)
            sq *= sq
        else:
            dev = np.subtract(rows, mean, out=centred[start : start + step], dtype=np.float64)
            np.multiply(dev, dev, out=sq)
        acc = buf[: len(rows) + 1].sum(0)
    return acc


def _nonzero_std(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    std = std.copy()
    std[std <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    return std


def _check_options(lr: float, epochs: int, batch_size: int, patience: int, weight_decay: float,
                   eval_every: int | None, precondition: str) -> None:
    for name, value, low in (("lr", lr, 0.0), ("epochs", epochs, 0), ("batch_size", batch_size, 0),
                             ("patience", patience, 0)):
        if not value > low:
            raise ValueError(f"{name}={value} must be > {low}.")
    if precondition not in ("whiten", "standardize"):
        raise ValueError(f"precondition={precondition!r} must be 'whiten' or 'standardize'.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay} must be >= 0.")
    if eval_every is not None and eval_every <= 0:
        raise ValueError(f"eval_every={eval_every} must be a positive number of steps "
                         "(or None: once per epoch, at least 5 steps apart).")


@dataclass
class _Problem:
    """Preconditioned tensors of one process and the maps that fold the model back into a head."""

    Xs: Any  # (n, d') training features, (x - x_mean) @ x_map, float32
    Ys: Any  # (n, k) standardised training targets
    Xv: Any
    Yv: Any
    y_var: Any  # per-target variance: validation errors in target units
    x_mean: np.ndarray
    x_map: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    one_d: bool
    n_total: int  # training rows over all processes
    n_val_total: int

    @property
    def k(self) -> int:
        return self.Ys.shape[1]


def _problem(accelerator: Any, X_train: np.ndarray, Y_train: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
             precondition: str, device: Any) -> _Problem:
    import torch

    one_d = Y_train.ndim == 1
    Y_train, Y_val = Y_train.reshape(len(Y_train), -1), Y_val.reshape(len(Y_val), -1)
    x_mean, x_map, y_mean, y_std, n_total = training_moments(accelerator, X_train, Y_train, precondition)
    n_val_total = int(sum_arrays(accelerator, [np.array([len(X_val)], dtype=np.float64)])[0][0])
    if n_val_total == 0:
        raise ValueError("X_val is empty on every process: early stopping needs validation rows.")

    def as_t(a: np.ndarray) -> Any:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    return _Problem(
        Xs=as_t((X_train - x_mean) @ x_map), Ys=as_t((Y_train - y_mean) / y_std),
        Xv=as_t((X_val - x_mean) @ x_map), Yv=as_t((Y_val - y_mean) / y_std),
        y_var=torch.as_tensor(y_std**2, dtype=torch.float64, device=device),
        x_mean=x_mean, x_map=x_map, y_mean=y_mean, y_std=y_std, one_d=one_d,
        n_total=n_total, n_val_total=n_val_total,
    )


def _zero_model(accelerator: Any, d: int, k: int, lr: float, weight_decay: float) -> tuple[Any, ...]:
    """(model, optimizer, unwrapped model, backward) of a zero-initialised linear layer."""
    import torch

    model = torch.nn.Linear(d, k)
    # Zero start: the problem is convex, and this makes the run independent of any init draw
    # (`seed` only orders the mini-batches).
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if accelerator is None:
        return model, optimizer, model, torch.Tensor.backward
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, accelerator.unwrap_model(model), accelerator.backward


def _errors(accelerator: Any, model: Any, p: _Problem) -> tuple[float, float]:
    """(validation error in target units, training loss in standard units) over all processes."""
    import torch

    with torch.no_grad():
        sse_val = ((model(p.Xv) - p.Yv).double() ** 2).sum(0) * p.y_var
        sse_train = ((model(p.Xs) - p.Ys).double() ** 2).sum()
    val, train = sum_arrays(accelerator, [sse_val.cpu().numpy(), sse_train.cpu().numpy().reshape(1)])
    return float(val.mean() / p.n_val_total), float(train[0] / (p.n_total * p.k))


def train_adamw(
    X_train: Any,
    Y_train: Any,
    X_val: Any,
    Y_val: Any,
    *,
    accelerator: Any = None,
    lr: float = 1e-2,
    epochs: int = 300,
    batch_size: int = 4096,
    weight_decay: float = 0.0,
    eval_every: int | None = None,
    patience: int = 10,
    warmup_fraction: float = 0.05,
    precondition: str = "whiten",
    seed: int = 0,
    on_eval: Callable[[int, LinearHead], None] | None = None,
) -> AdamWFit:
    """Train a linear head with AdamW and early stopping on (X_val, Y_val); see `fit_adamw`."""
    import torch

    _check_options(lr, epochs, batch_size, patience, weight_decay, eval_every, precondition)
    n_proc = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    X_train, Y_train, X_val, Y_val = checked_inputs(accelerator, X_train, Y_train, X_val, Y_val)
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    p = _problem(accelerator, X_train, Y_train, X_val, Y_val, precondition, device)
    model, optimizer, unwrapped, backward = _zero_model(accelerator, p.x_map.shape[1], p.k, lr, weight_decay)

    # The same number of steps on every process (DDP needs it): global batches of `batch_size` rows.
    steps_per_epoch = max(1, math.ceil(p.n_total / batch_size))
    total_steps = steps_per_epoch * epochs
    # Full-batch epochs are one step each, and AdamW overshoots for a few steps early on: spacing
    # evaluations at least 5 steps apart keeps `patience` from firing on that transient.
    eval_every = eval_every or max(steps_per_epoch, 5)
    warmup = max(1, int(warmup_fraction * total_steps))
    rng = np.random.default_rng([seed, rank])
    stopper = Plateau(patience)
    history: list[dict[str, float]] = []
    step = 0
    model.train()
    for epoch in range(epochs):
        chunks = np.array_split(rng.permutation(len(p.Xs)), steps_per_epoch)
        # Rows in each global step, known to every process before the step (one collective per epoch).
        global_rows = sum_arrays(accelerator, [np.array([len(c) for c in chunks], dtype=np.float64)])[0]
        for chunk, rows in zip(chunks, global_rows):
            # Linear warm-up, then the plateau schedule (a prepared scheduler would step per process).
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup) * stopper.lr_scale
            idx = torch.as_tensor(chunk, device=device)
            # Scaled so that DDP's average over processes is the mean over the global step's rows.
            loss = ((model(p.Xs[idx]) - p.Ys[idx]) ** 2).sum() * (n_proc / (max(rows, 1.0) * p.k))
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            optimizer.step()
            step += 1
            if step % eval_every == 0 or step == total_steps:
                err_val, loss_train = _errors(accelerator, unwrapped, p)
                history.append({"step": step, "epoch": epoch + ((step - 1) % steps_per_epoch + 1) / steps_per_epoch,
                                "val_error": err_val, "train_loss": loss_train, "lr": optimizer.param_groups[0]["lr"]})
                if on_eval is not None:
                    on_eval(step, _fold(unwrapped, p.x_mean, p.x_map, p.y_mean, p.y_std, p.one_d))
                if stopper.update(err_val, loss_train, step):
                    stopper.best_state = copy.deepcopy(unwrapped.state_dict())
                if stopper.should_stop:
                    break
        if stopper.should_stop:
            break
    if stopper.best_state is not None:
        unwrapped.load_state_dict(stopper.best_state)
    return AdamWFit(head=_fold(unwrapped, p.x_mean, p.x_map, p.y_mean, p.y_std, p.one_d), best_step=stopper.best_step,
                    best_val_error=stopper.best, steps=step, stopped_early=stopper.should_stop, history=history)


class Plateau:
    """Learning-rate decay on a training-loss plateau; early stopping on the validation error.

    The two are kept apart on purpose: the step size is an optimisation matter (when the training
    loss stops falling, AdamW is circling the optimum at its step size, so the rate is cut by 3),
    while stopping is a generalisation matter (`patience` evaluations without the validation error
    improving by a relative 1e-4). Decaying on validation instead cuts the rate during the
    validation bump that a small training set shows early on, and the run then stops before it
    comes back down. The best weights are kept on any validation improvement.

    `overshoot_guard` (the full-batch classification heads): an evaluation counts towards `patience`
    only while the training loss is at its best so far. Full-batch AdamW overshoots early on (the
    training loss rises for a while, and the validation loss with it); counting those evaluations
    stopped a softmax head at epoch 13-16 (val 0.339) whose best epoch was 62 (val 0.324). A run whose
    training loss still sets new lows while validation does not improve has converged for selection.
    """

    def __init__(self, patience: int, factor: float = 1 / 3, min_rel_delta: float = 1e-4,
                 overshoot_guard: bool = False):
        self.patience, self.factor, self.min_rel_delta = patience, factor, min_rel_delta
        self.overshoot_guard = overshoot_guard
        self._train_best = math.inf
        self.decay_after = max(2, patience // 3)
        self.best, self.best_step, self.best_state = math.inf, 0, None
        self.lr_scale, self.should_stop = 1.0, False
        self._val_ref, self._bad_val = math.inf, 0
        self._train_ref, self._bad_train = math.inf, 0

    def update(self, val: float, train: float, step: int) -> bool:
        """Record one evaluation; True when it is the best so far (the caller saves the weights)."""
        improved = val < self.best
        if improved:
            self.best, self.best_step = val, step
        settled = train <= self._train_best * (1 + self.min_rel_delta)  # not in an overshoot of the training loss
        self._train_best = min(self._train_best, train)
        if val < self._val_ref * (1 - self.min_rel_delta):
            self._val_ref, self._bad_val = val, 0
        elif settled or not self.overshoot_guard:
            self._bad_val += 1
            self.should_stop = self._bad_val >= self.patience
        if train < self._train_ref * (1 - self.min_rel_delta):
            self._train_ref, self._bad_train = train, 0
        else:
            self._bad_train += 1
            if self._bad_train >= self.decay_after:
                self.lr_scale *= self.factor
                self._bad_train = 0
        return improved


def _fold(
    model: Any, x_mean: np.ndarray, x_map: np.ndarray, y_mean: np.ndarray, y_std: np.ndarray, one_d: bool
) -> LinearHead:
    """Undo the preconditioning: y = ((x - mu) M W + b) s_y + mu_y becomes x W' + b' in raw units."""
    W = model.weight.detach().cpu().double().numpy().T  # (p, k)
    b = model.bias.detach().cpu().double().numpy()
    weight = (x_map @ W) * y_std[None, :]
    bias = (b - x_mean @ x_map @ W) * y_std + y_mean
    return LinearHead(weight=weight, bias=bias, output_1d=one_d)


def fit_adamw(
    X_train: Any,
    Y_train: Any,
    X_val: Any,
    Y_val: Any,
    *,
    accelerator: Any = None,
    lr: float = 1e-2,
    epochs: int = 300,
    batch_size: int = 4096,
    weight_decay: float = 0.0,
    eval_every: int | None = None,
    patience: int = 10,
    seed: int = 0,
    on_eval: Callable[[int, LinearHead], None] | None = None,
) -> LinearHead:
    """Fit a linear head (Y ~ X W + b) with AdamW under accelerate, early-stopped on validation.

    X_train (n, d) / Y_train (n,) or (n, k): this process's training rows (`accelerator=None`: plain
    single-process torch on the CPU). X_val / Y_val: this
    process's validation rows (the labels the head is selected against, gold or weak; never test).
    Evaluates every `eval_every` optimizer steps (default: once per epoch of `batch_size`-row global
    steps, at least 5 apart); stops after `patience` evaluations without improvement and returns
    the best head, with the whitening folded into its weight and bias (`predict` takes raw
    features). `on_eval(step, head)` runs at every evaluation on every process, so it may gather.
    Deterministic for a given seed and sharding. `train_adamw` takes the same arguments (plus
    `warmup_fraction` and `precondition`) and also returns the best step and the validation curve.
    """
    return train_adamw(
        X_train,
        Y_train,
        X_val,
        Y_val,
        accelerator=accelerator,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        weight_decay=weight_decay,
        eval_every=eval_every,
        patience=patience,
        seed=seed,
        on_eval=on_eval,
    ).head
