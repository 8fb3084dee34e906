"""Class labels for classification tasks: parsing, the class list, and stratified splits.

A classification task has one label column. Its values are classes as they stand (integers, strings,
or ELLIPSE's score levels 1.0, 1.5, ..., 5.0), or a numeric column cut at a `threshold` into two
classes (`<t` and `>=t`, as ADMET benchmarks binarise solubility or lipophilicity). The class list is
that of the training rows (weak_train and w2s_train), sorted numerically when every class is a
number; a class that appears only in val or test is an error, since no head could predict it.
Gold labels are stored as class indices (float64, like regression targets) and the names in
`W2STask.classes`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s_hf.data.checks import TaskDataError, format_rows, is_missing
from w2s_hf.data.splits import FRACTIONS, rng_for

_STREAM_STRATIFIED, _STREAM_STRATIFIED_WEAK = 2, 3


def parse_labels(frame: pd.DataFrame, column: str, path: Path) -> list[str]:
    """Column `column` as class names, or an error listing rows whose label is missing.

    Numbers are written canonically (3, 3.0 and "3.0" are one class, "3"), so a CSV's 3.5 and a
    JSON file's 3.5 name the same class.
    """
    raw = frame[column].tolist()
    missing = [i for i, v in enumerate(raw) if is_missing(v) or (isinstance(v, str) and not v.strip())]
    if missing:
        raise TaskDataError(
            f"{path}: label column {column!r} has missing / empty values in "
            f"{format_rows([i + 1 for i in missing], [raw[i] for i in missing])}. Every row needs a class: "
            "fix or remove these rows.",
            path=path, column=column, rows=[i + 1 for i in missing],
        )
    return [_class_name(v) for v in raw]


def threshold_labels(values: np.ndarray, threshold: float) -> list[str]:
    """Two classes of a numeric target: `<t` below the threshold, `>=t` at or above it."""
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    low, high = binary_class_names(threshold)
    return [high if v >= threshold else low for v in np.asarray(values, dtype=np.float64)]


def binary_class_names(threshold: float) -> tuple[str, str]:
    return f"<{threshold:g}", f">={threshold:g}"


def class_list(names: list[str]) -> list[str]:
    """The sorted distinct classes: numerically when every one is a number, else as strings."""
    distinct = set(names)
    numbers = {n: _as_number(n) for n in distinct}
    if all(v is not None for v in numbers.values()):
        return sorted(distinct, key=lambda n: numbers[n])
    if all(n.startswith(("<", ">=")) for n in distinct):  # threshold classes: below first
        return sorted(distinct, key=lambda n: n.startswith(">="))
    return sorted(distinct)


def stratified_random_split(labels: list[str], seed: int, fractions=FRACTIONS) -> dict[str, np.ndarray]:
    """Rows cut into train/val/test within each class, so every part keeps the class proportions.

    Per class, val and test get their rounded share, but never the class's last row: a class with
    one or two rows stays in train, where a head can learn it. Each part is sorted by row.
    """
    rng = rng_for(seed, _STREAM_STRATIFIED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    by_class = _rows_by_class(labels)
    for name in sorted(by_class):
        rows = by_class[name][rng.permutation(len(by_class[name]))]
        n = len(rows)
        n_val = min(int(np.floor(fractions[1] * n + 0.5)), max(n - 1, 0))
        n_test = min(int(np.floor(fractions[2] * n + 0.5)), max(n - 1 - n_val, 0))
        n_train = n - n_val - n_test
        parts["train"].append(rows[:n_train])
        parts["val"].append(rows[n_train : n_train + n_val])
        parts["test"].append(rows[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64) for k, v in parts.items()}


def stratified_weak_split(train: np.ndarray, labels: list[str], weak_fraction: float,
                          seed: int) -> dict[str, np.ndarray]:
    """The training rows divided into weak_train / w2s_train within each class."""
    rng = rng_for(seed, _STREAM_STRATIFIED_WEAK)
    weak, w2s = [], []
    by_class = _rows_by_class([labels[i] for i in train])
    for name in sorted(by_class):
        rows = train[by_class[name][rng.permutation(len(by_class[name]))]]
        n_weak = int(np.floor(weak_fraction * len(rows) + 0.5))
        weak.append(rows[:n_weak])
        w2s.append(rows[n_weak:])
    return {"weak_train": np.sort(np.concatenate(weak)), "w2s_train": np.sort(np.concatenate(w2s))}


def check_classes(labels: list[str], positions: dict[str, np.ndarray], where: str) -> list[str]:
    """The class list of the training rows; an error if val/test hold a class they lack, or if < 2."""
    train = np.concatenate([positions["weak_train"], positions["w2s_train"]])
    classes = class_list([labels[i] for i in train])
    if len(classes) < 2:
        raise TaskDataError(f"{where}: the training rows hold {len(classes)} class ({classes}); "
                            "classification needs at least two.")
    known = set(classes)
    for split in ("val", "test"):
        unseen = sorted({labels[i] for i in positions[split]} - known)
        if unseen:
            rows = [int(i) for i in positions[split] if labels[i] in set(unseen)]
            raise TaskDataError(
                f"{where}: class(es) {unseen} appear in {split} ({len(rows)} rows) but in no training row "
                f"(training classes: {classes}); no head can predict them. Merge rare classes, use a random "
                "(stratified) split, or drop those rows."
            )
    return classes


def _rows_by_class(labels: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        out.setdefault(name, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _class_name(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = _as_number(value)
    if number is not None:
        return str(int(number)) if float(number).is_integer() else repr(float(number))
    return str(value).strip()


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
