"""The pipeline layer: one weak-to-strong run as named stages over a run folder.

    run.py         `W2SPipeline`, `run_w2s`: extract -> train_weak -> label -> train_w2s ->
                   train_ceiling -> evaluate, each stage writing its artifact
    protocol.py    `PROTOCOL`: one row per head (features, training split and labels, selection)
    run_folder.py  `RunFolder`: artifact paths, predictions CSV, the config refusal, the lock, stamps
"""

from __future__ import annotations

import importlib
from typing import Any

from .protocol import HEADS, PROTOCOL, STAGES, HeadSpec, active_heads, teacher_of
from .run_folder import RunFolder

__all__ = ["HEADS", "PROTOCOL", "STAGES", "HeadSpec", "RunFolder", "W2SPipeline", "active_heads", "run_w2s",
           "teacher_of"]


def __getattr__(name: str) -> Any:
    # run.py imports torch-free but heavy modules (data, features): loaded on first use
    if name in ("W2SPipeline", "run_w2s"):
        return getattr(importlib.import_module(".run", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
