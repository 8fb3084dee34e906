"""Input checks for task files: every problem a user can fix is reported here, before any model loads.

Each check raises `TaskDataError` (a `ValueError`) whose message names the file, the column, the
offending rows (the first few, plus how many in all) and what to do about it. Row numbers count data
records from 1, the header not included, so row 1 is the first record of a CSV / JSON-lines file and
index 0 of a parquet table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# How many offending rows a message lists before it says "and N more".
MAX_LISTED = 5


class TaskDataError(ValueError):
    """A task file (or a built-in task's setup) cannot be turned into a weak-to-strong task.

    `path`, `column` and `rows` (1-based data rows) are kept as attributes so callers and tests can
    inspect them without parsing the message.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        column: str | None = None,
        rows: Sequence[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.column = column
        self.rows = list(rows) if rows is not None else []


def format_rows(rows: Sequence[int], values: Sequence[Any] | None = None, limit: int = MAX_LISTED) -> str:
    """'3 rows: row 2 ('abc'), row 7 ('x'), row 9 ('')' with at most `limit` rows listed."""
    parts = []
    for i, row in enumerate(rows[:limit]):
        if values is None:
            parts.append(f"row {row}")
        else:
            shown = repr(values[i])
            if len(shown) > 60:
                shown = shown[:57] + "...'"
            parts.append(f"row {row} ({shown})")
    more = f", and {len(rows) - limit} more" if len(rows) > limit else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{len(rows)} {noun}: " + ", ".join(parts) + more


def require_file(path: Path, what: str) -> None:
    """Fail with the absolute path when `path` is not an existing file."""
    if not path.exists():
        raise TaskDataError(f"{what}: file not found: {path.resolve()}", path=path)
    if not path.is_file():
        raise TaskDataError(f"{what}: {path.resolve()} is a directory, not a data file", path=path)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path, role: str, argument: str) -> None:
    """Fail listing the available columns when any of `columns` (the `role` column) is absent."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        available = ", ".join(repr(str(c)) for c in frame.columns)
        raise TaskDataError(
            f"{path}: {role} column(s) {', '.join(repr(c) for c in missing)} not found. "
            f"Available columns: {available}. Pass the right name with --{argument} (Python: {argument}=...).",
            path=path,
            column=missing[0],
        )


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "na", "n/a", "null", "none")


def parse_targets(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Column `column` as float64, or an error listing rows that are missing, non-numeric or infinite."""
    raw = frame[column].tolist()
    missing, bad, infinite = [], [], []
    out = np.empty(len(raw), dtype=np.float64)
    for i, value in enumerate(raw):
        if is_missing(value):
            missing.append(i)
            continue
        if isinstance(value, bool):
            bad.append(i)
            continue
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            bad.append(i)
            continue
        if math.isnan(number):
            missing.append(i)
        elif math.isinf(number):
            infinite.append(i)
        else:
            out[i] = number
    problems = []
    for kind, idx in (("missing / NaN", missing), ("non-numeric", bad), ("infinite", infinite)):
        if idx:
            problems.append(f"{kind} values in {format_rows([i + 1 for i in idx], [raw[i] for i in idx])}")
    if problems:
        first = sorted(missing + bad + infinite)
        raise TaskDataError(
            f"{path}: target column {column!r} has " + "; ".join(problems) + ". Every target must be a "
            "finite number: fix or remove these rows, or choose other target_columns.",
            path=path,
            column=column,
            rows=[i + 1 for i in first],
        )
    return out


def parse_inputs(frame: pd.DataFrame, column: str, path: Path, kind: str) -> list[str]:
    """Column `column` as strings, or an error listing rows whose text is empty or missing.

    SMILES are stripped of surrounding whitespace (it is not part of a SMILES); essay text is kept
    verbatim because the encoder should see exactly what the file holds.
    """
    raw = frame[column].tolist()
    texts, empty = [], []
    for i, value in enumerate(raw):
        # Only a true null is missing here: a literal string such as "NA" is text the user wrote.
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        if not text.strip():
            empty.append(i + 1)
        texts.append(text.strip() if kind == "smiles" else text)
    if empty:
        raise TaskDataError(
            f"{path}: input column {column!r} is empty in {format_rows(empty)}. "
            "Remove these rows or fill in the text.",
            path=path,
            column=column,
            rows=empty,
        )
    return texts


def parse_ids(frame: pd.DataFrame, column: str, path: Path) -> list[str]:
    """Column `column` as strings; integer-valued floats lose their '.0' so ids read as written."""
    ids, empty = [], []
    for i, value in enumerate(frame[column].tolist()):
        if is_missing(value):
            empty.append(i + 1)
            ids.append("")
        elif isinstance(value, float) and value.is_integer():
            ids.append(str(int(value)))
        else:
            ids.append(str(value).strip())
    if empty:
        raise TaskDataError(
            f"{path}: id column {column!r} is empty in {format_rows(empty)}. Every row needs an id.",
            path=path,
            column=column,
            rows=empty,
        )
    return ids


def require_unique_ids(ids: Sequence[str], rows: Sequence[int], path: Path | str, column: str) -> None:
    """Fail listing the repeated ids and the rows that hold them."""
    seen: dict[str, int] = {}
    dup_rows, dup_values = [], []
    for id_, row in zip(ids, rows):
        if id_ in seen:
            dup_rows.append(row)
            dup_values.append(f"{id_} (also row {seen[id_]})")
        else:
            seen[id_] = row
    if dup_rows:
        raise TaskDataError(
            f"{path}: id column {column!r} has duplicate ids in {format_rows(dup_rows, dup_values)}. "
            "Ids must be unique: they key cached features and per-example predictions. Fix the ids, "
            "or leave --id_column (id_column) unset to number the rows.",
            path=path,
            column=column,
            rows=dup_rows,
        )


def require_nonempty_splits(sizes: dict[str, int], n_rows: int, split: str, weak_fraction: float, where: str) -> None:
    """Fail naming the first empty split and how to get rows into it."""
    for name, size in sizes.items():
        if size > 0:
            continue
        if name in ("weak_train", "w2s_train"):
            n_train = sizes["weak_train"] + sizes["w2s_train"]
            if n_train >= 2 and weak_fraction != 0.5:
                fix = (f"the training part has {n_train} rows and weak_fraction={weak_fraction}; move "
                       "weak_fraction towards 0.5 or add rows")
            else:  # already an even split: only more rows help
                fix = f"the training part has {n_train} row(s), too few to give both halves a row; add rows"
        elif split == "scaffold":
            fix = ("scaffold groups are too few or too large to fill it; use --split random (Python: split='random') "
                   "or add molecules")
        else:
            fix = "80/10/10 of so few rows rounds it to zero; add rows (20 or more)"
        raise TaskDataError(f"{where}: split {name!r} is empty ({n_rows} usable rows, split={split!r}): {fix}.")
