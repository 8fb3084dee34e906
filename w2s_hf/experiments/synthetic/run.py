"""The synthetic experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024), in two protocols.

Ground truth: x in R^8 ~ N(0, 500^2 I); h* is a random, untrained ReLU MLP of 5 linear layers of width
16, so h*(x) in R^16; a task is a linear head f on h* with noise-free labels y = f(h*(x)). A deep
(8-layer) and a shallow (2-layer) MLP are pretrained on T = 10 tasks with the true heads frozen; on
100 downstream tasks a weak head is trained on gold labels, a w2s head on the weak head's labels of
the same x, a ceiling head on gold labels, and gain is regressed on misfit.

`protocol: notebook` follows the authors' notebook (github.com/chogba/wtsg-regression, `wts.ipynb`).
`protocol: fast` (the default; 16x less CPU: 105 s against 28 min for every variant and the sweep)
departs from it in six ways:

1. no ReLU after the last layer of any MLP (the notebook's representations end with one, so h >= 0);
2. pretraining at batch 500 and AdamW peak lr 1e-2 with a linear warm-up and cosine decay; the
   notebook uses batch 32 and constant AdamW lr 1e-3 (weight decay 0.01) for 1,000 epochs;
3. heads (pretraining and downstream truth) f ~ N(0, I_16) with no bias; the notebook's are
   `nn.Linear(16, 1)` at PyTorch's init, U(-1/4, 1/4) for the weights and for the bias;
4. exact (least-squares, float64) downstream heads; the notebook trains each head with AdamW, lr 1e-3,
   batch 32, 1,000 epochs, from PyTorch's init, in float32 (`head_solver` picks either in either
   protocol; `--protocol notebook --head_solver exact` is the notebook's nets with fast's heads);
5. the misfit measured on the same fresh x as the errors; the notebook draws another fresh x for it;
6. every pretraining minibatch mixes rows of all T tasks; the notebook steps through the tasks in
   turn, each epoch, in minibatches of that task's own rows.

What `notebook` does differently from the notebook itself (the procedure is the same; the random draws
and the rounding differ):
every random draw comes from its own seeded stream (not the notebook's global seed 112233445), so the
numbers are not the notebook's; the 100 downstream heads of a kind are trained in one batched step
(`fit_heads_adamw`: each head's gradient and AdamW update are its own, so a head ends where it would
alone) and share each epoch's permutation of the rows, where the notebook shuffles each task alone;
AdamW runs as PyTorch's fused kernel (the same update); the errors and the misfit are computed in
float64 from the float32 heads. With a constant rate, the net after e epochs of a longer run is the
net of an e-epoch run, so one pretraining run serves every epoch count of the sweep (snapshots).

The `reversal` variant pretrains both nets on very few samples per task and swaps the roles (deep
teaches shallow). Its `sweep` repeats that over `sweep_samples` x `sweep_epochs`; at each point the
heads trained on gold labels say which net is really better, the better one is made the strong model,
and the slope and R^2 of gain on misfit and the residuals are reported.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2s_hf.decomposition.core import QUANTITIES, decompose, fit_gain_on_misfit
from w2s_hf.experiments.synthetic.nets import (
    build_mlp,
    draw_heads,
    features,
    fit_heads_adamw,
    pretrain,
    pretrain_notebook,
    seed_seq,
    single_thread,
    torch_generator,
)
from w2s_hf.heads import fit_exact

VARIANTS = ("realizable", "pretrained", "reversal")
PROTOCOLS = ("fast", "notebook")
HEAD_SOLVERS = ("exact", "adamw")
# Independent random streams, all derived from `seed`, so that changing one setting (say epochs)
# leaves the truth, the pretraining data and the downstream tasks as they were.
_TRUTH, _PRETRAIN_HEADS, _PRETRAIN_DATA, _INIT, _SHUFFLE, _HELDOUT, _TASK, _HEAD_INIT, _HEAD_SHUFFLE = range(9)
_QUICK = {"pretrain_samples": 500, "epochs": 20, "reversal_epochs": 200, "n_boot": 200, "head_epochs": 30,
          "sweep_samples": [10, 50], "sweep_epochs": [20, 200]}
# What `protocol: notebook` gives the pretraining settings left at their (fast) defaults.
_NOTEBOOK = {"batch_size": 32, "lr": 1e-3}
_HELDOUT_PER_TASK = 1000


@dataclass
class SyntheticConfig:
    """Settings of the synthetic experiment (defaults: the paper's sizes and epochs)."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS),
                                metadata={"help": "Variants to run: realizable, pretrained, reversal."})
    protocol: str = field(
        default="fast",
        metadata={
            "help": "fast (exact heads, batch 500, cosine lr; the default) or notebook (the authors' notebook: "
            "final ReLU, batch 32, constant lr 1e-3, heads with bias, AdamW downstream heads, misfit on its own x).",
            "choices": list(PROTOCOLS),
        },
    )
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
    batch_size: int = field(
        default=500, metadata={"help": "Pretraining minibatch size (capped at the data size; notebook: 32)."}
    )
    lr: float = field(
        default=1e-2,
        metadata={"help": "AdamW learning rate: fast, the peak of warm-up + cosine decay; notebook, constant 1e-3."},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of the steps spent warming up (fast only; notebook: constant lr)."}
    )
    reversal_samples: int = field(
        default=10, metadata={"help": "Pretraining samples per task in the reversal variant."}
    )
    reversal_epochs: int = field(default=1000, metadata={"help": "Pretraining epochs in the reversal variant."})
    sweep_samples: list[int] = field(
        default_factory=lambda: [10, 20, 50, 100],
        metadata={"help": "Reversal sweep: pretraining samples per task (with every sweep_epochs value)."},
    )
    sweep_epochs: list[int] = field(
        default_factory=lambda: [100, 300, 1000],
        metadata={"help": "Reversal sweep: pretraining epochs (with every sweep_samples value)."},
    )
    head_epochs: int = field(
        default=1000, metadata={"help": "notebook: AdamW epochs of every downstream head (fast fits them exactly)."}
    )
    head_batch_size: int = field(default=32, metadata={"help": "notebook: minibatch size of the downstream heads."})
    head_lr: float = field(default=1e-3, metadata={"help": "notebook: constant AdamW lr of the downstream heads."})
    head_solver: str | None = field(
        default=None,
        metadata={
            "help": "Downstream heads: exact (least squares) or adamw; default the protocol's own (fast: exact, "
            "notebook: adamw). notebook with exact is the notebook's nets with the heads fast fits.",
            "choices": list(HEAD_SOLVERS),
        },
    )
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
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if self.head_solver is not None and self.head_solver not in HEAD_SOLVERS:
            raise ValueError(f"head_solver must be one of {list(HEAD_SOLVERS)} or unset, got {self.head_solver!r}")
        if self.protocol == "notebook" and self.warmup_fraction != _default("warmup_fraction"):
            raise ValueError(
                "warmup_fraction is a setting of protocol fast; the notebook's learning rate is constant "
                "(drop --warmup_fraction or use --protocol fast)"
            )
        for name in ("sweep_samples", "sweep_epochs"):
            values = [getattr(self, name)] if isinstance(getattr(self, name), int) else list(getattr(self, name))
            if not values or any(not isinstance(v, int) or v < 1 for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers, got {getattr(self, name)!r}")
            setattr(self, name, values)
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
            "head_epochs",
            "head_batch_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_tasks < 2 or self.n_samples < 2 or self.n_test < 2:
            raise ValueError(
                "n_tasks, n_samples and n_test must each be at least 2 (a line needs two "
                "points, an error needs two samples)"
            )
        for name in ("input_std", "lr", "head_lr"):
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
        """The settings actually run: fields left at their defaults take the protocol's values
        (notebook: batch 32, lr 1e-3) and, with `quick`, test sizes."""
        changes: dict[str, Any] = {}
        changes["head_solver"] = head_solver(self)
        if self.protocol == "notebook":
            changes.update({k: v for k, v in _NOTEBOOK.items() if getattr(self, k) == _default(k)})
        if self.quick:
            changes.update({k: v for k, v in _QUICK.items() if getattr(self, k) == _default(k)})
        return dataclasses.replace(self, **changes)


def head_solver(config: SyntheticConfig) -> str:
    """How the downstream heads are fitted: `head_solver`, else the protocol's own."""
    return config.head_solver or ("exact" if config.protocol == "fast" else "adamw")


def _default(name: str) -> Any:
    f = next(f for f in dataclasses.fields(SyntheticConfig) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# -------------------------------------------------------------------------------------- downstream
@dataclass
class TaskSample:
    """One downstream task: its head (and bias) on h*, and the points of each use.

    `x_fit` trains the weak head, the w2s head (on the weak head's labels of the same x) and the
    ceiling; the errors are measured on `x_test`; the misfit on `x_misfit`, which is `x_test` itself
    in protocol fast and a further fresh draw in protocol notebook.
    """

    head: np.ndarray
    bias: np.ndarray | None
    x_fit: np.ndarray
    x_test: np.ndarray
    x_misfit: np.ndarray


def task_sample(config: SyntheticConfig, task: int) -> TaskSample:
    """The task's head and points, from a stream of its own (the same in every variant)."""
    rng = np.random.default_rng(seed_seq(config.seed, _TASK, task))
    heads, bias = draw_heads(rng, 1, config.width, config.protocol)
    x_fit = rng.normal(0.0, config.input_std, (config.n_samples, config.input_dim))
    x_test = rng.normal(0.0, config.input_std, (config.n_test, config.input_dim))
    x_misfit = x_test
    if config.protocol == "notebook":
        x_misfit = rng.normal(0.0, config.input_std, (config.n_test, config.input_dim))
    return TaskSample(heads[0], None if bias is None else bias, x_fit, x_test, x_misfit)


def _labels(truth: torch.nn.Module, sample: TaskSample, x: np.ndarray) -> np.ndarray:
    y = features(truth, x) @ sample.head
    return y if sample.bias is None else y + sample.bias[0]


_SPLITS = ("fit", "test", "misfit")


def _predict_exact(truth, weak, strong, samples: list[TaskSample]) -> list[dict[str, np.ndarray]]:
    """Exact heads per task: gold labels, and weak / w2s / ceiling predictions per split."""
    out = []
    for s in samples:
        y_fit, y_test = _labels(truth, s, s.x_fit), _labels(truth, s, s.x_test)
        w_fit, w_test = features(weak, s.x_fit), features(weak, s.x_test)
        s_fit, s_test = features(strong, s.x_fit), features(strong, s.x_test)
        weak_head = fit_exact(w_fit, y_fit)
        weak_labels = weak_head.predict(w_fit)
        w2s_head = fit_exact(s_fit, weak_labels)
        ceiling_head = fit_exact(s_fit, y_fit)
        w2s_test = w2s_head.predict(s_test)
        weak_test = weak_head.predict(w_test)
        weak_misfit, w2s_misfit = weak_test, w2s_test
        if s.x_misfit is not s.x_test:
            weak_misfit = weak_head.predict(features(weak, s.x_misfit))
            w2s_misfit = w2s_head.predict(features(strong, s.x_misfit))
        out.append({
            "y_fit": y_fit, "y_test": y_test,
            "weak_fit": weak_labels, "weak_test": weak_test, "weak_misfit": weak_misfit,
            "w2s_fit": w2s_head.predict(s_fit), "w2s_test": w2s_test, "w2s_misfit": w2s_misfit,
            "ceiling_fit": ceiling_head.predict(s_fit), "ceiling_test": ceiling_head.predict(s_test),
        })
    return out


class _AdamWHeads:
    """Downstream heads by AdamW as the notebook trains them, all tasks in one batched run per kind.

    Gold-label heads are kept per net (`gold`), so the reversal sweep, which needs both nets' gold
    heads to tell which is better, trains each net's once.
    """

    def __init__(self, config: SyntheticConfig, truth: torch.nn.Module, samples: list[TaskSample]):
        self.config, self.samples = config, samples
        self.y = {sp: np.stack([_labels(truth, s, getattr(s, f"x_{sp}")) for s in samples]) for sp in _SPLITS}
        inits = [
            np.random.default_rng(seed_seq(config.seed, _HEAD_INIT, t)).uniform(
                -1 / math.sqrt(config.width), 1 / math.sqrt(config.width), (2, config.width + 1)
            )
            for t in range(len(samples))
        ]
        self.init_gold = np.stack([i[0] for i in inits])
        self.init_student = np.stack([i[1] for i in inits])
        self._feats: dict[torch.nn.Module, dict[str, np.ndarray]] = {}
        self._gold: dict[torch.nn.Module, dict[str, np.ndarray]] = {}

    def feats(self, net: torch.nn.Module) -> dict[str, np.ndarray]:
        if net not in self._feats:
            self._feats[net] = {
                sp: np.stack([features(net, getattr(s, f"x_{sp}")) for s in self.samples]) for sp in _SPLITS
            }
        return self._feats[net]

    def _fit(self, feats: np.ndarray, targets: np.ndarray, init: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        return fit_heads_adamw(feats, targets, init, epochs=c.head_epochs, batch_size=c.head_batch_size,
                               lr=c.head_lr, weight_decay=c.weight_decay,
                               generator=torch_generator(c.seed, _HEAD_SHUFFLE))

    def _apply(self, net: torch.nn.Module, weights: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
        return {sp: np.einsum("tnk,tk->tn", f, weights) + bias[:, None] for sp, f in self.feats(net).items()}

    def forget(self, *nets: torch.nn.Module) -> None:
        """Drop the features and gold heads kept for these nets (memory: ~8 MB per net and split)."""
        for n in nets:
            self._feats.pop(n, None)
            self._gold.pop(n, None)

    def gold(self, *nets: torch.nn.Module) -> list[dict[str, np.ndarray]]:
        """Predictions per split of each net's heads trained on gold labels (new nets in one run)."""
        todo = [n for n in dict.fromkeys(nets) if n not in self._gold]
        if todo:
            feats = np.concatenate([self.feats(n)["fit"] for n in todo])
            weights, bias = self._fit(feats, np.tile(self.y["fit"], (len(todo), 1)),
                                      np.tile(self.init_gold, (len(todo), 1)))
            for i, n in enumerate(todo):
                part = slice(i * len(self.samples), (i + 1) * len(self.samples))
                self._gold[n] = self._apply(n, weights[part], bias[part])
        return [self._gold[n] for n in nets]

    def predict(self, weak: torch.nn.Module, strong: torch.nn.Module) -> list[dict[str, np.ndarray]]:
        weak_gold, ceiling = self.gold(weak, strong)
        w2s = self._apply(strong, *self._fit(self.feats(strong)["fit"], weak_gold["fit"], self.init_student))
        preds = {f"y_{sp}": self.y[sp] for sp in ("fit", "test")}
        preds.update({f"weak_{sp}": weak_gold[sp] for sp in _SPLITS})
        preds.update({f"w2s_{sp}": w2s[sp] for sp in _SPLITS})
        preds.update({f"ceiling_{sp}": ceiling[sp] for sp in ("fit", "test")})
        return [{k: v[t] for k, v in preds.items()} for t in range(len(self.samples))]


def evaluate_tasks(
    config: SyntheticConfig, variant: str, truth: torch.nn.Module, weak: torch.nn.Module, strong: torch.nn.Module,
    *, adamw_heads: _AdamWHeads | None = None,
) -> list[dict[str, Any]]:
    """One row per downstream task: the decomposition on fresh samples, and `fit_*` on the fitted set.

    Errors are measured on `x_test`, the misfit on `x_misfit` (the same points in protocol fast).
    """
    samples = [task_sample(config, t) for t in range(config.n_tasks)]
    if head_solver(config) == "exact":
        preds = _predict_exact(truth, weak, strong, samples)
    else:
        preds = (adamw_heads or _AdamWHeads(config, truth, samples)).predict(weak, strong)
    rows = []
    for task, p in enumerate(preds):
        test = decompose(p["y_test"], p["weak_test"], p["w2s_test"], p["ceiling_test"], n_boot=0)
        fit = decompose(p["y_fit"], p["weak_fit"], p["w2s_fit"], p["ceiling_fit"], n_boot=0)
        row: dict[str, Any] = {"variant": variant, "task": task}
        row.update({q: getattr(test, q) for q in QUANTITIES})
        if config.protocol == "notebook":  # the misfit of the notebook: squared loss on its own fresh x
            misfit = float(np.mean((p["w2s_misfit"] - p["weak_misfit"]) ** 2))
            row.update({"misfit": misfit, "residual": row["gain"] - misfit,
                        "predicted_w2s_error": row["weak_error"] - misfit, "misfit_on_test_x": test.misfit})
        row["label_variance"] = float(np.var(p["y_test"]))
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


# ------------------------------------------------------------------------------------------- sweep
def run_sweep(config: SyntheticConfig, reps: Representations, progress: Callable[[str], None] | None = None
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reversal sweep: at each (samples per task, epochs) pretrain both nets, tell which is really
    better from their heads on gold labels, make that one the strong model, and regress gain on misfit.

    Returns ({"points": [...], "reversal_regime": [[samples, epochs], ...]}, task rows of every point).
    "Really better" = the lower gold-label error over the downstream tasks (on fresh samples), each
    task's error divided by its label variance, then averaged (`gold_error_rel`).
    """
    points, all_rows = [], []
    for samples in config.sweep_samples:
        for epochs in config.sweep_epochs:
            start = time.perf_counter()
            deep, deep_stats = reps.pretrained(config.deep_depth, samples, epochs)
            shallow, shallow_stats = reps.pretrained(config.shallow_depth, samples, epochs)
            names = reps.names(samples, epochs)
            # weak = shallow, strong = deep: weak_error is the shallow net's gold error, ceiling the deep's
            rows = evaluate_tasks(config, "reversal", reps.truth, shallow, deep, adamw_heads=reps.adamw_heads)
            gold = {
                "deep": np.array([r["ceiling_error"] for r in rows]),
                "shallow": np.array([r["weak_error"] for r in rows]),
            }
            var = np.array([r["label_variance"] for r in rows])
            # scale-free: a task with a large label variance does not outweigh the others
            better = "deep" if np.mean(gold["deep"] / var) < np.mean(gold["shallow"] / var) else "shallow"
            worse = "shallow" if better == "deep" else "deep"
            if better == "shallow":  # swap: the deep net teaches the (really better) shallow one
                rows = evaluate_tasks(config, "reversal", reps.truth, deep, shallow,
                                      adamw_heads=reps.adamw_heads)
            summary = _summarise("reversal", rows, config)
            reg = summary["regression"]
            rel = summary["mean_relative_to_label_variance"]
            point = {
                "samples_per_task": samples,
                "epochs": epochs,
                "better": better,
                "reversed": better == "shallow",
                "weak_representation": names[worse],
                "strong_representation": names[better],
                "gold_error": {k: float(v.mean()) for k, v in gold.items()},
                "gold_error_rel": {k: float(np.mean(v / var)) for k, v in gold.items()},
                "better_fraction": float(np.mean(gold[better] < gold[worse])),
                "slope": summary["slope"],
                "intercept": summary["intercept"],
                "r2": summary["r2"],
                "ci": reg.get("ci"),
                "n_points": len(rows),
                "mean_gain_rel": rel["gain"],
                "mean_misfit_rel": rel["misfit"],
                "mean_residual_rel": rel["residual"],
                "mean_abs_residual_rel": float(np.mean([abs(r["residual"]) / r["label_variance"] for r in rows])),
                "pretraining_heldout_loss_rel": {
                    "deep": deep_stats["heldout_loss_rel"], "shallow": shallow_stats["heldout_loss_rel"]
                },
                "seconds": time.perf_counter() - start,
            }
            points.append(point)
            if reps.adamw_heads is not None:  # a point's heads and features serve no other point
                reps.adamw_heads.forget(deep, shallow)
            if progress is not None:
                progress(f"sweep {samples} samples/task x {epochs} epochs: {better} is better (gold error / "
                         f"label variance: deep {point['gold_error_rel']['deep']:.3g}, shallow "
                         f"{point['gold_error_rel']['shallow']:.3g}); slope {point['slope']:.2f}, "
                         f"R^2 {point['r2']:.2f} ({point['seconds']:.0f} s)")
            label = f"{samples}/task, {epochs} ep: {better} is better"
            roles = f"{worse} teaches {better}"
            all_rows.extend({"samples_per_task": samples, "epochs": epochs, "point": label, "roles": roles, **r}
                            for r in rows)
    regime = [[p["samples_per_task"], p["epochs"]] for p in points if p["reversed"]]
    return {"points": points, "reversal_regime": regime, "protocol": config.protocol}, all_rows


def format_sweep(sweep: dict[str, Any]) -> str:
    """The sweep as a table: one line per (samples per task, epochs)."""
    head = (
        f"{'samples':>7} {'epochs':>6}  {'better':<7} {'deep gold':>9} {'shallow gold':>12} {'slope':>6} "
        f"{'R^2':>5} {'residual':>9} {'|resid|':>8} {'n':>4}  roles"
    )
    lines = [head, "-" * len(head)]
    for p in sweep["points"]:
        worse = "shallow" if p["better"] == "deep" else "deep"
        lines.append(
            f"{p['samples_per_task']:>7} {p['epochs']:>6}  {p['better']:<7} {p['gold_error_rel']['deep']:>9.3g} "
            f"{p['gold_error_rel']['shallow']:>12.3g} {p['slope']:>6.2f} {p['r2']:>5.2f} "
            f"{p['mean_residual_rel']:>9.3g} {p['mean_abs_residual_rel']:>8.3g} {p['n_points']:>4}  "
            f"{worse} -> {p['better']}"
        )
    regime = sweep["reversal_regime"]
    lines.append(
        "(gold: error of heads on gold labels / label variance, mean over tasks; better = lower; the better net "
        "is the strong one; residual = gain - misfit, mean / label variance)"
    )
    lines.append(
        "reversal regime (shallow net really better): "
        + (", ".join(f"{s} samples/task x {e} epochs" for s, e in regime) if regime else "not found")
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ driver
def _atomic_write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from w2s_hf.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)  # floats as repr: they read back bit for bit


class Representations:
    """The truth and the pretrained nets of one run; a net pretrained once serves every variant."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        notebook = config.protocol == "notebook"
        self.truth = (
            build_mlp(config.truth_depth, config.input_dim, config.width, torch_generator(config.seed, _TRUTH),
                      final_relu=notebook)
            .double()
            .eval()
            .requires_grad_(False)
        )
        self.heads, self.bias = draw_heads(
            np.random.default_rng(seed_seq(config.seed, _PRETRAIN_HEADS)), config.n_pretrain_tasks, config.width,
            config.protocol,
        )
        self._cache: dict[tuple[int, int, int], tuple[torch.nn.Module, dict[str, Any]]] = {}
        # notebook: every epoch count a sample size is run at, so that one run makes all its snapshots
        self._marks: dict[int, set[int]] = {}
        if "realizable" in config.variants or "pretrained" in config.variants:
            self._marks.setdefault(config.pretrain_samples, set()).add(config.epochs)
        if "reversal" in config.variants:
            self._marks.setdefault(config.reversal_samples, set()).add(config.reversal_epochs)
            for samples in config.sweep_samples:
                self._marks.setdefault(samples, set()).update(config.sweep_epochs)
        self.adamw_heads: _AdamWHeads | None = None
        if head_solver(config) == "adamw":
            self.adamw_heads = _AdamWHeads(
                config, self.truth, [task_sample(config, t) for t in range(config.n_tasks)]
            )

    def pretrained(self, depth: int, samples: int, epochs: int) -> tuple[torch.nn.Module, dict[str, Any]]:
        key = (depth, samples, epochs)
        if key not in self._cache:
            c = self.config
            shape = (c.n_pretrain_tasks, samples, c.input_dim)
            x = np.random.default_rng(seed_seq(c.seed, _PRETRAIN_DATA, samples)).normal(0.0, c.input_std, shape)
            heldout = np.random.default_rng(seed_seq(c.seed, _HELDOUT)).normal(
                0.0, c.input_std, (c.n_pretrain_tasks, _HELDOUT_PER_TASK, c.input_dim)
            )
            net = build_mlp(depth, c.input_dim, c.width, torch_generator(c.seed, _INIT, depth),
                            final_relu=c.protocol == "notebook")
            generator = torch_generator(c.seed, _SHUFFLE, depth, samples)
            if c.protocol == "fast":
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
                    generator=generator,
                )
            else:
                snaps = pretrain_notebook(
                    net, self.truth, self.heads, self.bias, x, heldout,
                    snapshots=sorted(self._marks.get(samples, set()) | {epochs}), batch_size=c.batch_size,
                    lr=c.lr, weight_decay=c.weight_decay, generator=generator,
                )
                self._cache.update({(depth, samples, e): v for e, v in snaps.items()})
        return self._cache[key]

    def names(self, samples: int, epochs: int) -> dict[str, str]:
        c = self.config
        return {
            "deep": f"deep ({c.deep_depth}-layer MLP, {samples} samples/task, {epochs} epochs)",
            "shallow": f"shallow ({c.shallow_depth}-layer MLP, {samples} samples/task, {epochs} epochs)",
        }

    def for_variant(self, variant: str) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
        """(weak net, strong net, description incl. pretraining stats) of a variant."""
        c = self.config
        samples, epochs = (
            (c.reversal_samples, c.reversal_epochs) if variant == "reversal" else (c.pretrain_samples, c.epochs)
        )
        names = self.names(samples, epochs)
        deep_name, shallow_name = names["deep"], names["shallow"]
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


def run_synthetic(config: SyntheticConfig, output_dir: str | os.PathLike,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the configured variants; returns {variant: results dict}. `progress` gets a line per
    variant and per sweep point as each is done.

    Writes <output_dir>/<variant>/tasks.csv (one row per task), results.json and gain_vs_misfit.png,
    each as soon as its variant is done, and at the end <output_dir>/summary.json and
    gain_vs_misfit.png (one panel per variant); every file is written atomically. The reversal
    variant also runs the sweep (`run_sweep`, under "sweep" in its results.json) and writes
    reversal/sweep.csv (one row per point), sweep_tasks.csv (one row per point and task) and
    sweep_gain_vs_misfit.png (one panel per point). A net pretrained for one variant is reused by the
    next (`seconds` of a variant is its own wall time; each net's training time is under
    `pretraining`).
    """
    from w2s_hf.atomic import write_json_atomic
    from w2s_hf.hooks.plots import plot_misfit_vs_gain

    config = config.resolved()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {str(out)!r} exists and is not a folder; pass a folder path")
    results: dict[str, Any] = {}
    every_row: list[dict[str, Any]] = []
    with single_thread():
        reps = Representations(config)
        for variant in config.variants:
            result, rows = _run_variant(config, variant, reps)
            every_row.extend(rows)
            if progress is not None:
                progress(f"{variant}: slope {result['slope']:.3f}, R^2 {result['r2']:.3f} ({result['seconds']:.0f} s)")
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
            if variant == "reversal":
                sweep, sweep_rows = run_sweep(config, reps, progress)
                result["sweep"] = sweep
                _write_sweep(folder, sweep, sweep_rows, len(config.sweep_epochs))
            write_json_atomic(folder / "results.json", result)
            results[variant] = result
    plot_misfit_vs_gain(every_row, out / "gain_vs_misfit.png", panel_key="variant", color_key="variant",
                        title=f"protocol {config.protocol}")
    write_json_atomic(out / "summary.json", {v: _summary_row(r) for v, r in results.items()})
    return results


def _write_sweep(folder: Path, sweep: dict[str, Any], rows: list[dict[str, Any]], ncols: int) -> None:
    from w2s_hf.hooks.plots import plot_misfit_vs_gain

    flat = [
        {k: v for k, v in p.items() if not isinstance(v, dict)}
        | {f"{k}_{sub}": x for k, v in p.items() if isinstance(v, dict) and k != "ci" for sub, x in v.items()}
        for p in sweep["points"]
    ]
    _atomic_write_csv(folder / "sweep.csv", flat)
    _atomic_write_csv(folder / "sweep_tasks.csv", rows)
    plot_misfit_vs_gain(rows, folder / "sweep_gain_vs_misfit.png", panel_key="point", color_key="roles",
                        ncols=ncols, title=f"reversal sweep (protocol {sweep['protocol']}): the better net is strong")


def _short(name: str) -> str:
    """'deep (8-layer MLP, 2000 samples/task, ...)' -> 'deep (8-layer MLP)', to fit a plot title."""
    return name.split(",")[0] + ")" if "," in name else name


def _run_variant(
    config: SyntheticConfig, variant: str, reps: Representations
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    start = time.perf_counter()
    weak, strong, about = reps.for_variant(variant)
    rows = evaluate_tasks(config, variant, reps.truth, weak, strong, adamw_heads=reps.adamw_heads)
    result = _summarise(variant, rows, config)
    gold = result["gold_head_error"]
    better = "strong" if gold["strong_representation"] < gold["weak_representation"] else "weak"
    x_probe = np.random.default_rng(seed_seq(config.seed, _TASK, 0)).normal(
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
