"""The reversal sweep: where is the shallow net really the better representation, and does gain track misfit there?"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import SyntheticConfig
from .representations import Representations
from .tasks import evaluate_tasks, summarise_rows


def run_reversal_sweep(config: SyntheticConfig, reps: Representations, progress: Callable[[str], None] | None = None
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
            summary = summarise_rows("reversal", rows, config)
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


def format_reversal_sweep(sweep: dict[str, Any]) -> str:
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
