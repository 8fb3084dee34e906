"""Several weak teachers as one: a convex mixture of the weak heads of a sweep's weak models.

Reads a sweep YAML (task, split, strong model, weak models = the teachers, seeds, head); runs, or reuses
from <output_dir>/runs/ (the sweep's own folders), every (teacher, seed) run; per seed it chooses the
mixture's weights on val gold labels, fits the protocol's student on the mixture's labels and
decomposes it (w2s_hf.experiments.teachers). Writes teachers.json and teachers.csv; prints a table.

    w2s teachers --config scripts/configs/sweep/esol_scaffold_teachers.yaml --seeds 0 1 2 3 4
    w2s teachers --num_processes 2 --config scripts/configs/sweep/esol_random_teachers.yaml

Flags given here override the YAML file's values.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from w2s_hf.config import ConfigError


@dataclass
class TeachersArguments:
    config: str = field(metadata={"help": "Sweep YAML file (see scripts/configs/); its weak_models are the teachers."})
    output_dir: str | None = field(default=None, metadata={"help": "Override the YAML's output_dir."})
    cache_dir: str | None = field(default=None, metadata={"help": "Feature cache folder."})
    task_path: str | None = field(default=None, metadata={"help": "Data file for tasks that need one (ellipse)."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Override the split seeds."})
    n_boot: int | None = field(default=None, metadata={"help": "Bootstrap resamples per decomposition (0 = none)."})


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser
    from w2s_hf.experiments.sweep import SweepConfig
    from w2s_hf.experiments.teachers import run_teachers

    try:
        (args,) = W2SArgumentParser(TeachersArguments).parse_args_and_config(argv, yaml_config=False)
        config = SweepConfig.from_yaml(args.config, **{k: v for k, v in vars(args).items() if k != "config"})
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from w2s_hf.commands import start_accelerator

    accelerator = start_accelerator()
    try:
        out = run_teachers(config, accelerator=accelerator)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        if accelerator.is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        accelerator.end_training()  # every rank tears gloo down before it exits
    if accelerator.is_main_process:
        print(out["table"])
        print(f"wrote {Path(config.output_dir) / 'teachers.csv'}, teachers.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
