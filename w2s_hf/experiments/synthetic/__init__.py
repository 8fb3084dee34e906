"""The synthetic regression experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024).

    run.py   `SyntheticConfig`, `run_synthetic`, the reversal sweep, summaries
    nets.py  the ground-truth MLP, the deep and shallow representations and their pretraining
"""

from .run import SyntheticConfig, format_summary, format_sweep, run_sweep, run_synthetic

__all__ = ["SyntheticConfig", "format_summary", "format_sweep", "run_sweep", "run_synthetic"]
