"""Downstream tasks of the synthetic experiment: samples, exact or AdamW heads, per-task decompositions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from w2s_hf.decomposition.core import QUANTITIES, decompose, fit_gain_on_misfit
from w2s_hf.experiments.synthetic.nets import (
    draw_heads,
    features,
    fit_heads_adamw,
    seed_seq,
    torch_generator,
)
from w2s_hf.heads import fit_exact

from .config import STREAM_HEAD_INIT, STREAM_HEAD_SHUFFLE, STREAM_TASK, SyntheticConfig, head_solver


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
    rng = np.random.default_rng(seed_seq(config.seed, STREAM_TASK, task))
    heads, bias = draw_heads(rng, 1, config.width, config.protocol)
    x_fit = rng.normal(0.0, config.input_std, (config.n_samples, config.input_dim))
    x_test = rng.normal(0.0, config.input_std, (config.n_test, config.input_dim))
    x_misfit = x_test
    if config.protocol == "notebook":
        x_misfit = rng.normal(0.0, config.input_std, (config.n_test, config.input_dim))
    return TaskSample(heads[0], None if bias is None else bias, x_fit, x_test, x_misfit)


def task_labels(truth: torch.nn.Module, sample: TaskSample, x: np.ndarray) -> np.ndarray:
    y = features(truth, x) @ sample.head
    return y if sample.bias is None else y + sample.bias[0]


SPLITS = ("fit", "test", "misfit")


def predict_exact(truth, weak, strong, samples: list[TaskSample]) -> list[dict[str, np.ndarray]]:
    """Exact heads per task: gold labels, and weak / w2s / ceiling predictions per split."""
    out = []
    for s in samples:
        y_fit, y_test = task_labels(truth, s, s.x_fit), task_labels(truth, s, s.x_test)
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


class AdamWHeads:
    """Downstream heads by AdamW as the notebook trains them, all tasks in one batched run per kind.

    Gold-label heads are kept per net (`gold`), so the reversal sweep, which needs both nets' gold
    heads to tell which is better, trains each net's once.
    """

    def __init__(self, config: SyntheticConfig, truth: torch.nn.Module, samples: list[TaskSample]):
        self.config, self.samples = config, samples
        self.y = {sp: np.stack([task_labels(truth, s, getattr(s, f"x_{sp}")) for s in samples]) for sp in SPLITS}
        inits = [
            np.random.default_rng(seed_seq(config.seed, STREAM_HEAD_INIT, t)).uniform(
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
                sp: np.stack([features(net, getattr(s, f"x_{sp}")) for s in self.samples]) for sp in SPLITS
            }
        return self._feats[net]

    def _fit(self, feats: np.ndarray, targets: np.ndarray, init: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        return fit_heads_adamw(feats, targets, init, epochs=c.head_epochs, batch_size=c.head_batch_size,
                               lr=c.head_lr, weight_decay=c.weight_decay,
                               generator=torch_generator(c.seed, STREAM_HEAD_SHUFFLE))

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
        preds.update({f"weak_{sp}": weak_gold[sp] for sp in SPLITS})
        preds.update({f"w2s_{sp}": w2s[sp] for sp in SPLITS})
        preds.update({f"ceiling_{sp}": ceiling[sp] for sp in ("fit", "test")})
        return [{k: v[t] for k, v in preds.items()} for t in range(len(self.samples))]


def evaluate_tasks(
    config: SyntheticConfig, variant: str, truth: torch.nn.Module, weak: torch.nn.Module, strong: torch.nn.Module,
    *, adamw_heads: AdamWHeads | None = None,
) -> list[dict[str, Any]]:
    """One row per downstream task: the decomposition on fresh samples, and `fit_*` on the fitted set.

    Errors are measured on `x_test`, the misfit on `x_misfit` (the same points in protocol fast).
    """
    samples = [task_sample(config, t) for t in range(config.n_tasks)]
    if head_solver(config) == "exact":
        preds = predict_exact(truth, weak, strong, samples)
    else:
        preds = (adamw_heads or AdamWHeads(config, truth, samples)).predict(weak, strong)
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


def condition_number(feats: np.ndarray) -> float:
    """Condition number of the centred features: fitted-set exactness degrades like its square."""
    s = np.linalg.svd(feats - feats.mean(axis=0), compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def summarise_rows(variant: str, rows: list[dict[str, Any]], config: SyntheticConfig) -> dict[str, Any]:
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
