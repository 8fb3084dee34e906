"""Scaling over N: weak, w2s and ceiling errors as the w2s_train size (and the weak label budget) grows.

For each split seed, one ordinary run (`W2SPipeline`) provides the cached features and the gold labels;
the exact ridge heads of the protocol are then refitted on nested subsets, the first N rows of one
seeded order of w2s_train (and the first b rows of weak_train), each with its ridge chosen on val as
`PROTOCOL` says (weak: val gold; student: val weak labels; ceiling: val gold). Errors are read on test.

A power law err = a * N^(-alpha) is fitted to each error by least squares in log-log coordinates
(`fit_power_law`), with a 95% interval that resamples seeds (the subsets of one seed are nested, so
its points are one draw). Wu et al. (2026) report that the student's exponent can beat the
teacher's; Ildiz et al. (ICLR 2025) give the ridgeless risk.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

ERRORS = ("weak_error", "w2s_error", "ceiling_error")
_ORDER_STREAM = 23  # the seeded order of rows: its own stream, not the split's numbers


def _mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred.reshape(y.shape) - y) ** 2))


def nested_order(n: int, seed: int) -> np.ndarray:
    """One seeded order of n rows; its first N rows are the subset of size N (so sizes are nested)."""
    return np.random.default_rng([seed, _ORDER_STREAM]).permutation(n)


def scaling_points(pipeline: Any, sizes: list[int], weak_budgets: list[int | None], seed: int) -> list[dict]:
    """Errors on test of weak, student and ceiling for every (weak budget, w2s_train size) of one seed.

    `pipeline`: a finished regression run (its `rows` and `gold`); `None` in weak_budgets = every row."""
    from ..heads import fit_ridge

    if pipeline.classes is not None:
        raise ValueError("scaling over N refits exact ridge heads: it needs a regression task")
    rows, gold = pipeline.rows, pipeline.gold
    n_w2s, n_weak = len(gold["w2s_train"]), len(gold["weak_train"])
    for what, values, n in (("w2s_train sizes", sizes, n_w2s), ("weak label budgets", weak_budgets, n_weak)):
        bad = [v for v in values if v is not None and not 2 <= v <= n]
        if bad:
            raise ValueError(f"{what} {bad} must be between 2 and the split's {n} rows (seed {seed})")
    order_w2s, order_weak = nested_order(n_w2s, seed), nested_order(n_weak, seed + 1_000_003)
    Xs = {s: rows("strong", s) for s in ("w2s_train", "val", "test")}
    Xw = {s: rows("weak", s) for s in ("weak_train", "w2s_train", "val", "test")}
    ceilings = {}
    for n in sizes:
        idx = order_w2s[:n]
        head, _ = fit_ridge(Xs["w2s_train"][idx], gold["w2s_train"][idx], Xs["val"], gold["val"])
        ceilings[n] = _mse(head.predict(Xs["test"]), gold["test"])
    points = []
    for budget in weak_budgets:
        idx = order_weak[: budget or n_weak]
        weak, _ = fit_ridge(Xw["weak_train"][idx], gold["weak_train"][idx], Xw["val"], gold["val"])
        labels = {s: weak.predict(Xw[s]).reshape(len(gold[s]), -1) for s in ("w2s_train", "val", "test")}
        weak_error = _mse(labels["test"], gold["test"])
        for n in sizes:
            idx = order_w2s[:n]
            student, record = fit_ridge(Xs["w2s_train"][idx], labels["w2s_train"][idx], Xs["val"], labels["val"])
            pred = student.predict(Xs["test"]).reshape(labels["test"].shape)
            w2s_error = _mse(pred, gold["test"])
            points.append({"seed": seed, "weak_budget": budget or n_weak, "w2s_size": n, "weak_error": weak_error,
                           "w2s_error": w2s_error, "ceiling_error": ceilings[n], "gain": weak_error - w2s_error,
                           "misfit": _mse(pred, labels["test"]), "w2s_ridge": record["ridge"]})
    return points


def _loglog(n: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """(alpha, a) of err = a * n^-alpha by least squares on log err against log n."""
    x, y = np.log(n), np.log(err)
    slope, intercept = np.polyfit(x, y, 1)
    return float(-slope), float(np.exp(intercept))


def fit_power_law(n: Any, err: Any, seeds: Any, *, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, Any]:
    """Exponent alpha (err ~ a * n^-alpha) over points (n, err), with an interval resampling seeds."""
    n, err, seeds = np.asarray(n, dtype=np.float64), np.asarray(err, dtype=np.float64), list(seeds)
    if len(n) != len(err) or len(n) != len(seeds):
        raise ValueError(f"n, err and seeds must have one entry per point, got {len(n)}, {len(err)}, {len(seeds)}")
    if np.any(err <= 0) or np.any(n <= 0):
        raise ValueError("a power law needs positive sizes and errors")
    if len(set(n.tolist())) < 2:
        raise ValueError("a power law needs at least two distinct sizes")
    alpha, a = _loglog(n, err)
    out: dict[str, Any] = {"alpha": alpha, "a": a, "n_points": len(n), "n_seeds": len(set(seeds)), "ci": None}
    members: dict[Any, list[int]] = defaultdict(list)
    for i, s in enumerate(seeds):
        members[s].append(i)
    keys = list(members)
    if n_boot and len(keys) > 1:
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(n_boot):
            idx = np.concatenate([members[keys[k]] for k in rng.integers(0, len(keys), len(keys))])
            if len(set(n[idx].tolist())) > 1:
                reps.append(_loglog(n[idx], err[idx])[0])
        alpha_q = (1 - confidence) / 2
        out["ci"] = [float(np.quantile(reps, alpha_q)), float(np.quantile(reps, 1 - alpha_q))]
    return out


def scaling_summary(points: list[dict], *, n_boot: int = 1000) -> dict[str, Any]:
    """Exponents per axis: over w2s_train size (every weak budget apart) and over the weak label budget
    (every w2s_train size apart); the weak error does not depend on the w2s_train size, the ceiling's
    not on the weak budget, so each axis fits only the errors that move along it."""
    out: dict[str, Any] = {"w2s_size": {}, "weak_budget": {}, "resampling_unit": "seed (its nested subsets)"}
    for axis, fixed, errors in (("w2s_size", "weak_budget", ("w2s_error", "ceiling_error")),
                                ("weak_budget", "w2s_size", ("weak_error", "w2s_error"))):
        for value in sorted({p[fixed] for p in points}):
            sel = [p for p in points if p[fixed] == value]
            if len({p[axis] for p in sel}) < 2:
                continue
            out[axis][f"{fixed}={value}"] = {
                e: fit_power_law([p[axis] for p in sel], [p[e] for p in sel], [p["seed"] for p in sel], n_boot=n_boot)
                for e in errors}
    return out
