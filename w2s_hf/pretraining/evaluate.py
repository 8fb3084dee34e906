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


def qsar_ceilings(model: str, *, tasks: Sequence[str] = DEFAULT_TASKS, splits: Sequence[str] = ("scaffold", "random"),
                  seeds: Sequence[int] = (0, 1, 2), layer: int = -1, pooling: str = "mean",
                  cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per (task, split, seed): {"task", "split", "seed", "ridge", "val", "test"} (mean over targets)."""
    from ..data import load_task
    from ..data.rows import TaskRows
    from ..features import build_representation
    from ..features.cache import default_cache_dir
    from ..heads import fit_ridge
    from ..pipeline.protocol import HEADS

    cache = os.path.join(cache_dir or default_cache_dir(), "features")
    rep = build_representation(model, layer=layer, pooling=pooling)
    fits_on_rows = getattr(rep, "fits_on_rows", False)
    out = []
    for name in tasks:
        for split in splits:
            for seed in seeds:
                data = TaskRows.of(load_task(name, split=split, seed=seed))
                # the canonical row order is split-independent: one extraction per task, then cache hits;
                # a featurizer that scales its values does so on the run's training rows, as in the pipeline
                fit = {"fit_rows": data.positions({s.train_split for s in HEADS.values()})} if fits_on_rows else {}
                features = np.asarray(rep.encode(data.canonical_texts, cache_dir=cache, show_progress=False, **fit))
                rows = {s: features[data.index[s]] for s in ("w2s_train", "val", "test")}
                head, record = fit_ridge(rows["w2s_train"], data.gold["w2s_train"], rows["val"], data.gold["val"])
                err = {s: float(np.mean((head.predict(rows[s]).reshape(data.gold[s].shape) - data.gold[s]) ** 2))
                       for s in ("val", "test")}
                out.append({"task": name, "split": split, "seed": seed, "ridge": record["ridge"], **err})
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean val and test ceiling per (task, split) over seeds: {"esol/scaffold": {"val": .., "test": ..}}."""
    out: dict[str, dict[str, float]] = {}
    for key in sorted({(r["task"], r["split"]) for r in rows}):
        sel = [r for r in rows if (r["task"], r["split"]) == key]
        out["/".join(key)] = {s: float(np.mean([r[s] for r in sel])) for s in ("val", "test")}
    return out


def evaluate_checkpoints(folder: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """QSAR ceilings of a pretrained folder; written to `ceilings.json` and into its model card."""
    from ..atomic import write_json_atomic
    from .card import write_model_card

    folder = Path(folder)
    rows = qsar_ceilings(str(folder), **kwargs)
    result = {"rows": rows, "mean": summarise(rows)}
    write_json_atomic(folder / "ceilings.json", result)
    summary_path = folder / "pretraining.json"
    if summary_path.is_file():
        write_model_card(folder, json.loads(summary_path.read_text()), result)
    return result["mean"]


def family_table(folders: Sequence[str | os.PathLike], reference: dict[str, Any] | None = None) -> str:
    """The family table of docs/pretraining.md: size, objective, budget, final losses and mean val / test ceilings.

    `folders` are evaluated pretrained folders (`pretraining.json` and `ceilings.json`); a continued model's
    passes and time are its own run's, and its row names the model it continues. `reference`
    is {"name", "mean"} of another representation's ceilings (e.g. rdkit:descriptors), as a last row.
    """
    keys = ["esol/scaffold", "esol/random", "lipophilicity/scaffold", "lipophilicity/random", "freesolv/scaffold",
            "freesolv/random"]
    head = "| model | parameters | objective | passes | train time | val MLM / MTR loss | "
    lines = [head + " | ".join(f"{k} val / test" for k in keys) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(keys)]
    cells = lambda means: " | ".join(f"{means[k]['val']:.3f} / {means[k]['test']:.3f}" for k in keys)  # noqa: E731
    for folder in map(Path, folders):
        summary = json.loads((folder / "pretraining.json").read_text())
        means, final = json.loads((folder / "ceilings.json").read_text())["mean"], summary["final"]
        mtr = f"{final['val_mtr_loss']:.3f}" if final.get("val_mtr_loss") else "–"
        start = (summary.get("init_from") or {}).get("name")
        label = f"`{folder.name}`" + (f" (continues `{start.removeprefix('packaged:')}`)" if start else "")
        lines.append(f"| {label} | {summary['parameters'] / 1e6:.2f} M | {summary['config']['objective']} | "
                     f"{summary['epochs']:.0f} | {summary['train_runtime_s'] / 60:.0f} min | "
                     f"{final['val_mlm_loss']:.3f} / {mtr} | {cells(means)} |")
    if reference is not None:
        lines.append(f"| `{reference['name']}` (reference) | – | – | – | – | – | {cells(reference['mean'])} |")
    return "\n".join(lines)
