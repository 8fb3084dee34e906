"""Sweep weak models x split seeds against one strong model: the paper's gain-vs-misfit panels.

Each point is one ordinary weak-to-strong run (the library behind scripts/train_w2s.py), cached
features are shared between runs, and the sweep writes sweep.csv, sweep.json (fit of gain on misfit,
weak-model selection and its regret, every representation's ceiling on val) and misfit_vs_gain.png.

    accelerate launch --config_file accelerate_configs/cpu_2proc.yaml scripts/sweep.py \
        --config scripts/configs/esol_scaffold.yaml
    python scripts/sweep.py --config scripts/configs/esol_scaffold.yaml --swap_roles --output_dir runs/esol_swap
    python scripts/sweep.py --config scripts/configs/ellipse.yaml --task_path ../shared/data/ellipse/train.csv

Flags given here override the YAML file's values.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from w2s_hf.config import ConfigError


@dataclass
class SweepArguments:
    config: str = field(metadata={"help": "Sweep YAML file (see scripts/configs/)."})
    output_dir: str | None = field(default=None, metadata={"help": "Override the YAML's output_dir."})
    cache_dir: str | None = field(default=None, metadata={"help": "Feature cache folder."})
    task_path: str | None = field(default=None, metadata={"help": "Data file for tasks that need one (ellipse)."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Override the split seeds."})
    swap_roles: bool | None = field(
        default=None, metadata={"help": "Also train each weak model on the strong model's labels."}
    )
    n_boot: int | None = field(default=None, metadata={"help": "Bootstrap resamples per run (0 = none)."})


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser
    from w2s_hf.experiments.sweep import SweepConfig, run_sweep

    try:
        # --config is the sweep's own YAML (weak_models, head, ...), read by SweepConfig
        (args,) = W2SArgumentParser(SweepArguments).parse_args_and_config(argv, yaml_config=False)
        config = SweepConfig.from_yaml(args.config, **{k: v for k, v in vars(args).items() if k != "config"})
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    logging.basicConfig(
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        summary = run_sweep(config, accelerator=accelerator)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        if accelerator.is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        # tear the process group down on every rank: a rank that exits while gloo's threads still
        # run can abort ("terminate called without an active exception")
        accelerator.end_training()
    if accelerator.is_main_process:
        from w2s_hf.experiments.sweep_report import format_sweep_summary

        print("\n" + format_sweep_summary(summary, Path(config.output_dir) / "sweep.csv"))
        print(f"wrote {Path(config.output_dir) / 'sweep.csv'}, sweep.json, misfit_vs_gain.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
