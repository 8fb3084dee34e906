"""`w2s scaling`: scaling over N: weak, w2s and ceiling errors against the w2s_train size and the weak label budget.

Reads a sweep YAML (its task, strong model, weak models, seeds and head); for each (weak model, seed)
it runs (or reuses) the ordinary pipeline run in <output_dir>/runs/, then refits the exact ridge heads
on nested subsets (w2s_hf.experiments.scaling) and writes scaling.csv, scaling.json (power-law
exponents with intervals over seeds) and scaling.png (one panel per weak model).

    w2s scaling --config scripts/configs/sweep/esol_scaffold_smiles.yaml --output_dir runs/scaling/esol \
        --sizes 25 50 100 200 446 --weak_budgets 50 100 447
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


def _figure(points: list[dict], summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure

    from w2s_hf.atomic import atomic_path

    models = sorted({p["weak_model"] for p in points})
    fig = Figure(figsize=(3.4 * len(models), 3.3))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        full = max(p["weak_budget"] for p in points if p["weak_model"] == model)
        sel = [p for p in points if p["weak_model"] == model and p["weak_budget"] == full]
        sizes = sorted({p["w2s_size"] for p in sel})
        fits = summary[model]["w2s_size"].get(f"weak_budget={full}", {})
        for err, color in (("w2s_error", "#1f77b4"), ("ceiling_error", "#2ca02c")):
            mean = [np.mean([p[err] for p in sel if p["w2s_size"] == n]) for n in sizes]
            alpha = fits.get(err, {}).get("alpha")
            ax.loglog(sizes, mean, "o-", color=color, label=f"{err} (α={alpha:.2f})" if alpha is not None else err)
        ax.axhline(np.mean([p["weak_error"] for p in sel]), color="#d62728", linestyle="--", label="weak_error")
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=7)
        ax.minorticks_off()
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("w2s_train size N")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test MSE (mean over seeds)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)


@dataclass
class ScalingArguments:
    config: str = field(metadata={"help": "Sweep YAML (scripts/configs/): task, strong and weak models, seeds."})
    sizes: list[int] = field(metadata={"help": "w2s_train sizes N (nested subsets)."})
    weak_budgets: list[int] = field(default_factory=list, metadata={"help": "weak_train sizes (default: all)."})
    output_dir: str | None = field(default=None, metadata={"help": "Override the YAML's output_dir."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Override the split seeds."})
    n_boot: int = field(default=1000, metadata={"help": "Bootstrap resamples of seeds for the exponents."})


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import ConfigError, W2SArgumentParser

    try:
        (args,) = W2SArgumentParser(ScalingArguments, prog="w2s scaling").parse_args_and_config(argv,
                                                                                             yaml_config=False)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from w2s_hf.atomic import atomic_path, write_json_atomic
    from w2s_hf.commands import start_accelerator
    from w2s_hf.experiments.scaling import scaling_points, scaling_summary
    from w2s_hf.experiments.sweep import SweepConfig, point_folder
    from w2s_hf.pipeline.run import W2SPipeline

    overrides = {"output_dir": args.output_dir, "seeds": args.seeds, "n_boot": 0}
    try:
        config = SweepConfig.from_yaml(args.config, **overrides)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    accelerator = start_accelerator()
    points = []
    for weak in config.weak_models:
        for seed in config.seeds:
            folder = point_folder("normal", weak, config.strong, seed)  # a finished sweep's run is reused
            pipeline = W2SPipeline(config.run_config(weak, config.strong, seed, folder), accelerator=accelerator)
            pipeline.run()
            try:
                found = scaling_points(pipeline, args.sizes, args.weak_budgets or [None], seed)
            except ValueError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            points += [{"weak_model": weak.label, **p} for p in found]
    by_model = defaultdict(list)
    for p in points:
        by_model[p["weak_model"]].append(p)
    summary = {model: scaling_summary(pts, n_boot=args.n_boot) for model, pts in by_model.items()}
    out = Path(config.output_dir)
    with atomic_path(out / "scaling.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)
    write_json_atomic(out / "scaling.json", {"sizes": args.sizes, "weak_budgets": args.weak_budgets,
                                             "seeds": config.seeds, "exponents": summary}, strict=False)
    _figure(points, summary, out / "scaling.png", f"{config.name or config.task}: errors against N")
    print(json.dumps({m: {k: {e: round(v["alpha"], 3) for e, v in fits.items()}
                          for k, fits in s["w2s_size"].items()} for m, s in summary.items()}, indent=1))
    print(f"wrote {out / 'scaling.csv'}, scaling.json, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
