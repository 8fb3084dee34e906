"""The hooks layer: what happens at every evaluation point of a run.

    evaluation.py  `evaluate_point` (decompose, then call the hooks), `TrackerHook` (accelerate
                   trackers), `JsonResultsHook` (results.json, atomically), `TableHook`, `PlotHook`,
                   `metric_path` (the `evaluate` metric module under metrics/)
    callbacks.py   `MisfitCallback`: the decomposition inside a `transformers.Trainer`
    plots.py       `plot_misfit_vs_gain` and the sweep figures
    scaling_plot.py  `plot_scaling`: errors against the training rows N, log-log, with fitted power laws

`callbacks` imports transformers, so it is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .evaluation import (
    EvalHook,
    JsonResultsHook,
    PlotHook,
    TableHook,
    TrackerHook,
    evaluate_point,
    format_table,
    metric_path,
)
from .plots import plot_misfit_vs_gain

__all__ = ["EvalHook", "JsonResultsHook", "MisfitCallback", "PlotHook", "TableHook", "TrackerHook",
           "evaluate_point", "format_table", "metric_path", "plot_misfit_vs_gain"]


def __getattr__(name: str) -> Any:
    if name == "MisfitCallback":
        return importlib.import_module(".callbacks", __name__).MisfitCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
