"""Tasks for weak-to-strong experiments: built-in essay and QSAR sets, your own tables, seeded splits.

    from w2s_hf.data import load_task
    task = load_task("esol", split="scaffold", seed=1)
    task.splits["weak_train"]        # datasets.Dataset with columns id, input, log_solubility

See `load_task` for the arguments and `BUILTIN_TASKS` for the sources and licences of built-in tasks.
`kinds.py` (what a target is: `TASK_KINDS`) and `rows.py` (split names) are light; the rest imports
pandas, so names are loaded on first use.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "TaskDataError": "checks", "EVAL_SPLITS": "rows", "SPLIT_NAMES": "rows", "TaskRows": "rows",
    "canonical_inputs": "rows", "BUILTIN_TASKS": "sources", "TaskSpec": "sources", "W2STask": "rows",
    "load_task": "tasks", "TASK_KINDS": "kinds", "TASK_TYPES": "kinds", "TaskKind": "kinds",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
