"""QSAR ceilings of a representation: a ridge head fitted on gold labels, the number that ranks a family.

For each task, split kind and seed, a head on the representation is fitted on the gold labels of
`w2s_train` with the ridge chosen on `val`; its mean squared error is reported on `val` (which chose
the ridge, so it is optimistic) and on `test` (touched by nothing). This is the pipeline's
`ceiling_error`, computed without the rest of a run, so a whole family is ranked in seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TASKS = ("esol", "lipophilicity", "freesolv")


def _task_rows(task) -> tuple[list[str], dict[str, np.ndarray]]:
    """Sorted unique ids of the task and, per split, the positions of its rows in that order."""
    splits = ("weak_train", "w2s_train", "val", "test")
    pairs = sorted({str(i): t for s in splits for i, t in zip(task.splits[s]["id"], task.splits[s]["input"])}.items())
    position = {i: k for k, (i, _) in enumerate(pairs)}
    index = {s: np.array([position[str(i)] for i in task.splits[s]["id"]]) for s in splits}
    return [t for _, t in pairs], index


def qsar_ceilings(model: str, *, tasks: Sequence[str] = DEFAULT_TASKS, splits: Sequence[str] = ("scaffold", "random"),
                  seeds: Sequence[int] = (0, 1, 2), layer: int = -1, pooling: str = "mean",
                  cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per (task, split, seed): {"task", "split", "seed", "ridge", "val", "test"} (mean over targets)."""
    from ..config import default_cache_dir
    from ..data import load_task
    from ..features import build_representation
    from ..heads import SufficientStats, select_ridge

    cache = os.path.join(cache_dir or default_cache_dir(), "features")
    rep = build_representation(model, layer=layer, pooling=pooling)
    rows = []
    for name in tasks:
        features = None
        for split in splits:
            for seed in seeds:
                task = load_task(name, split=split, seed=seed)
                texts, index = _task_rows(task)
                if features is None:  # the row order is split-independent: one extraction per task
                    features = np.asarray(rep.encode(texts, cache_dir=cache, show_progress=False))
                gold = {s: np.stack([np.asarray(task.splits[s][t], float) for t in task.targets], 1) for s in index}
                stats = SufficientStats.from_arrays(features[index["w2s_train"]], gold["w2s_train"])
                ridge, head, _ = select_ridge(stats, features[index["val"]], gold["val"])
                err = {s: float(np.mean((head.predict(features[index[s]]).reshape(gold[s].shape) - gold[s]) ** 2))
                       for s in ("val", "test")}
                rows.append({"task": name, "split": split, "seed": seed, "ridge": float(ridge), **err})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean val and test ceiling per (task, split) over seeds: {"esol/scaffold": {"val": .., "test": ..}}."""
    out: dict[str, dict[str, float]] = {}
    for key in sorted({(r["task"], r["split"]) for r in rows}):
        sel = [r for r in rows if (r["task"], r["split"]) == key]
        out["/".join(key)] = {s: float(np.mean([r[s] for r in sel])) for s in ("val", "test")}
    return out


def evaluate_checkpoints(folder: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """QSAR ceilings of a pretrained folder; written to `ceilings.json` and into its model card."""
    from .card import write_model_card

    folder = Path(folder)
    rows = qsar_ceilings(str(folder), **kwargs)
    result = {"rows": rows, "mean": summarise(rows)}
    (folder / "ceilings.json").write_text(json.dumps(result, indent=1) + "\n")
    summary_path = folder / "pretraining.json"
    if summary_path.is_file():
        write_model_card(folder, json.loads(summary_path.read_text()), result)
    return result["mean"]


def family_table(results: dict[str, dict[str, dict[str, float]]], split: str = "test") -> str:
    """Markdown table of mean ceilings: {model: summarise(...)} -> one row per model, a column per task/split."""
    keys = sorted({k for r in results.values() for k in r})
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for model, means in results.items():
        cells = [f"{means[k][split]:.3f}" if k in means else "–" for k in keys]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
