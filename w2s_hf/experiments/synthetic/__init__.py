"""The synthetic regression experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024).

    run.py   `SyntheticConfig`, `run_synthetic`, tasks, heads (exact or AdamW), the reversal sweep, summaries
    nets.py  the ground-truth MLP, the deep and shallow representations and their pretraining
"""

from .nets import build_mlp, draw_heads, features, fit_heads_adamw, pretrain, pretrain_notebook
from .run import (
    Representations,
    SyntheticConfig,
    evaluate_tasks,
    format_summary,
    format_sweep,
    head_solver,
    run_sweep,
    run_synthetic,
    task_sample,
)

__all__ = ["Representations", "SyntheticConfig", "build_mlp", "draw_heads", "evaluate_tasks", "features",
           "fit_heads_adamw", "format_summary", "format_sweep", "head_solver", "pretrain", "pretrain_notebook",
           "run_sweep", "run_synthetic", "task_sample"]
