"""The synthetic regression experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024).

    config.py           `SyntheticConfig`: variants, protocols (fast, notebook), defaults, random streams
    nets.py             the ground-truth MLP, the deep and shallow representations, their pretraining
    representations.py  `Representations`: the truth and the pretrained nets of one run, cached by setting
    tasks.py            downstream tasks: samples, exact or AdamW heads, per-task decompositions
    sweep.py            the reversal sweep over samples per task x epochs
    run.py              `run_synthetic`: every variant, files, figures and the summary table
"""

from .config import SyntheticConfig, head_solver
from .nets import build_mlp, draw_heads, features, fit_heads_adamw, pretrain, pretrain_notebook
from .representations import Representations
from .run import format_summary, run_synthetic
from .sweep import format_reversal_sweep, run_reversal_sweep
from .tasks import evaluate_tasks, task_sample

__all__ = ["Representations", "SyntheticConfig", "build_mlp", "draw_heads", "evaluate_tasks", "features",
           "fit_heads_adamw", "format_reversal_sweep", "format_summary", "head_solver", "pretrain",
           "pretrain_notebook", "run_reversal_sweep", "run_synthetic", "task_sample"]
