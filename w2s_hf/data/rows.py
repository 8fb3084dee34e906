"""A task's rows as arrays: split names, ids and gold labels per split, and the feature cache's row order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import datasets

INPUT_KINDS = ("text", "smiles")  # what a task's inputs are
SPLIT_NAMES = ("weak_train", "w2s_train", "val", "test")
PAIR_COLUMN = "input_pair"  # a text-pair task's second text (the first is "input")
# a preference task's columns: the two sides are (prompt, first) and (prompt, second)
PREFERENCE_COLUMNS = ("prompt", "first", "second")
# The splits a run is evaluated on: weak_train is the weak head's own training data.
EVAL_SPLITS = ("w2s_train", "val", "test")


@dataclass
class W2STask:
    """A regression or classification task ready for the weak-to-strong protocol.

    `splits` holds weak_train, w2s_train, val and test, each with columns `id` (str), `input` (text or
    SMILES) and one float64 column per name in `targets`. A classification task has one target, its
    label column, holding class indices into `classes`.
    """

    name: str
    targets: list[str]
    input_kind: str
    splits: datasets.DatasetDict
    split: str = "random"
    seed: int = 0
    weak_fraction: float = 0.5
    source: str = ""
    task_type: str = "regression"
    classes: list[str] | None = None

    def sizes(self) -> dict[str, int]:
        """Number of rows per split."""
        return {name: self.splits[name].num_rows for name in SPLIT_NAMES}

    def describe(self) -> str:
        """One line: task, split method, seed and split sizes."""
        sizes = ", ".join(f"{k} {v}" for k, v in self.sizes().items())
        what = f"targets {', '.join(self.targets)}"
        if self.classes is not None:
            what = f"classification of {self.targets[0]} into {len(self.classes)} classes {self.classes}"
        return (
            f"task {self.name} ({self.input_kind}; {what}; split {self.split}, "
            f"seed {self.seed}): {sizes}; {sum(self.sizes().values())} rows from {self.source}"
        )


def canonical_inputs(task: Any, column: str = "input") -> tuple[list[str], list]:
    """All (id, input) pairs of a task sorted by id: the row order of its cached features.

    It does not depend on the split kind or seed, so every split of a task shares one cache entry. A
    text-pair task's inputs are (input, input_pair) tuples.
    """
    def values(split):
        data = task.splits[split]
        if column == "input" and PAIR_COLUMN in data.column_names:
            return list(zip(data["input"], data[PAIR_COLUMN]))
        return data[column]

    pairs = sorted({str(i): t for s in SPLIT_NAMES for i, t in zip(task.splits[s]["id"], values(s))}.items())
    return [i for i, _ in pairs], [t for _, t in pairs]


@dataclass
class TaskRows:
    """`ids[split]`, `gold[split]` (n, k) float64 and `index[split]`: positions in the canonical order.

    A classification task has k = 1 and gold labels that are indices into `classes`.
    """

    targets: list[str]
    ids: dict[str, list[str]]
    gold: dict[str, np.ndarray]
    canonical_ids: list[str]
    canonical_texts: list[str]
    index: dict[str, np.ndarray]
    classes: list[str] | None = None
    # a preference task: {"prompt"|"first"|"second": texts in the canonical order}
    sides: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, task: Any) -> TaskRows:
        targets = list(task.targets)
        ids = {s: [str(i) for i in task.splits[s]["id"]] for s in SPLIT_NAMES}
        gold = {
            s: np.stack([np.asarray(task.splits[s][t], dtype=np.float64) for t in targets], axis=1)
            for s in SPLIT_NAMES
        }
        canonical_ids, canonical_texts = canonical_inputs(task)
        position = {i: k for k, i in enumerate(canonical_ids)}
        index = {s: np.array([position[i] for i in ids[s]], dtype=np.int64) for s in SPLIT_NAMES}
        classes = getattr(task, "classes", None)
        sides = None
        if all(c in task.splits[SPLIT_NAMES[0]].column_names for c in PREFERENCE_COLUMNS):
            sides = {c: list(canonical_inputs(task, c)[1]) for c in PREFERENCE_COLUMNS}
        return cls(targets, ids, gold, canonical_ids, canonical_texts, index,
                   None if classes is None else [str(c) for c in classes], sides)

    def positions(self, splits) -> np.ndarray:
        """Sorted canonical positions of every row of `splits`."""
        return np.sort(np.concatenate([self.index[s] for s in sorted(set(splits))]))

    def fingerprint(self) -> str:
        """sha256 of every split's ids, inputs and gold targets: the data part of a run's identity."""
        import hashlib

        digest = hashlib.sha256(json.dumps(self.targets).encode())
        if self.classes is not None:
            digest.update(json.dumps(["classes", self.classes]).encode())
        text_of = dict(zip(self.canonical_ids, self.canonical_texts))
        for split in SPLIT_NAMES:
            digest.update(json.dumps([split, [[i, text_of[i]] for i in self.ids[split]]]).encode())
            digest.update(np.ascontiguousarray(self.gold[split], dtype=np.float64).tobytes())
        return digest.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {s: len(self.ids[s]) for s in SPLIT_NAMES}
