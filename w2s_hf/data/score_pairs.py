"""Preference tasks made from a scored table: "which of two items scores higher", pairs formed inside each split.

    load_task("esol", split="scaffold", task_type="preference", pair_from_scores="log_solubility")
    load_task("ellipse", path="train.csv", task_type="preference", pair_from_scores="cohesion")
    w2s run --task esol --split scaffold --task_type preference --pair_from_scores log_solubility

The ITEMS (molecules, essays) are loaded and split first, exactly as the regression task would be
(`load_task`: the same checks, duplicate merging, the seeded random or scaffold split into weak_train /
w2s_train / val / test). Only then are pairs drawn, each from the items of ONE split, so no item is on
both sides of a split boundary: a test pair compares two molecules no training pair has seen (and, with
a scaffold split, two scaffolds no training pair has seen).

Drawing (`draw_pairs`): in each of `pairs_per_item` rounds every item of the split, in a seeded order, is
paired with a partner drawn at random among the split's items with a DIFFERENT score (ties carry no preference
and are skipped) and not yet paired with it. So every item is in at least `pairs_per_item` pairs (unless it
has fewer untied partners: then with all of them) and a split of n items gets `pairs_per_item * n` pairs
(fewer only where items run out of untied partners). Because every item is used, a task's distinct sides are
all its items whatever the seed, and the feature cache (keyed by the texts) is shared across seeds. A seeded
coin per pair decides which item is shown first; the label is A when the first has the higher score.

Sides have no prompt: phi(first) - phi(second) are the items' own features, so the input kind is the
items' (`smiles` stays `smiles`: rdkit: featurizers and SMILES models work on these pairs).

Pairs that share an item are not independent: per-run bootstrap intervals (which resample pairs) are
too narrow; a sweep's slope interval resamples whole runs and is not affected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from .checks import TaskDataError
from .preferences import TARGET
from .rows import PREFERENCE_COLUMNS, SPLIT_NAMES, W2STask
from .splits import rng_for

logger = logging.getLogger("w2s_hf.data")

DEFAULT_PAIRS_PER_ITEM = 2
_STREAM_PAIRS = 11  # the seeded draws of partners and the order coins (apart from the split's streams 0, 1)


def draw_pairs(scores: np.ndarray, pairs_per_item: int, rng: np.random.Generator) -> np.ndarray:
    """(m, 2) positions (i, j) into `scores`, i != j, scores[i] != scores[j], each unordered pair once.

    Round by round, every item (seeded order) draws one untied partner it is not yet paired with.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    values, counts = np.unique(scores, return_counts=True)
    untied = n - counts[np.searchsorted(values, scores)]  # partners with another score, per item
    partners: list[set[int]] = [set() for _ in range(n)]
    pairs: list[tuple[int, int]] = []
    for _ in range(int(pairs_per_item)):
        for i in rng.permutation(n):
            if len(partners[i]) >= untied[i]:
                continue  # already paired with every item of another score
            while True:  # rejection: the share of tied or used partners is what the check above bounds
                j = int(rng.integers(n))
                if scores[j] != scores[i] and j not in partners[i]:
                    break
            partners[i].add(j)
            partners[j].add(int(i))
            pairs.append((int(i), j))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _split_pairs(data: Any, score: str, split: str, pairs_per_item: int, rng: np.random.Generator,
                 where: str) -> dict[str, list]:
    ids, inputs = [str(i) for i in data["id"]], list(data["input"])
    scores = np.asarray(data[score], dtype=np.float64)
    if len(np.unique(scores)) < 2:
        raise TaskDataError(f"{where}: split {split!r} has {len(scores)} item(s) and {len(np.unique(scores))} "
                            f"distinct {score!r} score(s); a pair needs two items with different scores. Use more "
                            "items (a larger file), another split seed, or a smaller weak_fraction", path=where)
    pairs = draw_pairs(scores, pairs_per_item, rng)
    flip = rng.random(len(pairs)) < 0.5  # the coin: which item is shown first
    first = np.where(flip, pairs[:, 1], pairs[:, 0])
    second = np.where(flip, pairs[:, 0], pairs[:, 1])
    return {"id": [f"{ids[a]}~{ids[b]}" for a, b in zip(first, second)],
            "prompt": [""] * len(pairs),
            "first": [inputs[a] for a in first], "second": [inputs[b] for b in second],
            TARGET: (scores[first] > scores[second]).astype(np.float64).tolist()}


def _check_pairs_per_item(pairs_per_item: Any) -> None:
    if isinstance(pairs_per_item, bool) or not isinstance(pairs_per_item, (int, np.integer)) or pairs_per_item < 1:
        raise ValueError(f"pairs_per_item must be an int >= 1, got {pairs_per_item!r}")


def pairs_from_scores(items: W2STask, score: str, pairs_per_item: int = DEFAULT_PAIRS_PER_ITEM,
                      seed: int | None = None) -> W2STask:
    """A preference task whose pairs are drawn inside each split of the item task `items` by `score`."""
    import datasets

    if score not in items.targets:
        raise TaskDataError(f"{items.source}: pair_from_scores={score!r} is not a target of task {items.name!r}; "
                            f"choose from {items.targets}", path=items.source, column=score)
    _check_pairs_per_item(pairs_per_item)
    seed = items.seed if seed is None else seed
    rng = rng_for(seed, _STREAM_PAIRS)
    where = f"{items.source} (task {items.name!r}, seed {seed})"
    text = datasets.Value("string")
    features = datasets.Features({"id": text, "input": text, **{c: text for c in PREFERENCE_COLUMNS},
                                  TARGET: datasets.Value("float64")})
    splits = {}
    for split in SPLIT_NAMES:
        columns = _split_pairs(items.splits[split], score, split, pairs_per_item, rng, where)
        # the row's identity (fingerprints, run identity): all three texts, as imported preference rows
        columns["input"] = [json.dumps(list(t)) for t in zip(*(columns[c] for c in PREFERENCE_COLUMNS))]
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    task = W2STask(name=f"{items.name}-pairs-{score}", targets=[TARGET], input_kind=items.input_kind,
                   splits=datasets.DatasetDict(splits), split=items.split, seed=items.seed,
                   weak_fraction=items.weak_fraction, source=items.source, task_type="preference")
    logger.info("%s (pairs by %s, %d per item, drawn inside each split)", task.describe(), score, pairs_per_item)
    return task


def load_score_pairs(name_or_path: Any, score: str, pairs_per_item: int | None = None, *,
                     load_items: Callable[..., W2STask], **load: Any) -> W2STask:
    """Load the items with `load_items` (`load_task`: their checks and split), then draw pairs inside each split."""
    pairs_per_item = DEFAULT_PAIRS_PER_ITEM if pairs_per_item is None else pairs_per_item
    _check_pairs_per_item(pairs_per_item)  # before the items are read
    if load.get("target_columns") is None and load.get("targets") is None:
        load["targets"] = [score]  # a built-in task's target, or the column of your own file
    items = load_items(name_or_path, **load)
    return pairs_from_scores(items, score, pairs_per_item)
