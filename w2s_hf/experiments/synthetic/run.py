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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from w2s_hf.experiments.synthetic.nets import (
    features,
    seed_seq,
    single_thread,
)

from .config import STREAM_TASK, SyntheticConfig
from .representations import Representations
from .sweep import run_reversal_sweep
from .tasks import condition_number, evaluate_tasks, summarise_rows


def write_csv_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    from w2s_hf.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)  # floats as repr: they read back bit for bit


def run_synthetic(config: SyntheticConfig, output_dir: str | os.PathLike,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the configured variants; returns {variant: results dict}. `progress` gets a line per
    variant and per sweep point as each is done.

    Writes <output_dir>/<variant>/tasks.csv (one row per task), results.json and gain_vs_misfit.png,
    each as soon as its variant is done, and at the end <output_dir>/summary.json and
    gain_vs_misfit.png (one panel per variant); every file is written atomically. The reversal
    variant also runs the sweep (`run_reversal_sweep`, under "sweep" in its results.json) and writes
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
            write_csv_atomic(folder / "tasks.csv", rows)
            plot_misfit_vs_gain(
                rows,
                folder / "gain_vs_misfit.png",
                panel_key="variant",
                color_key="variant",
                title=f"weak: {short_name(result['weak_representation'])}\n"
                f"strong: {short_name(result['strong_representation'])}",
            )
            if variant == "reversal":
                sweep, sweep_rows = run_reversal_sweep(config, reps, progress)
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
    write_csv_atomic(folder / "sweep.csv", flat)
    write_csv_atomic(folder / "sweep_tasks.csv", rows)
    plot_misfit_vs_gain(rows, folder / "sweep_gain_vs_misfit.png", panel_key="point", color_key="roles",
                        ncols=ncols, title=f"reversal sweep (protocol {sweep['protocol']}): the better net is strong")


def short_name(name: str) -> str:
    """'deep (8-layer MLP, 2000 samples/task, ...)' -> 'deep (8-layer MLP)', to fit a plot title."""
    return name.split(",")[0] + ")" if "," in name else name


def _run_variant(
    config: SyntheticConfig, variant: str, reps: Representations
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    start = time.perf_counter()
    weak, strong, about = reps.for_variant(variant)
    rows = evaluate_tasks(config, variant, reps.truth, weak, strong, adamw_heads=reps.adamw_heads)
    result = summarise_rows(variant, rows, config)
    gold = result["gold_head_error"]
    better = "strong" if gold["strong_representation"] < gold["weak_representation"] else "weak"
    x_probe = np.random.default_rng(seed_seq(config.seed, STREAM_TASK, 0)).normal(
        0.0, config.input_std, (config.n_samples, config.input_dim)
    )
    result.update(
        {
            "weak_representation": about["weak"],
            "strong_representation": about["strong"],
            "better_representation": about[better],
            "strong_feature_condition_number": condition_number(features(strong, x_probe)),
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
