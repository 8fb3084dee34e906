"""Pairwise preference tasks (`task_type: preference`): rows (prompt, first, second, label A|B) and their importers.

The target is `first_preferred` (1.0 when the label is A: the first response is preferred; 0.0 for B).
Heads are Bradley–Terry heads on phi(prompt, first) - phi(prompt, second) and the decomposition uses the
binary KL (Mulgund & Pabbaraju 2025): see `w2s_hf.data.kinds` and `w2s_hf.heads.bradley_terry`.

Three row formats are recognised by their columns (a file, a `hf:` dataset or a save_to_disk folder):

- `{prompt, first, second, label: "A"|"B"}`: the automated-w2s-research comparison rows (prompt optional);
- `{question, choice, label: bool}`: its binary rows; under each question every incorrect choice is paired
  with a correct one (cycling through them), so a question with no correct or no incorrect choice gives
  no pair;
- `{chosen, rejected}` (+ optional `prompt`): HH / UltraFeedback pairs. Chat transcripts (HH's
  "\\n\\nHuman: ... \\n\\nAssistant: ...") are cut after the last "Assistant:" they share; message
  lists take the last message as the response and the earlier ones as the prompt. Which of the two
  comes first is a seeded coin per row, so labels are balanced and position carries no signal.

Bad input is one error naming the source, column and rows: a label outside A/B, a pair with an empty
side, duplicate ids, a split left empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .checks import TaskDataError, format_rows, parse_ids, require_nonempty_splits, require_unique_ids
from .hub import HF_PREFIX, SPLIT_COLUMN, is_dataset_source, mapped_splits, read_dataset
from .rows import PREFERENCE_COLUMNS, SPLIT_NAMES, W2STask
from .splits import rng_for

TARGET = "first_preferred"
FORMATS = ("ab", "binary", "chosen_rejected")
_STREAM_ORDER = 7  # the seeded coin that orders chosen/rejected (apart from the split's streams)
_HH_MARKER = "\n\nAssistant:"


def detect_format(columns, where: Any) -> str:
    """Which of `FORMATS` a table's columns hold; an error lists what each needs."""
    cols = set(columns)
    if {"first", "second", "label"} <= cols:
        return "ab"
    if {"question", "choice", "label"} <= cols:
        return "binary"
    if {"chosen", "rejected"} <= cols:
        return "chosen_rejected"
    raise TaskDataError(f"{where}: not a preference table: need columns (first, second, label [A/B], prompt "
                        f"optional), (question, choice, label [bool]) or (chosen, rejected, prompt optional); "
                        f"it has {sorted(cols)}", path=str(where))


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def parse_ab_labels(values: list, where: Any, column: str = "label") -> np.ndarray:
    """A -> 1.0 (first preferred), B -> 0.0; anything else is an error naming the rows."""
    out, bad = np.empty(len(values)), []
    for i, value in enumerate(values):
        label = value.strip().upper() if isinstance(value, str) else None
        if label not in ("A", "B"):
            bad.append(i)
        else:
            out[i] = 1.0 if label == "A" else 0.0
    if bad:
        raise TaskDataError(f"{where}: column {column!r} must be 'A' (first preferred) or 'B' (second); "
                            f"{format_rows([i + 1 for i in bad], [values[i] for i in bad])}",
                            path=str(where), column=column, rows=[i + 1 for i in bad])
    return out


def _parse_bool(values: list, where: Any, column: str) -> np.ndarray:
    truth = {"true": True, "1": True, "false": False, "0": False}
    out, bad = np.zeros(len(values), dtype=bool), []
    for i, value in enumerate(values):
        key = str(value).strip().lower() if isinstance(value, (str, bool, int, np.integer)) else None
        if key not in truth:
            bad.append(i)
        else:
            out[i] = truth[key]
    if bad:
        raise TaskDataError(f"{where}: column {column!r} must be true/false; "
                            f"{format_rows([i + 1 for i in bad], [values[i] for i in bad])}",
                            path=str(where), column=column, rows=[i + 1 for i in bad])
    return out


def _split_transcript(a: str, b: str) -> tuple[str, str, str]:
    """(prompt, rest of a, rest of b): cut after the last 'Assistant:' turn marker the two share."""
    common = os.path.commonprefix([a, b])
    cut = common.rfind(_HH_MARKER)
    if cut < 0:
        return "", a, b
    cut += len(_HH_MARKER)
    return a[:cut], a[cut:].strip(), b[cut:].strip()


def _messages(value: Any) -> tuple[str, str] | None:
    """(prompt, response) of a message list [{role, content}, ...], or None for plain text."""
    if isinstance(value, str) or not hasattr(value, "__len__") or not len(value):
        return None
    turns = list(value)
    if not all(isinstance(t, dict) and "content" in t for t in turns):
        return None
    before = turns[:-1]
    prompt = (_text(before[0]["content"]) if len(before) == 1 else
              "\n\n".join(f"{t.get('role', 'user')}: {_text(t['content'])}" for t in before))
    return prompt, _text(turns[-1]["content"])


def _from_chosen_rejected(frame: Any, where: Any, seed: int) -> dict[str, list]:
    chosen, rejected = frame["chosen"].tolist(), frame["rejected"].tolist()
    given = frame["prompt"].tolist() if "prompt" in frame.columns else [None] * len(frame)
    chosen_first = rng_for(seed, _STREAM_ORDER).random(len(frame)) < 0.5
    out: dict[str, list] = {"prompt": [], "first": [], "second": [], "label": [], "row": []}
    for i, (c, r, p) in enumerate(zip(chosen, rejected, given)):
        mc, mr = _messages(c), _messages(r)
        if mc is not None and mr is not None:
            prompt, c_text, r_text = mc[0], mc[1], mr[1]
        elif p is not None and _text(p):
            prompt, c_text, r_text = _text(p), _text(c), _text(r)
        else:
            prompt, c_text, r_text = _split_transcript(_text(c), _text(r))
        first, second = (c_text, r_text) if chosen_first[i] else (r_text, c_text)
        for key, value in zip(("prompt", "first", "second", "label", "row"),
                              (prompt, first, second, "A" if chosen_first[i] else "B", i + 1)):
            out[key].append(value)
    return out


def _from_binary(frame: Any, where: Any, seed: int) -> dict[str, list]:
    correct = _parse_bool(frame["label"].tolist(), where, "label")
    groups: dict[str, list[int]] = {}
    for i, question in enumerate(frame["question"].tolist()):
        groups.setdefault(_text(question), []).append(i)
    choices = [_text(c) for c in frame["choice"].tolist()]
    coin = rng_for(seed, _STREAM_ORDER)
    out: dict[str, list] = {"prompt": [], "first": [], "second": [], "label": [], "row": []}
    for question, rows in groups.items():
        good, bad = [i for i in rows if correct[i]], [i for i in rows if not correct[i]]
        for k, wrong in enumerate(bad if good else []):
            right = good[k % len(good)]
            right_first = bool(coin.random() < 0.5)
            pair = (right, wrong) if right_first else (wrong, right)
            out["prompt"].append(question)
            out["first"].append(choices[pair[0]])
            out["second"].append(choices[pair[1]])
            out["label"].append("A" if right_first else "B")
            out["row"].append(wrong + 1)
    if not out["row"]:
        raise TaskDataError(f"{where}: no question has both a correct and an incorrect choice, so no pair can be "
                            "formed", path=str(where))
    return out


def preference_rows(frame: Any, where: Any, seed: int = 0) -> dict[str, Any]:
    """{prompt, first, second, target (float), row (1-based source row)} from any of the three formats."""
    fmt = detect_format(frame.columns, where)
    if fmt == "ab":
        prompts = frame["prompt"].tolist() if "prompt" in frame.columns else [""] * len(frame)
        rows = {"prompt": [_text(p) for p in prompts], "first": [_text(v) for v in frame["first"]],
                "second": [_text(v) for v in frame["second"]], "label": frame["label"].tolist(),
                "row": list(range(1, len(frame) + 1))}
    else:
        rows = (_from_binary if fmt == "binary" else _from_chosen_rejected)(frame, where, seed)
    for side in ("first", "second"):
        empty = [r for r, text in zip(rows["row"], rows[side]) if not text.strip()]
        if empty:
            column = side if fmt == "ab" else {"binary": "choice", "chosen_rejected": "chosen/rejected"}[fmt]
            raise TaskDataError(f"{where}: a pair has an empty {side} side (column {column!r}) in "
                                f"{format_rows(empty)}; every pair needs two non-empty texts",
                                path=str(where), column=column, rows=empty)
    rows["target"] = parse_ab_labels(rows.pop("label"), where)
    rows["format"] = fmt
    return rows


def load_preference_task(name_or_path: str | os.PathLike, *, split: str = "random", seed: int = 0,
                         weak_fraction: float = 0.5, path: str | os.PathLike | None = None,
                         id_column: str | None = None, name: str | None = None, **hub: Any):
    """A checked, split preference `W2STask` from a file, a `hf:` dataset or a save_to_disk folder."""
    from .sources import read_table

    if split != "random":
        raise ValueError(f"split={split!r}: preference tasks are split at random (or by a split_map)")
    source = os.fspath(path if path is not None else name_or_path)
    if is_dataset_source(source):
        frame, where = read_dataset(source, **hub)
    else:
        extra = [k for k, v in hub.items() if v is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} apply to a dataset (hf:<path> or a save_to_disk folder)")
        frame, where = read_table(Path(source)), source
    rows = preference_rows(frame, where, seed)
    picked = np.asarray(rows["row"]) - 1  # source rows of the pairs, for ids and split assignments
    if id_column is not None:
        ids = [parse_ids(frame, id_column, where)[i] for i in picked] if rows["format"] == "ab" else None
        if ids is None:
            raise ValueError(f"id_column={id_column!r} applies to (first, second, label) rows only")
    else:
        ids = [f"pair-{r}" for r in rows["row"]]
    require_unique_ids(ids, rows["row"], where, id_column or "(row numbers)")
    if SPLIT_COLUMN in frame.columns:
        positions = mapped_splits(frame[SPLIT_COLUMN].to_numpy()[picked], seed, weak_fraction)
    else:
        from .splits import make_splits

        positions = make_splits(len(ids), "random", seed, weak_fraction)
    require_nonempty_splits({k: len(positions[k]) for k in SPLIT_NAMES}, len(ids), "random", weak_fraction,
                            f"{where} (preference task, seed {seed})")
    name = name or Path(str(name_or_path).removeprefix(HF_PREFIX).rstrip("/")).stem or "preference"
    return W2STask(name=name, targets=[TARGET], input_kind="text", splits=_dataset_dict(ids, rows, positions),
                   split="random", seed=int(seed), weak_fraction=weak_fraction, source=str(where),
                   task_type="preference")


def _dataset_dict(ids: list[str], rows: dict[str, Any], positions: dict[str, np.ndarray]):
    import datasets

    text = datasets.Value("string")
    features = datasets.Features({"id": text, "input": text, **{c: text for c in PREFERENCE_COLUMNS},
                                  TARGET: datasets.Value("float64")})
    out = {}
    for name in SPLIT_NAMES:
        idx = positions[name]
        columns = {"id": [ids[i] for i in idx],
                   # the row's identity (fingerprints, run identity): all three texts
                   "input": [json.dumps([rows[c][i] for c in PREFERENCE_COLUMNS]) for i in idx],
                   **{c: [rows[c][i] for i in idx] for c in PREFERENCE_COLUMNS},
                   TARGET: rows["target"][idx].tolist()}
        out[name] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(out)
