"""Seeded train/val/test splits (random and Bemis–Murcko scaffold) and the weak/w2s division of train.

Everything here works on row positions and is a pure function of its arguments, so a split is
reproduced exactly from `(rows, split, seed)`. Splits are 80/10/10 train/val/test; the training part is
then divided into `weak_train` (trains the weak model on gold labels) and `w2s_train` (the weak model
labels it for the strong student).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_METHODS = ("random", "scaffold")
# "auto": scaffold for SMILES inputs, random otherwise (a text file has no scaffolds); see `resolve_split`
SPLIT_CHOICES = ("auto", *SPLIT_METHODS)


def resolve_split(split: str, input_kind: str) -> str:
    """The split method that `split` means for inputs of `input_kind` ("auto" -> scaffold / random)."""
    if split == "auto":
        return "scaffold" if input_kind == "smiles" else "random"
    return split

# Distinct streams so the weak/w2s division does not reuse the numbers that drew train/val/test.
_STREAM_SPLIT, _STREAM_WEAK, _STREAM_FOLDS = 0, 1, 2
# Streams of the split seed for the nested training subsets: graded weak teachers (weak_budget) and
# scaling over N (w2s_size); the splits above never draw from them.
STREAM_WEAK_BUDGET, STREAM_W2S_SIZE = 3, 4


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """A generator for `seed` (any int, negative too) and a named stream."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    seed = int(seed)
    return np.random.default_rng(np.random.SeedSequence([abs(seed), int(seed < 0), stream]))


def nested_subset(n: int, size: int, seed: int, stream: int) -> np.ndarray:
    """Sorted positions of `size` of n rows: the first `size` of one order drawn from (seed, stream), so the
    subsets of one seed are nested (the 64 rows are inside the 128) and `size == n` is every row."""
    if not 0 < size <= n:
        raise ValueError(f"a subset of {size} rows out of {n}")
    return np.sort(rng_for(seed, stream).permutation(n)[:size])


def _counts(n: int, fractions: Sequence[float]) -> tuple[int, int]:
    """(val, test) sizes: the rounded fractions of n; train gets the rest."""
    return int(np.floor(fractions[1] * n + 0.5)), int(np.floor(fractions[2] * n + 0.5))


def random_split(n: int, seed: int, fractions: Sequence[float] = FRACTIONS) -> dict[str, np.ndarray]:
    """Rows 0..n-1 shuffled with `seed` and cut into train/val/test; each part sorted by row."""
    order = rng_for(seed, _STREAM_SPLIT).permutation(n)
    n_val, n_test = _counts(n, fractions)
    n_train = n - n_val - n_test
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


def scaffold_split(
    scaffolds: Sequence[str], seed: int, fractions: Sequence[float] = FRACTIONS
) -> dict[str, np.ndarray]:
    """Whole scaffold groups assigned to train/val/test, so no scaffold is in two parts.

    The balanced scheme of Chemprop: groups bigger than half the val/test size are "big"; big groups
    (in seeded random order) are placed before small ones (in seeded random order), each into train if
    it still fits, else val if it fits, else test. Big groups thus land mostly in train, which keeps
    val/test near 10% while every seed gives a different split.
    """
    n = len(scaffolds)
    n_val, n_test = _counts(n, fractions)
    n_train = n - n_val - n_test
    groups: dict[str, list[int]] = {}
    for row, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(row)
    # Sorted keys make the group order independent of input order before the seeded shuffle.
    keys = sorted(groups)
    big = [k for k in keys if len(groups[k]) > n_val / 2 or len(groups[k]) > n_test / 2]
    big_set = set(big)
    small = [k for k in keys if k not in big_set]
    rng = rng_for(seed, _STREAM_SPLIT)
    ordered = [big[i] for i in rng.permutation(len(big))] + [small[i] for i in rng.permutation(len(small))]
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for key in ordered:
        rows = groups[key]
        if len(parts["train"]) + len(rows) <= n_train:
            parts["train"].extend(rows)
        elif len(parts["val"]) + len(rows) <= n_val:
            parts["val"].extend(rows)
        else:
            parts["test"].extend(rows)
    return {name: np.sort(np.asarray(rows, dtype=np.int64)) for name, rows in parts.items()}


def crossfit_split(n: int, folds: int, fold: int, seed: int, scaffolds: Sequence[str] | None = None,
                   val_fraction: float = FRACTIONS[1]) -> dict[str, np.ndarray]:
    """Fold `fold` of `folds` as test; val (a `val_fraction` of all rows) and train from the other folds.

    Rows (or, with `scaffolds`, whole scaffold groups) are dealt to folds in a seeded order, each to the
    fold with the fewest rows so far, so the folds partition the rows: over fold = 0..folds-1 every
    row is a test row exactly once. val groups are drawn from the remaining rows in a second seeded order.
    """
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold!r}")
    groups: dict[str, list[int]] = {}
    for row in range(n):
        groups.setdefault(scaffolds[row] if scaffolds is not None else str(row), []).append(row)
    keys = sorted(groups)
    rng = rng_for(seed, _STREAM_FOLDS)
    sizes, owner = [0] * folds, {}
    # big groups first (as in scaffold_split) keep the folds near n / folds rows each
    for i in sorted(rng.permutation(len(keys)), key=lambda i: -len(groups[keys[i]]) if scaffolds is not None else 0):
        k = int(np.argmin(sizes))
        owner[keys[i]] = k
        sizes[k] += len(groups[keys[i]])
    test = [r for key in keys if owner[key] == fold for r in groups[key]]
    rest = [key for key in keys if owner[key] != fold]
    n_val, val = int(np.floor(val_fraction * n + 0.5)), []
    for i in rng.permutation(len(rest)):
        if len(val) + len(groups[rest[i]]) <= n_val:
            val.extend(groups[rest[i]])
    val_set = set(val)
    train = [r for key in rest for r in groups[key] if r not in val_set]
    return {name: np.sort(np.asarray(rows, dtype=np.int64)) for name, rows in
            (("train", train), ("val", val), ("test", test))}


def weak_w2s_split(train: np.ndarray, weak_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """The training rows divided at random into weak_train (a `weak_fraction` share) and w2s_train."""
    if not 0.0 < weak_fraction < 1.0:
        raise ValueError(f"weak_fraction must be strictly between 0 and 1, got {weak_fraction!r}")
    order = rng_for(seed, _STREAM_WEAK).permutation(len(train))
    n_weak = int(np.floor(weak_fraction * len(train) + 0.5))
    return {"weak_train": np.sort(train[order[:n_weak]]), "w2s_train": np.sort(train[order[n_weak:]])}


def make_splits(
    n: int,
    split: str,
    seed: int,
    weak_fraction: float = 0.5,
    scaffolds: Sequence[str] | None = None,
    cv_folds: int | None = None,
    cv_fold: int = 0,
) -> dict[str, np.ndarray]:
    """Row positions of weak_train, w2s_train, val and test for `n` rows (with `cv_folds`: of one fold)."""
    if split not in SPLIT_METHODS:
        raise ValueError(f"split must be one of {SPLIT_METHODS}, got {split!r}")
    if split == "scaffold" and (scaffolds is None or len(scaffolds) != n):
        raise ValueError("scaffold split needs one scaffold per row")
    if cv_folds:
        parts = crossfit_split(n, cv_folds, cv_fold, seed, scaffolds if split == "scaffold" else None)
    elif split == "random":
        parts = random_split(n, seed)
    else:
        parts = scaffold_split(scaffolds, seed)
    return {**weak_w2s_split(parts["train"], weak_fraction, seed), "val": parts["val"], "test": parts["test"]}
