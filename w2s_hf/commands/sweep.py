"""Sweep weak models x split seeds against one strong model: the paper's gain-vs-misfit panels.

Each point is one ordinary weak-to-strong run (the library behind w2s run), cached
features are shared between runs, and the sweep writes sweep.csv, sweep.json (fit of gain on misfit,
weak-model selection and its regret, every representation's ceiling on val) and misfit_vs_gain.png.

    w2s sweep --accelerate_config accelerate_configs/cpu_2proc.yaml \
        --config scripts/configs/sweep/esol_scaffold.yaml
    w2s sweep --config scripts/configs/sweep/esol_scaffold.yaml --swap_roles --output_dir runs/esol_swap
    w2s sweep --config scripts/configs/sweep/ellipse.yaml --task_path path/to/ellipse/train.csv
    w2s sweep --config scripts/configs/sweep/esol_random_smiles.yaml --ridge theorem --seeds 0 1

A sweep config is a run config (every key of train_w2s.py) plus its axes (weak_models, seeds, weak_budgets,
swap_roles, eval_split, name); flags given here override the YAML file's values, as for train_w2s.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from w2s_hf.config import ConfigError
from w2s_hf.errors import DiskFullError


def parse(argv: list[str] | None = None):
    """`--config sweep.yaml` plus any run key or axis as a flag (`--seeds 0 1 --ridge theorem`), by the one parser."""
    import dataclasses

    from w2s_hf.config import W2SArgumentParser
    from w2s_hf.config.sweep import SWEEP_CLASSES, SweepConfig

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not {"-h", "--help"} & set(argv):
        raise ConfigError("w2s sweep needs --config sweep.yaml (see scripts/configs/sweep/).")
    # --help prints and exits inside the parser, which also checks that a path follows --config
    parts = W2SArgumentParser(SWEEP_CLASSES, prog="w2s sweep").parse_args_and_config(argv)
    source = argv[argv.index("--config") + 1]
    values = {k: v for part in parts for k, v in dataclasses.asdict(part).items()}
    return SweepConfig.from_dict(values, source=source)


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.experiments.sweep import run_sweep

    try:
        config = parse(argv)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from w2s_hf.commands import start_accelerator

    accelerator = start_accelerator()
    try:
        summary = run_sweep(config, accelerator=accelerator)
    except (ConfigError, ValueError, FileNotFoundError, DiskFullError) as err:
        if accelerator.is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 1 if isinstance(err, DiskFullError) else 2
    finally:
        # tear the process group down on every rank: a rank that exits while gloo's threads still
        # run can abort ("terminate called without an active exception")
        accelerator.end_training()
    if accelerator.is_main_process:
        from w2s_hf.experiments.sweep_report import format_sweep_summary

        print("\n" + format_sweep_summary(summary, Path(config.output_dir) / "sweep.csv"))
        figures = "misfit_vs_gain.png" + (", scaling_vs_n.png" if len(config.sizes) > 1 else "")
        print(f"wrote {Path(config.output_dir) / 'sweep.csv'}, sweep.json, {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
