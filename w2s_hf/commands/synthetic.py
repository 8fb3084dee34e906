"""The synthetic experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024): gain against misfit.

A random 5-layer ReLU MLP is the ground-truth representation; a deep (8-layer) and a shallow (2-layer)
MLP are pretrained on 10 tasks with the true heads frozen; on 100 downstream tasks a weak head is
fitted on gold labels, a w2s head on the weak head's labels, and gain = weak_error - w2s_error is
regressed on the misfit (the theorem's line is y = x). The reversal variant also sweeps samples per
pretraining task x epochs, and at each point makes the really better net (heads on gold labels) the
strong one. All three variants, protocol fast (the default: exact heads, batch 500, cosine lr):

    w2s synthetic --variants realizable pretrained reversal --output_dir runs/synthetic

The authors' notebook (final ReLU, batch 32, constant AdamW lr 1e-3, heads with bias, AdamW
downstream heads, misfit on its own sample; the module docstring lists every difference):

    w2s synthetic --protocol notebook --output_dir runs/synthetic_notebook

Seconds, for a smoke test (pretraining shrunk; the realizable slope is still ~1):

    w2s synthetic --quick --variants realizable --output_dir runs/synthetic_quick

Every setting is a flag (`--help`), e.g. `--seed 1 --epochs 300 --sweep_samples 10 20 --sweep_epochs
1000`. Output per variant in <output_dir>/<variant>/: tasks.csv (one row per task: weak_error,
w2s_error, misfit, gain, residual, ceiling_error, ... on fresh samples, fit_* on the fitted set),
results.json (slope, intercept and R^2 of gain on misfit with bootstrap intervals, pretraining losses,
which representation is better) and gain_vs_misfit.png; reversal/sweep.csv, sweep_tasks.csv and
sweep_gain_vs_misfit.png for the sweep; <output_dir>/summary.json holds the table printed at the end
and <output_dir>/gain_vs_misfit.png shows every variant.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from w2s_hf.experiments.synthetic import SyntheticConfig


@dataclass
class OutputArguments:
    output_dir: str = field(
        default="runs/synthetic", metadata={"help": "Folder for the results (one subfolder per variant)."}
    )


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser

    parser = W2SArgumentParser((SyntheticConfig, OutputArguments))
    try:
        config, out = parser.parse_args_and_config(argv)
    except ValueError as err:  # SyntheticConfig validates itself on construction
        print(f"error: {err}", file=sys.stderr)
        return 2

    from w2s_hf.experiments.synthetic import format_reversal_sweep, format_summary, run_synthetic

    start = time.perf_counter()
    results = run_synthetic(config, out.output_dir, progress=lambda line: print(line, flush=True))
    print(format_summary(results))
    reversal = results.get("reversal")
    if reversal is not None:
        gold = reversal["gold_head_error"]
        print(
            f"reversal: better representation (gold-label heads) = {reversal['better_representation']}; "
            f"mean gold error weak {gold['weak_representation']:.4g} vs strong {gold['strong_representation']:.4g}"
        )
        print(f"\nreversal sweep (protocol {config.protocol}):")
        print(format_reversal_sweep(reversal["sweep"]))
    print(f"results: {Path(out.output_dir).resolve()}  ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
