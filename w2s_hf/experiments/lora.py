"""The linear student against the LoRA student : weak_error, w2s_error, misfit, gain, residual.

Each config is an ordinary `train_w2s.py` YAML file; every (config, seed) is one `W2SPipeline` run with
`--student lora --split_seed SEED`, so both students learn the same weak labels and are scored on the same
gold labels (`results.json` -> `students`). Optionally each split is cut to a seeded subset of rows
(`--max_rows_per_split`, for CPU-sized runs). Besides the two students of `results.json` (the LoRA one
early-stopped on val weak labels, so possibly still at step 0 = the linear student), the LoRA student at
its last evaluation point (`w2s_lora@last`, not selected, read off the evaluation hooks) is recorded too.
Writes `lora_experiment.csv` (one row per config, seed, split and student), prints the Markdown table of
docs/results.md (test split, mean and range over seeds) and draws gain against misfit for the students
(`--figure`).

    w2s lora-experiment --configs scripts/configs/run/lora_esol.yaml --seeds 0 1 2
    w2s lora-experiment --configs scripts/configs/run/lora_ellipse.yaml --max_rows_per_split 300 \
        --output_dir runs/lora_experiment --figure docs/figures/lora_students.png

The theorem (gain >= misfit) covers only the linear student; for the LoRA student the residual is measured.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2s_hf.config import ConfigError

QUANTITIES = ("weak_error", "w2s_error", "misfit", "gain", "residual")


@dataclass
class ExperimentArguments:
    configs: list[str] = field(default_factory=list, metadata={"help": "train_w2s YAML configs, one per task."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Split seeds (split_seed)."})
    max_rows_per_split: int = field(default=0, metadata={"help": "Keep a seeded subset of this many rows per "
                                                                 "split (0: every row)."})
    output_dir: str = field(default="runs/lora_experiment", metadata={"help": "Run folders and the CSV."})
    figure: str | None = field(default=None, metadata={"help": "Write the gain-vs-misfit PNG here."})
    table_only: bool = field(default=False, metadata={"help": "Only tabulate the CSV in output_dir."})


def subset(task, n: int, seed: int):
    """The task with each split cut to a seeded random `n` rows (the same rows for a given seed)."""
    import dataclasses

    from datasets import DatasetDict

    rng = np.random.default_rng([seed, 15])
    cut = {s: ds.select(np.sort(rng.permutation(len(ds))[:n])) if len(ds) > n else ds
           for s, ds in task.splits.items()}
    return dataclasses.replace(task, splits=DatasetDict(cut))


def run_one(config_path: str, seed: int, args: ExperimentArguments) -> list[dict]:
    from w2s_hf.config import parse_config
    from w2s_hf.pipeline import W2SPipeline, load_task_of

    name = Path(config_path).stem
    out = Path(args.output_dir) / name / f"seed{seed}"
    config = parse_config(["--config", config_path, "--student", "lora", "--split_seed", str(seed),
                           "--output_dir", str(out)])
    task = load_task_of(config)
    if args.max_rows_per_split:
        task = subset(task, args.max_rows_per_split, seed)
    last = LastPoint()
    results = W2SPipeline(config, task=task, hooks=[last]).run()
    blocks = {**results["students"]}
    if last.splits:
        blocks["w2s_lora@last"] = {"kind": "lora", "covered_by_theorem": False, "splits": last.splits}
    rows = []
    for student, block in blocks.items():
        for split, d in block["splits"].items():
            rows.append({"config": name, "seed": seed, "student": student, "kind": block["kind"],
                         "covered_by_theorem": block["covered_by_theorem"], "split": split, "n": d["n"],
                         **{q: d[q] for q in QUANTITIES}})
    return rows


class LastPoint:
    """Evaluation hook: the decomposition of the LoRA student at its last evaluation point, per split."""

    def __init__(self):
        self.splits: dict[str, dict] = {}
        self.step = -1

    def on_evaluate(self, step, split, decomposition, state) -> None:
        if state.get("stage") == "train_w2s_lora" and step >= self.step:
            self.step = step
            self.splits[split] = {"n": decomposition.n, **{q: getattr(decomposition, q) for q in QUANTITIES},
                                  "step": step}

    def on_end(self, results) -> None:
        return None


def table(rows: list[dict], split: str = "test") -> str:
    """Mean [min, max] over seeds of each quantity, per config and student."""
    lines = ["| task | student | seeds | " + " | ".join(QUANTITIES) + " | gain >= misfit |",
             "|---|---|---|" + "---|" * len(QUANTITIES) + "---|"]
    keys = dict.fromkeys((r["config"], r["student"]) for r in rows if r["split"] == split)
    for config, student in keys:
        mine = [r for r in rows if (r["config"], r["student"], r["split"]) == (config, student, split)]
        cells = []
        for q in QUANTITIES:
            v = np.array([float(r[q]) for r in mine])
            cells.append(f"{v.mean():.4f} [{v.min():.4f}, {v.max():.4f}]")
        held = sum(float(r["residual"]) >= 0 for r in mine)
        lines.append(f"| {config} | {student} | {len(mine)} | " + " | ".join(cells) + f" | {held}/{len(mine)} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: str, split: str = "test") -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from w2s_hf.atomic import atomic_path

    configs = list(dict.fromkeys(r["config"] for r in rows))
    fig = Figure(figsize=(4.2 * len(configs), 4.0))
    axes = fig.subplots(1, len(configs), squeeze=False)[0]
    for ax, config in zip(axes, configs):
        mine = [r for r in rows if r["config"] == config and r["split"] == split]
        for student, marker, color, label in (("w2s", "o", "#1f77b4", "linear student (theorem)"),
                                              ("w2s_lora", "^", "#d62728", "LoRA, early-stopped"),
                                              ("w2s_lora@last", "x", "#ff7f0e", "LoRA, last step")):
            pts = [(float(r["misfit"]), float(r["gain"])) for r in mine if r["student"] == student]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, color=color, label=label)
        hi = max(float(r[q]) for r in mine for q in ("misfit", "gain"))
        ax.plot([0, hi], [0, hi], color="grey", linestyle="dashed", linewidth=0.8, label="gain = misfit")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{config} ({split}, one point per seed)", fontsize=10)
        ax.set_xlabel("misfit (student vs weak labels)")
    axes[0].set_ylabel("gain = weak_error - w2s_error")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser

    try:
        (args,) = W2SArgumentParser(ExperimentArguments).parse_args_and_config(argv)
        if not args.configs and not args.table_only:
            raise ConfigError("--configs needs at least one train_w2s YAML file.")
        for path in args.configs:
            if not Path(path).is_file():
                raise ConfigError(f"--configs: {path!r} does not exist.")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    csv_path = Path(args.output_dir) / "lora_experiment.csv"
    rows = []
    if csv_path.exists():
        with open(csv_path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh)]
    if not args.table_only:
        from w2s_hf.atomic import atomic_path

        for config_path in args.configs:
            for seed in args.seeds:
                new = run_one(config_path, seed, args)
                done = {(r["config"], r["seed"]) for r in new}
                rows = [r for r in rows if (r["config"], int(r["seed"])) not in done] + new
                with atomic_path(csv_path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=list(new[0]))
                    writer.writeheader()
                    writer.writerows(rows)
    print(table(rows))
    if args.figure:
        figure(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
