"""`datasets` as the data layer's front door: a Hub dataset (`hf:<path>`) or a `save_to_disk` folder as a table.

    frame, where = read_dataset("hf:allenai/sciq", revision="main", split_map={"train": "train", "test": "test"})

The dataset's splits become one pandas table, so every check a task file gets (missing column, NaN or
unknown label, empty text, duplicate ids, empty split) runs on it unchanged, with `where` ("hf:allenai/sciq
(config ..., revision ...)") in place of a file name. With a split map the rows keep the split they came
from in the column `SPLIT_COLUMN`: its values are our split names (`weak_train`, `w2s_train`, `val`,
`test`) or `train`, the training part that the seeded weak/w2s division shares out. Without one, every
split is pooled and the task's seeded random split applies, as for a file.

Offline (HF_DATASETS_OFFLINE=1 or HF_HUB_OFFLINE=1), a dataset missing from the cache fails at once
with the command that caches it; nothing is downloaded behind the user's back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks import TaskDataError
from .rows import SPLIT_NAMES

HF_PREFIX = "hf:"
SPLIT_COLUMN = "__split__"
TRAIN_PART = "train"  # a dataset split mapped here is divided into weak_train / w2s_train by weak_fraction
MAPPABLE = (*SPLIT_NAMES, TRAIN_PART)


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """True for a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    folder = Path(path)
    return folder.is_dir() and any((folder / f).exists() for f in ("dataset_dict.json", "state.json"))


def is_dataset_source(name: str | os.PathLike) -> bool:
    """A name the front door reads: `hf:<path>` or a `save_to_disk` folder."""
    return str(name).startswith(HF_PREFIX) or is_saved_dataset(name)


def parse_split_map(entries: Mapping[str, str] | Sequence[str] | None) -> dict[str, str] | None:
    """{their split: ours} from a dict or from "theirs=ours" strings (the command line's form)."""
    if entries is None:
        return None
    if isinstance(entries, Mapping):
        pairs = dict(entries)
    else:
        pairs = {}
        for entry in entries:
            theirs, sep, ours = str(entry).partition("=")
            if not sep or not theirs.strip() or not ours.strip():
                raise TaskDataError(f"split_map entry {entry!r} must read THEIR_SPLIT=OUR_SPLIT, e.g. validation=val")
            pairs[theirs.strip()] = ours.strip()
    bad = {k: v for k, v in pairs.items() if v not in MAPPABLE}
    if bad or not pairs:
        raise TaskDataError(f"split_map {pairs} maps to {sorted(set(bad.values()))}: each dataset split must map to "
                            f"one of {', '.join(MAPPABLE)} ('train' is divided into weak_train and w2s_train)")
    return pairs


def describe(name: str, config_name: str | None = None, revision: str | None = None) -> str:
    """How messages name a dataset: its path with config and revision."""
    extra = [f"config {config_name!r}" if config_name else "", f"revision {revision!r}" if revision else ""]
    extra = [e for e in extra if e]
    return f"{name} ({', '.join(extra)})" if extra else str(name)


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def cache_command(path: str, config_name: str | None, revision: str | None, data_files: Any) -> str:
    """The command that puts this dataset into the local cache (run once with network)."""
    args = [repr(path)] + ([repr(config_name)] if config_name else [])
    args += [f"revision={revision!r}"] if revision else []
    args += [f"data_files={data_files!r}"] if data_files else []
    return f"HF_DATASETS_OFFLINE=0 python -c \"import datasets; datasets.load_dataset({', '.join(args)})\""


def load_dataset_dict(name: str, *, config_name: str | None = None, revision: str | None = None,
                      data_files: Any = None) -> tuple[Any, str]:
    """(DatasetDict, where) for `hf:<path>` (Hub id or local Hub-like folder) or a save_to_disk folder."""
    import datasets

    if is_saved_dataset(name) and not str(name).startswith(HF_PREFIX):
        if config_name or revision or data_files:
            raise TaskDataError(f"{name}: a save_to_disk folder has no config, revision or data_files; drop them")
        loaded = datasets.load_from_disk(str(name))
        where = f"{name} (save_to_disk folder)"
        return (loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})), where
    path = str(name)[len(HF_PREFIX):] if str(name).startswith(HF_PREFIX) else str(name)
    if not path.strip():
        raise TaskDataError(f"{name!r}: give a dataset after 'hf:', e.g. hf:allenai/sciq or hf:./my_folder")
    where = describe(f"hf:{path}", config_name, revision)
    try:
        loaded = datasets.load_dataset(path, config_name, revision=revision, data_files=data_files)
    except (ConnectionError, FileNotFoundError) as exc:
        if _offline() and not Path(path).exists():
            raise TaskDataError(f"{where} is not in the datasets cache ({datasets.config.HF_DATASETS_CACHE}) and "
                                f"the Hub is offline; cache it once with network: "
                                f"{cache_command(path, config_name, revision, data_files)}", path=where) from exc
        raise TaskDataError(f"{where}: cannot be loaded: {exc}", path=where) from exc
    except ValueError as exc:  # unknown config or split names: datasets lists the choices
        raise TaskDataError(f"{where}: {exc}", path=where) from exc
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded, where


def read_dataset(name: str, *, config_name: str | None = None, revision: str | None = None, data_files: Any = None,
                 split_map: Mapping[str, str] | Sequence[str] | None = None) -> tuple[Any, str]:
    """(pandas table, where): the mapped splits (all splits without a map) stacked, one row per example.

    With a split map the table has `SPLIT_COLUMN` (our split or `train` per row); rows are numbered 1..n in
    the stacked order, which messages use as row numbers.
    """
    import pandas as pd

    mapping = parse_split_map(split_map)
    loaded, where = load_dataset_dict(name, config_name=config_name, revision=revision, data_files=data_files)
    chosen = list(loaded) if mapping is None else list(mapping)
    missing = [s for s in chosen if s not in loaded]
    if missing:
        raise TaskDataError(f"{where}: split(s) {missing} not found; the dataset has {list(loaded)}. "
                            "Fix split_map=...", path=where)
    frames = []
    for split in chosen:
        if loaded[split].num_rows == 0:
            raise TaskDataError(f"{where}: split {split!r} is empty; map another split or drop it", path=where)
        frame = loaded[split].to_pandas()
        if mapping is not None:
            frame[SPLIT_COLUMN] = mapping[split]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame.columns = [str(c) for c in frame.columns]
    if mapping is not None and len(set(mapping.values()) & {"weak_train", "w2s_train", TRAIN_PART}) == 0:
        raise TaskDataError(f"{where}: split_map {mapping} gives no training rows: map a split to 'train'",
                            path=where)
    return frame, f"{where} [{', '.join(chosen)}]"


def mapped_splits(assigned: Sequence[str], seed: int, weak_fraction: float) -> dict[str, Any]:
    """Row positions of our four splits from each row's mapped split (`SPLIT_COLUMN`).

    Rows mapped to `train` are divided into weak_train / w2s_train by the seeded weak/w2s division; a val or
    test split that the map does not give is carved from them first (a tenth each, as in the 80/10/10 random split),
    so a dataset with only train and test still yields four splits.
    """
    import numpy as np

    from .splits import random_split, weak_w2s_split

    labels = np.asarray(list(assigned), dtype=object)
    rows = {name: np.flatnonzero(labels == name) for name in MAPPABLE}
    train = rows[TRAIN_PART]
    carve = [s for s in ("val", "test") if not len(rows[s])]
    if carve and len(train):
        fractions = (0.8, 0.1 if "val" in carve else 0.0, 0.1 if "test" in carve else 0.0)
        parts = random_split(len(train), seed, fractions)
        for name in carve:
            rows[name] = train[parts[name]]
        train = train[parts["train"]]
    divided = weak_w2s_split(train, weak_fraction, seed) if len(train) else {"weak_train": train, "w2s_train": train}
    return {name: np.sort(np.concatenate([rows[name], divided.get(name, train[:0])])).astype(np.int64)
            if name in ("weak_train", "w2s_train") else np.sort(rows[name]).astype(np.int64) for name in SPLIT_NAMES}
