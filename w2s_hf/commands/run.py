"""`w2s run`: one weak-to-strong run with the misfit decomposition (Charikar, Pabbaraju & Shiragur, NeurIPS 2024).

A weak head is fitted on frozen weak-model features and gold labels; a strong head is fitted on frozen
strong-model features and the weak head's labels only; a ceiling head on the strong features and gold
labels. The run prints, per split, weak_error, w2s_error, misfit, gain = weak_error - w2s_error and
residual = gain - misfit (>= 0 by the theorem for a convex strong class; 0 for a subspace), then why the
residual is what it is: its exact split into a finite-sample and a non-realizability term, their bounds,
every quantity with the ceiling as the truth, and one line per split (docs/diagnostics.md).

The default works offline after the README's install command: ESOL (scaffold split, seed 0), weak =
packaged:smiles-bert-h64-l2-mtr, strong = packaged:smiles-bert-h192-l4-mtr (SMILES transformers that
w2s_hf pretrained and ships), here on two CPU processes:

    w2s run --accelerate_config accelerate_configs/cpu_2proc.yaml
    accelerate launch --config_file accelerate_configs/cpu_2proc.yaml -m w2s_hf run    # the same

Other runs (flags override the YAML file given with --config; `w2s run --help` lists every key):

    w2s run --task my_data.csv --input_column text --target_columns score --split random \
        --weak_model packaged:all-MiniLM-L6-v2 --strong_model packaged:all-mpnet-base-v2 --output_dir runs/mine
    w2s run --num_processes 2 --task lipophilicity --split random --split_seed 1 --weak_layer 3 \
        --output_dir runs/lipo_l3
    w2s run --config scripts/configs/run/esol_default.yaml --solver adamw
    w2s run --stages train_w2s evaluate --overwrite   # redo two stages only

Artifacts in --output_dir: heads (safetensors), predictions per split (CSV with ids), results.json
(schema in docs/usage/running.md), decomposition.png and tensorboard logs under logs/.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from w2s_hf.config import ConfigError, parse_config
from w2s_hf.errors import DiskFullError


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv, prog="w2s run")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from accelerate.utils import set_seed

    from w2s_hf.commands import start_accelerator
    from w2s_hf.pipeline import W2SPipeline

    report_to = None if config.run.report_to in ("none", "") else config.run.report_to
    accelerator = start_accelerator(log_with=report_to, project_dir=os.path.join(config.run.output_dir, "logs"))
    set_seed(config.run.seed)
    start = time.perf_counter()
    try:
        try:
            pipeline = W2SPipeline(config, accelerator=accelerator)
        except (ValueError, FileNotFoundError, OSError) as err:
            # Bad task file, column, target or model: reported before any extraction starts.
            if accelerator.is_main_process:
                print(f"error: {err}", file=sys.stderr)
            return 2
        if report_to:
            accelerator.init_trackers(
                "w2s", config={k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
            )
        try:
            results = pipeline.run()
        except (ConfigError, DiskFullError) as err:
            # a folder in use by another run, a full disk: one line, not a traceback
            if accelerator.is_main_process:
                print(f"error: {err}", file=sys.stderr)
            return 2 if isinstance(err, ConfigError) else 1
    finally:
        accelerator.end_training()  # trackers closed, process group torn down, on every exit path
    if accelerator.is_main_process:
        print(f"\nresults: {Path(config.run.output_dir) / 'results.json'}  ({time.perf_counter() - start:.1f} s)")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
