"""Tasks for weak-to-strong experiments: built-in essay and QSAR sets, your own tables, seeded splits.

    from w2s_hf.data import load_task
    task = load_task("esol", split="scaffold", seed=1)
    task.splits["weak_train"]        # datasets.Dataset with columns id, input, log_solubility

See `load_task` for the arguments and `BUILTIN_TASKS` for the sources and licences of built-in tasks.
"""

from w2s_hf.data.checks import TaskDataError
from w2s_hf.data.rows import EVAL_SPLITS, SPLIT_NAMES, TaskRows, canonical_inputs
from w2s_hf.data.sources import BUILTIN_TASKS, TaskSpec
from w2s_hf.data.tasks import W2STask, load_task

__all__ = ["load_task", "W2STask", "TaskDataError", "BUILTIN_TASKS", "TaskSpec", "SPLIT_NAMES", "EVAL_SPLITS",
           "TaskRows", "canonical_inputs"]
