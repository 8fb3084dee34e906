"""Scaling over N: weak, w2s and ceiling errors as the w2s_train size (and the weak label budget) grows.

Two ways to get the points, one set of rows, one fit, one figure:

- a sweep with the axes `w2s_sizes` / `weak_budgets` (run keys `w2s_size` / `weak_budget`): every
  point is a full run (any task kind, any head, LoRA included; its decomposition and predictors);
  `sweep_scaling` fits its rows;
- `w2s scaling` (`scaling_points`): from one finished regression run per seed, the protocol's exact
  ridge heads are refitted on the same nested subsets in-process, each ridge chosen on val as
  `PROTOCOL` says (weak: val gold; student: val weak labels; ceiling: val gold): cheap, regression only.

Both draw the first N rows of one seeded order of w2s_train (and the first b of weak_train) with
`data.splits.nested_subset` on the split seed's streams, so a size of `w2s scaling` trains on the rows of
the sweep point with that `w2s_size`. The ceiling trains on the same N rows as the student (the
comparison the exponents need; the ceiling on every row is the N = all point). Errors are read on test.

A power law err = a * N^(-alpha) is fitted to each error by least squares in log-log coordinates
(`fit_power_law`), with a 95% interval that resamples seeds (the subsets of one seed are nested, so
its points are one draw). Wu et al. (2026) report that the student's exponent can beat the
teacher's; Ildiz et al. (ICLR 2025) give the ridgeless risk.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..data.splits import STREAM_W2S_SIZE, STREAM_WEAK_BUDGET, nested_subset

ERRORS = ("weak_error", "w2s_error", "ceiling_error")
# (axis: the configured size, None = all; its numeric rows; the other axis, held fixed; the errors that move)
# the weak error does not depend on the w2s_train size, the ceiling's not on the weak budget
AXES = (("w2s_size", "w2s_rows", "weak_budget", ("w2s_error", "ceiling_error")),
        ("weak_budget", "weak_rows", "w2s_size", ("weak_error", "w2s_error")))
RESAMPLING_UNIT = "seed (its nested subsets are one draw)"
BUDGET_COLORS = ("#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#8c564b")  # one per weak budget in a figure


def _mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred.reshape(y.shape) - y) ** 2))


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
    Xs = {s: rows("strong", s) for s in ("w2s_train", "val", "test")}
    Xw = {s: rows("weak", s) for s in ("weak_train", "w2s_train", "val", "test")}
    ceilings = {}
    for n in sizes:
        idx = nested_subset(n_w2s, n, seed, STREAM_W2S_SIZE)
        head, _ = fit_ridge(Xs["w2s_train"][idx], gold["w2s_train"][idx], Xs["val"], gold["val"])
        ceilings[n] = _mse(head.predict(Xs["test"]), gold["test"])
    points = []
    for budget in weak_budgets:
        idx_weak = nested_subset(n_weak, budget or n_weak, seed, STREAM_WEAK_BUDGET)
        weak, _ = fit_ridge(Xw["weak_train"][idx_weak], gold["weak_train"][idx_weak], Xw["val"], gold["val"])
        labels = {s: weak.predict(Xw[s]).reshape(len(gold[s]), -1) for s in ("w2s_train", "val", "test")}
        weak_error = _mse(labels["test"], gold["test"])
        for n in sizes:
            idx = nested_subset(n_w2s, n, seed, STREAM_W2S_SIZE)
            student, record = fit_ridge(Xs["w2s_train"][idx], labels["w2s_train"][idx], Xs["val"], labels["val"])
            pred = student.predict(Xs["test"]).reshape(labels["test"].shape)
            w2s_error = _mse(pred, gold["test"])
            points.append({"seed": seed, "weak_budget": budget, "w2s_size": n, "weak_rows": len(idx_weak),
                           "w2s_rows": n, "weak_error": weak_error, "w2s_error": w2s_error,
                           "ceiling_error": ceilings[n], "gain": weak_error - w2s_error,
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


def _label(value: int | None) -> str:
    return "all" if value is None else str(value)


def scaling_summary(points: list[dict], *, n_boot: int = 1000) -> dict[str, Any]:
    """Exponents per axis (`AXES`): over the w2s_train rows (each weak budget apart) and over the weak label
    budget's rows (each w2s_train size apart). Points: seed, weak_budget, w2s_size (configured; None = all),
    weak_rows, w2s_rows (the rows trained on) and the errors."""
    out: dict[str, Any] = {"w2s_size": {}, "weak_budget": {}, "resampling_unit": RESAMPLING_UNIT}
    for axis, rows, fixed, errors in AXES:
        for value in sorted({p[fixed] for p in points}, key=lambda v: (v is None, v or 0)):
            sel = [p for p in points if p[fixed] == value]
            if len({p[rows] for p in sel}) < 2:
                continue
            out[axis][f"{fixed}={_label(value)}"] = {e: _fit_or_note(sel, rows, e, n_boot) for e in errors}
    return out


def _fit_or_note(points: list[dict], rows: str, error: str, n_boot: int) -> dict[str, Any]:
    """`fit_power_law`, or why there is none (an error of 0: no logarithm), so one such panel does not end a sweep."""
    try:
        return fit_power_law([p[rows] for p in points], [p[error] for p in points], [p["seed"] for p in points],
                             n_boot=n_boot)
    except ValueError as err:
        return {"alpha": None, "a": None, "ci": None, "note": str(err)}


def sweep_scaling(rows: list[dict], *, n_boot: int = 1000) -> dict[str, Any] | None:
    """The exponents of a sweep's rows (one per run and target) per (weak model, target) panel; None when
    neither w2s_sizes nor weak_budgets varies. The ceiling on every w2s_train row is the w2s_size=all point's
    (`ceiling_error_all_rows`, mean over seeds)."""
    normal = [r for r in rows if r["direction"] == "normal"]
    if len({r["w2s_size"] for r in normal}) < 2 and len({r["weak_budget"] for r in normal}) < 2:
        return None
    panels: dict[str, Any] = {}
    for key in dict.fromkeys((r["weak_model"], r["target"]) for r in normal):
        sel = [r for r in normal if (r["weak_model"], r["target"]) == key]
        full = [r["ceiling_error"] for r in sel if r["w2s_size"] is None and r["ceiling_error"] is not None]
        summary = scaling_summary(sel, n_boot=n_boot) if all(r["ceiling_error"] is not None for r in sel) else {
            "note": "no ceiling error to fit (a run without a ceiling)"}
        panels[" / ".join(key)] = {**summary, "ceiling_error_all_rows": float(np.mean(full)) if full else None}
    return {"panels": panels, "resampling_unit": RESAMPLING_UNIT, "n_boot": n_boot,
            "ceiling": "trained on the same w2s_train rows as the student (w2s_size); on every row at w2s_size=all",
            "errors_on": "the sweep's eval_split"}


def scaling_panels(points: list[dict], fits: dict[str, dict], panel_key: str) -> list[dict[str, Any]]:
    """The figure's panels (`hooks.scaling_plot.plot_scaling`): per value of `panel_key`, the mean over seeds
    of w2s_error (one series per weak budget) and ceiling_error against w2s_rows, with the lines of `fits`
    ({panel: scaling_summary}), and the weak error of each budget as a level."""
    panels = []
    for panel in dict.fromkeys(p[panel_key] for p in points):
        sel = [p for p in points if p[panel_key] == panel]
        series, levels = [], []
        budgets = sorted({p["weak_budget"] for p in sel}, key=lambda v: (v is None, v or 0))
        for k, budget in enumerate(budgets):
            mine = [p for p in sel if p["weak_budget"] == budget]
            # one colour for a budget's student and its teacher's level
            color = BUDGET_COLORS[k % len(BUDGET_COLORS)] if len(budgets) > 1 else None
            fit = fits.get(panel, {}).get("w2s_size", {}).get(f"weak_budget={_label(budget)}", {})
            suffix = "" if len(budgets) == 1 else f", weak budget {_label(budget)}"
            wanted = ("w2s_error", "ceiling_error") if budget == budgets[-1] else ("w2s_error",)
            for error in wanted:
                sizes = sorted({p["w2s_size"] for p in mine}, key=lambda v: (v is None, v or 0))
                at = [[p for p in mine if p["w2s_size"] == s] for s in sizes]
                series.append({"error": error, "label": error + ("" if error == "ceiling_error" else suffix),
                               "color": None if error == "ceiling_error" else color,
                               "n": [np.mean([p["w2s_rows"] for p in g]) for g in at],
                               "err": [np.mean([p[error] for p in g]) for g in at],
                               "fit": fit.get(error) if (fit.get(error) or {}).get("alpha") is not None else None})
            levels.append({"error": "weak_error", "label": "weak_error" + suffix, "color": color,
                           "value": float(np.mean([p["weak_error"] for p in mine]))})
        panels.append({"title": str(panel), "series": series, "levels": levels})
    return panels
