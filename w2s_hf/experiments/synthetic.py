"""The synthetic experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024), as in their notebook.

Ground truth: x in R^8 ~ N(0, 500^2 I); h* is a random, untrained ReLU MLP of 5 linear layers of width
16 (ReLU between layers, none after the last), so h*(x) in R^16; a task is a head f ~ N(0, I_16) with
noise-free labels y = f . h*(x).

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from w2s_hf.heads import fit_exact
from w2s_hf.misfit import QUANTITIES, decompose, fit_gain_on_misfit

VARIANTS = ("realizable", "pretrained", "reversal")
# Independent random streams, all derived from `seed`, so that changing one setting (say epochs)
# leaves the truth, the pretraining data and the downstream tasks as they were.
_TRUTH, _PRETRAIN_HEADS, _PRETRAIN_DATA, _INIT, _SHUFFLE, _HELDOUT, _TASK = range(7)
_QUICK = {"pretrain_samples": 500, "epochs": 20, "reversal_epochs": 200, "n_boot": 200}
_HELDOUT_PER_TASK = 1000


@dataclass
class SyntheticConfig:
    """Settings of the synthetic experiment (defaults: the paper's sizes and epochs)."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS),
                                metadata={"help": "Variants to run: realizable, pretrained, reversal."})
    seed: int = field(default=0, metadata={"help": "Seed of every random stream (truth, data, inits, tasks)."})
    n_tasks: int = field(default=100, metadata={"help": "Downstream tasks (points of the gain-vs-misfit plot)."})
    n_samples: int = field(default=2000, metadata={"help": "Samples per downstream task the heads are fitted on."})
    n_test: int = field(
        default=2000, metadata={"help": "Fresh samples per downstream task the errors are measured on."}
    )
    input_dim: int = field(default=8, metadata={"help": "Dimension of x."})
    input_std: float = field(default=500.0, metadata={"help": "Standard deviation of each coordinate of x."})
    width: int = field(default=16, metadata={"help": "Width of every MLP = representation dimension."})
    truth_depth: int = field(default=5, metadata={"help": "Linear layers of the ground truth h*."})
    deep_depth: int = field(default=8, metadata={"help": "Linear layers of the deep (strong) MLP."})
    shallow_depth: int = field(default=2, metadata={"help": "Linear layers of the shallow (weak) MLP."})
    n_pretrain_tasks: int = field(default=10, metadata={"help": "Pretraining tasks T (frozen random heads)."})
    pretrain_samples: int = field(
        default=2000, metadata={"help": "Pretraining samples per task (realizable, pretrained)."}
    )
    epochs: int = field(
        default=1000, metadata={"help": "Pretraining epochs (realizable, pretrained), as in the paper."}
    )
    batch_size: int = field(default=500, metadata={"help": "Pretraining minibatch size (capped at the data size)."})
    lr: float = field(default=1e-2, metadata={"help": "Peak AdamW learning rate (linear warm-up, cosine decay)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_fraction: float = field(default=0.05, metadata={"help": "Fraction of the steps spent warming up."})
    reversal_samples: int = field(
        default=10, metadata={"help": "Pretraining samples per task in the reversal variant."}
    )
    reversal_epochs: int = field(default=1000, metadata={"help": "Pretraining epochs in the reversal variant."})
    n_boot: int = field(default=1000, metadata={"help": "Bootstrap replicates for the slope / R^2 intervals."})
    quick: bool = field(
        default=False, metadata={"help": "Test size: shrink pretraining (fields left at their defaults) to seconds."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.variants, str):
            self.variants = [self.variants]
        unknown = [v for v in self.variants if v not in VARIANTS]
        if not self.variants or unknown or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct names from {list(VARIANTS)}, got {self.variants}")
        for name in (
            "n_tasks",
            "n_samples",
            "n_test",
            "input_dim",
            "width",
            "truth_depth",
            "deep_depth",
            "shallow_depth",
            "n_pretrain_tasks",
            "pretrain_samples",
            "epochs",
            "batch_size",
            "reversal_samples",
            "reversal_epochs",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_tasks < 2 or self.n_samples < 2 or self.n_test < 2:
            raise ValueError(
                "n_tasks, n_samples and n_test must each be at least 2 (a line needs two "
                "points, an error needs two samples)"
            )
        for name in ("input_std", "lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not (0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must be in [0, 1), got {self.weight_decay!r}")
        if not (0 <= self.warmup_fraction < 1):
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        for name in ("n_boot", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")

    def resolved(self) -> SyntheticConfig:
        """The settings actually run: with `quick`, fields left at their defaults take test sizes."""
        if not self.quick:
            return dataclasses.replace(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changes = {k: v for k, v in _QUICK.items() if getattr(self, k) == defaults[k]}
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------------ models
def _seed_seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


def _torch_generator(seed: int, *key: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(_seed_seq(seed, *key).generate_state(1, np.uint64)[0] >> 1))


def build_mlp(depth: int, in_dim: int, width: int, generator: torch.Generator) -> torch.nn.Sequential:
    """`depth` linear layers of `width` with ReLU between them, PyTorch's default init from `generator`.

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
        if i < depth - 1:
            layers.append(torch.nn.ReLU())
        fan_in = width
    return torch.nn.Sequential(*layers)


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


def _task_loss(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, points: np.ndarray
               ) -> tuple[float, float]:
    """(MSE of f_t . h against f_t . h*, label variance) over (T, n, d) points, in float64."""
    flat = points.reshape(-1, points.shape[2])
    true_rep = features(truth, flat).reshape(points.shape[0], -1, heads.shape[1])
    rep = features(net, flat).reshape(true_rep.shape)
    y = np.einsum("tnk,tk->tn", true_rep, heads)
    return float(np.mean((np.einsum("tnk,tk->tn", rep, heads) - y) ** 2)), float(np.var(y))


def pretrain(net: torch.nn.Module, truth: torch.nn.Module, heads: np.ndarray, x: np.ndarray, x_heldout: np.ndarray,
             *, epochs: int, batch_size: int, lr: float, weight_decay: float, warmup_fraction: float,
             generator: torch.Generator) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train `net` on T tasks with the true heads frozen; x is (T, N, d). Returns (float64 copy, stats)."""
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
    train_loss, _ = _task_loss(net, truth, heads, x)
    heldout_loss, heldout_var = _task_loss(net, truth, heads, x_heldout)
    marks = sorted({int(round(e)) for e in np.linspace(0, epochs - 1, min(epochs, 21))})
    stats = {
        "samples_per_task": n_per_task, "epochs": epochs, "steps": total, "batch_size": batch,
        "final_loss": train_loss, "final_loss_rel": train_loss / label_var,
        "heldout_loss": heldout_loss, "heldout_loss_rel": heldout_loss / heldout_var,
        "label_variance": label_var, "loss_curve_rel": [[e + 1, curve[e]] for e in marks],
        "seconds": time.perf_counter() - start,
    }
    return net, stats


# -------------------------------------------------------------------------------------- downstream
def evaluate_tasks(
    config: SyntheticConfig, variant: str, truth: torch.nn.Module, weak: torch.nn.Module, strong: torch.nn.Module
) -> list[dict[str, Any]]:
    """One row per downstream task: the decomposition on fresh samples, and `fit_*` on the fitted set."""
    rows = []
    for task in range(config.n_tasks):
        # Same tasks (heads and points) in every variant: a stream per task index.
        rng = np.random.default_rng(_seed_seq(config.seed, _TASK, task))
        head = rng.standard_normal(config.width)
        x_fit = rng.normal(0.0, config.input_std, (config.n_samples, config.input_dim))
        x_test = rng.normal(0.0, config.input_std, (config.n_test, config.input_dim))
        y_fit, y_test = features(truth, x_fit) @ head, features(truth, x_test) @ head
        w_fit, w_test = features(weak, x_fit), features(weak, x_test)
        s_fit, s_test = features(strong, x_fit), features(strong, x_test)

        weak_head = fit_exact(w_fit, y_fit)
        weak_labels = weak_head.predict(w_fit)
        w2s_head = fit_exact(s_fit, weak_labels)
        ceiling_head = fit_exact(s_fit, y_fit)
        test = decompose(
            y_test, weak_head.predict(w_test), w2s_head.predict(s_test), ceiling_head.predict(s_test), n_boot=0
        )
        fit = decompose(y_fit, weak_labels, w2s_head.predict(s_fit), ceiling_head.predict(s_fit), n_boot=0)
        row: dict[str, Any] = {"variant": variant, "task": task}
        row.update({q: getattr(test, q) for q in QUANTITIES})
        row["label_variance"] = float(np.var(y_test))
        row.update({f"fit_{q}": getattr(fit, q) for q in QUANTITIES})
        rows.append(row)
    return rows


def _condition_number(feats: np.ndarray) -> float:
    """Condition number of the centred features: fitted-set exactness degrades like its square."""
    s = np.linalg.svd(feats - feats.mean(axis=0), compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def _summarise(variant: str, rows: list[dict[str, Any]], config: SyntheticConfig) -> dict[str, Any]:
    col = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in rows[0] if k not in ("variant",)}
    reg = fit_gain_on_misfit(col["misfit"], col["gain"], n_boot=config.n_boot, seed=config.seed)
    reg_fit = fit_gain_on_misfit(col["fit_misfit"], col["fit_gain"], n_boot=config.n_boot, seed=config.seed)
    rel_gap = np.abs(col["fit_gain"] - col["fit_misfit"]) / np.maximum(np.abs(col["fit_misfit"]), 1e-300)
    weak_gold, strong_gold = float(col["weak_error"].mean()), float(col["ceiling_error"].mean())
    return {
        "variant": variant,
        "slope": reg["slope"],
        "intercept": reg["intercept"],
        "r2": reg["r2"],
        "regression": reg,
        "regression_fitted_set": reg_fit,
        "mean": {q: float(np.nanmean(col[q])) for q in QUANTITIES},
        "mean_relative_to_label_variance": {
            q: float(np.mean(col[q] / col["label_variance"]))
            for q in ("weak_error", "w2s_error", "misfit", "gain", "residual", "ceiling_error")
        },
        "fitted_set_max_relative_residual": float(np.max(rel_gap)),
        "gold_head_error": {"weak_representation": weak_gold, "strong_representation": strong_gold},
        "strong_better_fraction": float(np.mean(col["ceiling_error"] < col["weak_error"])),
    }


# ------------------------------------------------------------------------------------------ driver
def _atomic_write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from w2s_hf.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)  # floats as repr: they read back bit for bit


class _Representations:
    """The truth and the pretrained nets of one run; a net pretrained once serves every variant."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.truth = (
            build_mlp(config.truth_depth, config.input_dim, config.width, _torch_generator(config.seed, _TRUTH))
            .double()
            .eval()
            .requires_grad_(False)
        )
        self.heads = np.random.default_rng(_seed_seq(config.seed, _PRETRAIN_HEADS)).standard_normal(
            (config.n_pretrain_tasks, config.width)
        )
        self._cache: dict[tuple[int, int, int], tuple[torch.nn.Module, dict[str, Any]]] = {}

    def pretrained(self, depth: int, samples: int, epochs: int) -> tuple[torch.nn.Module, dict[str, Any]]:
        key = (depth, samples, epochs)
        if key not in self._cache:
            c = self.config
            shape = (c.n_pretrain_tasks, samples, c.input_dim)
            x = np.random.default_rng(_seed_seq(c.seed, _PRETRAIN_DATA, samples)).normal(0.0, c.input_std, shape)
            heldout = np.random.default_rng(_seed_seq(c.seed, _HELDOUT)).normal(
                0.0, c.input_std, (c.n_pretrain_tasks, _HELDOUT_PER_TASK, c.input_dim)
            )
            net = build_mlp(depth, c.input_dim, c.width, _torch_generator(c.seed, _INIT, depth))
            self._cache[key] = pretrain(
                net,
                self.truth,
                self.heads,
                x,
                heldout,
                epochs=epochs,
                batch_size=c.batch_size,
                lr=c.lr,
                weight_decay=c.weight_decay,
                warmup_fraction=c.warmup_fraction,
                generator=_torch_generator(c.seed, _SHUFFLE, depth, samples),
            )
        return self._cache[key]

    def for_variant(self, variant: str) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
        """(weak net, strong net, description incl. pretraining stats) of a variant."""
        c = self.config
        samples, epochs = (
            (c.reversal_samples, c.reversal_epochs) if variant == "reversal" else (c.pretrain_samples, c.epochs)
        )
        deep_name = f"deep ({c.deep_depth}-layer MLP, {samples} samples/task, {epochs} epochs)"
        shallow_name = f"shallow ({c.shallow_depth}-layer MLP, {samples} samples/task, {epochs} epochs)"
        shallow, shallow_stats = self.pretrained(c.shallow_depth, samples, epochs)
        if variant == "realizable":
            return (
                shallow,
                self.truth,
                {
                    "weak": shallow_name,
                    "strong": f"h* ({c.truth_depth}-layer truth)",
                    "pretraining": {"shallow": shallow_stats},
                },
            )
        deep, deep_stats = self.pretrained(c.deep_depth, samples, epochs)
        pretraining = {"deep": deep_stats, "shallow": shallow_stats}
        if variant == "reversal":  # roles swapped: the deep net teaches the shallow one
            return deep, shallow, {"weak": deep_name, "strong": shallow_name, "pretraining": pretraining}
        return shallow, deep, {"weak": shallow_name, "strong": deep_name, "pretraining": pretraining}


def run_synthetic(config: SyntheticConfig, output_dir: str | os.PathLike) -> dict[str, Any]:
    """Run the configured variants; returns {variant: results dict}.

    Writes <output_dir>/<variant>/tasks.csv (one row per task), results.json and gain_vs_misfit.png,
    each as soon as its variant is done, and <output_dir>/summary.json at the end; every file is
    written atomically. A net pretrained for one variant is reused by the next (`seconds` of a
    variant is its own wall time; each net's training time is under `pretraining`).
    """
    from w2s_hf.atomic import write_json_atomic
    from w2s_hf.plotting import plot_misfit_vs_gain

    config = config.resolved()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {str(out)!r} exists and is not a folder; pass a folder path")
    results: dict[str, Any] = {}
    with single_thread():
        reps = _Representations(config)
        for variant in config.variants:
            result, rows = _run_variant(config, variant, reps)
            folder = out / variant
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write_csv(folder / "tasks.csv", rows)
            plot_misfit_vs_gain(
                rows,
                folder / "gain_vs_misfit.png",
                panel_key="variant",
                color_key="variant",
                title=f"weak: {_short(result['weak_representation'])}\n"
                f"strong: {_short(result['strong_representation'])}",
            )
            write_json_atomic(folder / "results.json", result)
            results[variant] = result
    write_json_atomic(out / "summary.json", {v: _summary_row(r) for v, r in results.items()})
    return results


def _short(name: str) -> str:
    """'deep (8-layer MLP, 2000 samples/task, ...)' -> 'deep (8-layer MLP)', to fit a plot title."""
    return name.split(",")[0] + ")" if "," in name else name


def _run_variant(
    config: SyntheticConfig, variant: str, reps: _Representations
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    start = time.perf_counter()
    weak, strong, about = reps.for_variant(variant)
    rows = evaluate_tasks(config, variant, reps.truth, weak, strong)
    result = _summarise(variant, rows, config)
    gold = result["gold_head_error"]
    better = "strong" if gold["strong_representation"] < gold["weak_representation"] else "weak"
    x_probe = np.random.default_rng(_seed_seq(config.seed, _TASK, 0)).normal(
        0.0, config.input_std, (config.n_samples, config.input_dim)
    )
    result.update(
        {
            "weak_representation": about["weak"],
            "strong_representation": about["strong"],
            "better_representation": about[better],
            "strong_feature_condition_number": _condition_number(features(strong, x_probe)),
            "pretraining": about["pretraining"],
            "seconds": time.perf_counter() - start,
            "config": dataclasses.asdict(config),
        }
    )
    return result, rows


def _summary_row(r: dict[str, Any]) -> dict[str, Any]:
    pre = r["pretraining"]
    return {
        "slope": r["slope"],
        "intercept": r["intercept"],
        "r2": r["r2"],
        "mean_gain_rel": r["mean_relative_to_label_variance"]["gain"],
        "mean_misfit_rel": r["mean_relative_to_label_variance"]["misfit"],
        "deep_loss_rel": pre["deep"]["heldout_loss_rel"] if "deep" in pre else None,
        "shallow_loss_rel": pre["shallow"]["heldout_loss_rel"],
        "better_representation": r["better_representation"],
        "seconds": r["seconds"],
    }


def format_summary(results: dict[str, Any]) -> str:
    """A short table: one line per variant."""

    def num(v: Any, spec: str) -> str:  # spec = "<width>.<precision><type>"
        return format("-", ">" + spec.split(".")[0]) if v is None else format(v, spec)

    head = (
        f"{'variant':<11} {'slope':>6} {'R^2':>6} {'gain/var':>9} {'misfit/var':>10} "
        f"{'deep loss':>10} {'shallow loss':>12} {'secs':>6}  better representation"
    )
    lines = [head, "-" * len(head)]
    for variant, r in results.items():
        s = _summary_row(r)
        lines.append(
            f"{variant:<11} {num(s['slope'], '6.3f')} {num(s['r2'], '6.3f')} "
            f"{num(s['mean_gain_rel'], '9.3g')} {num(s['mean_misfit_rel'], '10.3g')} "
            f"{num(s['deep_loss_rel'], '10.3g')} {num(s['shallow_loss_rel'], '12.3g')} "
            f"{s['seconds']:>6.1f}  {s['better_representation']}"
        )
    lines.append(
        "(gain, misfit: means over tasks on fresh samples / label variance; losses: pretraining "
        "MSE on held-out points / label variance)"
    )
    return "\n".join(lines)
