"""`w2s scaling`: scaling over N: weak, w2s and ceiling errors against the w2s_train size and the weak label budget.

Reads a sweep YAML (its task, strong model, weak models, seeds and head); for each (weak model, seed)
it runs (or reuses) the ordinary pipeline run in <output_dir>/runs/, then refits the exact ridge heads
on nested subsets (w2s_hf.experiments.scaling) and writes scaling.csv, scaling.json (power-law
exponents with intervals over seeds) and scaling.png (one panel per weak model).

The same subsets as a sweep's `w2s_sizes` / `weak_budgets` axes (docs/predictors.md, "Scaling over N"):
the axis runs every point as a full run (any task kind and head, the decomposition and predictors per
point); this command refits only the exact ridge heads of one run per seed, in seconds. The fit, the
sizes' rows and the figure are shared (w2s_hf.experiments.scaling, w2s_hf.hooks.scaling_plot).

    w2s scaling --config scripts/configs/sweep/esol_scaffold_smiles.yaml --output_dir runs/scaling/esol \
        --sizes 25 50 100 200 446 --weak_budgets 50 100 447
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


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
    from w2s_hf.experiments.scaling import RESAMPLING_UNIT, scaling_panels, scaling_points, scaling_summary
    from w2s_hf.experiments.sweep import SweepConfig, point_folder
    from w2s_hf.hooks.scaling_plot import plot_scaling
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
            # one compact exponent table at the end, not a decomposition table per run
            pipeline = W2SPipeline(config.run_config(weak, config.strong, seed, folder), accelerator=accelerator,
                                   print_table=False)
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
    plot_scaling(scaling_panels(points, summary, "weak_model"), out / "scaling.png",
                 title=f"{config.name or config.task}: errors against N")
    from w2s_hf.experiments.sweep_report import scaling_lines

    print("\n".join(scaling_lines({"resampling_unit": RESAMPLING_UNIT, "panels": summary})))
    print(f"wrote {out / 'scaling.csv'}, scaling.json, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
