"""The run folder: where each artifact lives, how it is written (atomically) and read back.

    run_config.json                      the config (and data fingerprint) that made the folder
    stages.json                          per stage: the identity it was made under, and its seconds
    features.json                        fingerprints and sizes of the weak / strong features
    heads/<head>.safetensors (+ .json)   a fitted head and its record (ridge, validation curve)
    heads/<head>/                        a LoRA student: its peft folder (`save_pretrained`), + heads/<head>.json
    predictions/<head>.csv               id, split and one column per target, every split
    results.json, decomposition.png      the evaluation
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_json_atomic
from ..data.rows import SPLIT_NAMES
from ..errors import ConfigError


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "run_config.json"
        self.features = self.root / "features.json"
        self.results = self.root / "results.json"
        self.plot = self.root / "decomposition.png"
        self.stamps = self.root / "stages.json"

    def head(self, name: str) -> Path:
        return self.root / "heads" / f"{name}.safetensors"

    def adapter(self, name: str) -> Path:
        return self.root / "heads" / name

    def head_record(self, name: str) -> Path:
        return self.root / "heads" / f"{name}.json"

    def predictions(self, name: str) -> Path:
        return self.root / "predictions" / f"{name}.csv"

    # ------------------------------------------------------------------ config identity
    def check_config(self, identity: dict[str, Any], overwrite: bool) -> None:
        """Refuse to mix artifacts of two different configs (or data) in one folder (unless overwriting)."""
        if self.config.exists() and not overwrite:
            previous = self.read_json(self.config, {})
            previous = previous if isinstance(previous, dict) else {}
            changed = sorted(k for k in set(identity) | set(previous) if identity.get(k) != previous.get(k))
            if changed:
                diff = "; ".join(f"{k}: {previous.get(k)!r} -> {identity.get(k)!r}" for k in changed)
                raise ConfigError(
                    f"{self.root} holds a run made with a different config, data or model ({diff}). "
                    "Use another --output_dir, or --overwrite to redo it."
                )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one run; a second run on it is refused at once (flock: freed if we die)."""
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".run.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            message = f"{self.root} is in use by another run; wait for it or use another --output_dir."
            raise ConfigError(message) from None
        try:
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------------ stage stamps
    def read_stamps(self) -> dict[str, Any]:
        stamps = self.read_json(self.stamps, {})
        return stamps if isinstance(stamps, dict) else {}

    def stamp(self, stage: str, identity_hash: str, seconds: float, processes: int = 1) -> None:
        """Record that `stage`'s artifacts were made under `identity_hash` (written after them)."""
        stamps = self.read_stamps()
        stamps[stage] = {"identity": identity_hash, "seconds": seconds, "processes": processes}
        self.write_json(self.stamps, stamps)

    def stage_is_current(self, stage: str, identity_hash: str) -> bool:
        record = self.read_stamps().get(stage)
        return isinstance(record, dict) and record.get("identity") == identity_hash

    # ------------------------------------------------------------------ reading and writing
    @staticmethod
    def write_json(path: Path, obj: Any) -> None:
        write_json_atomic(path, obj, strict=False)

    @staticmethod
    def read_json(path: Path, default: Any = None) -> Any:
        try:
            return json.loads(path.read_text()) if path.exists() else default
        except ValueError:
            return default

    def read_results(self) -> dict[str, Any] | None:
        """results.json if it is a complete record (an object with its splits), else None: a missing,
        truncated or foreign file is an unmade evaluation, redone like a corrupt cache entry."""
        results = self.read_json(self.results)
        if not isinstance(results, dict) or not isinstance(results.get("splits"), dict) or not results["splits"]:
            return None
        return results if all(isinstance(v, dict) for v in results["splits"].values()) else None

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
