"""The run folder: where each artifact lives, how it is written (atomically) and read back.

    run_config.json                      the config that made the folder (a different one is refused)
    features.json                        fingerprints and sizes of the weak / strong features
    heads/<head>.safetensors (+ .json)   a fitted head and its record (ridge, validation curve)
    predictions/<head>.csv               id, split and one column per target, every split
    results.json, decomposition.png      the evaluation
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_json_atomic
from .config import ConfigError
from .data.rows import SPLIT_NAMES


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "run_config.json"
        self.features = self.root / "features.json"
        self.results = self.root / "results.json"
        self.plot = self.root / "decomposition.png"

    def head(self, name: str) -> Path:
        return self.root / "heads" / f"{name}.safetensors"

    def head_record(self, name: str) -> Path:
        return self.root / "heads" / f"{name}.json"

    def predictions(self, name: str) -> Path:
        return self.root / "predictions" / f"{name}.csv"

    # ------------------------------------------------------------------ config identity
    def check_config(self, identity: dict[str, Any], overwrite: bool) -> None:
        """Refuse to mix artifacts of two different configs in one folder (unless overwriting)."""
        if self.config.exists() and not overwrite:
            previous = json.loads(self.config.read_text())
            changed = sorted(k for k in set(identity) | set(previous) if identity.get(k) != previous.get(k))
            if changed:
                raise ConfigError(
                    f"{self.root} holds a run made with a different config (changed: {', '.join(changed)}). "
                    "Use another --output_dir, or --overwrite to redo it."
                )

    # ------------------------------------------------------------------ reading and writing
    @staticmethod
    def write_json(path: Path, obj: Any) -> None:
        write_json_atomic(path, obj, strict=False)

    @staticmethod
    def read_json(path: Path, default: Any = None) -> Any:
        return json.loads(path.read_text()) if path.exists() else default

    def write_predictions(self, name: str, ids: list[str], splits: list[str], preds: np.ndarray,
                          targets: list[str]) -> None:
        # floats as repr: they read back bit for bit
        with atomic_path(self.predictions(name)) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "split", *targets])
            for i, s, row in zip(ids, splits, preds):
                writer.writerow([i, s, *(repr(float(v)) for v in row)])

    def read_predictions(self, name: str, ids: dict[str, list[str]], targets: list[str]) -> dict[str, np.ndarray]:
        """{split: (n, k) predictions} from predictions/<name>.csv, rows in the order of `ids[split]`."""
        path = self.predictions(name)
        with open(path, newline="") as fh:
            table = {(r["split"], r["id"]): [float(r[t]) for t in targets] for r in csv.DictReader(fh)}
        out = {}
        for split in SPLIT_NAMES:
            try:
                rows = [table[(split, i)] for i in ids[split]]
            except KeyError as err:
                raise RuntimeError(f"{path} has no prediction for id {err.args[0][1]!r} of {split}: "
                                   "rerun with --overwrite.") from None
            out[split] = np.array(rows, dtype=np.float64).reshape(-1, len(targets))
        return out
