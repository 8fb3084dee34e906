"""Which gain predictor predicts best across a sweep's points: rank correlation, R², selection regret.

Each predictor (`w2s_hf.decomposition.predictors`) is scored against the measured gain of the sweep's
points (one per run and target) with nothing fitted: the sign each predictor should have is fixed by
its paper (`DIRECTIONS`), and

    spearman        rank correlation of value and gain, and `aligned` = spearman x direction
                    (> 0: the paper's direction holds)
    r2              squared Pearson correlation (the R² of the best line; no line is used for anything)
    r2_identity     for the misfit only: 1 - sum (gain - misfit)^2 / sum (gain - mean gain)^2, the fit-free
                    R² of the theorem's prediction gain = misfit
    regret          per scenario (seed, target), the weak model with the largest value x direction is
                    chosen; regret = its test w2s_error minus the best one's

Intervals resample what is independent: runs (all their targets together) for the correlations,
seeds for the regret (every weak model of a seed shares its split, so the scenarios of one seed
are one draw).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..decomposition.predictors import DIRECTIONS, PREDICTORS

BOOT_SEED = 0
CORRELATION_UNIT = "(direction, weak model, seed) run, all its targets together"
REGRET_UNIT = "seed (its scenarios: every target; every weak model of a seed shares its split)"


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _stats(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman's rho, squared Pearson r) of the points."""
    return _corr(_ranks(x), _ranks(y)), _corr(x, y) ** 2


def _interval(values: list[float], confidence: float) -> list[float | None]:
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if finite.size == 0:
        return [None, None]
    alpha = (1 - confidence) / 2
    return [float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))]


def _clustered(units: list[Any], n_boot: int, seed: int):
    """Yield, per bootstrap replicate, the indices of the points of the units drawn with replacement."""
    members: dict[Any, list[int]] = defaultdict(list)
    for i, unit in enumerate(units):
        members[unit].append(i)
    keys = list(members)
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.concatenate([members[keys[k]] for k in rng.integers(0, len(keys), len(keys))])


def correlation(points: list[dict[str, Any]], name: str, *, n_boot: int = 1000, seed: int = BOOT_SEED,
                confidence: float = 0.95) -> dict[str, Any]:
    """Spearman and R² of predictor `name` with the gain over `points` (rows of sweep.csv), run-clustered."""
    known = [p for p in points if p.get(name) is not None and p.get("gain") is not None]
    out: dict[str, Any] = {"n": len(known), "direction": DIRECTIONS.get(name, 1)}
    x = np.array([float(p[name]) for p in known])
    y = np.array([float(p["gain"]) for p in known])
    if len(known) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**out, "spearman": None, "aligned": None, "r2": None, "ci": {},
                "note": "fewer than three points, or a constant predictor or gain: no correlation"}
    rho, r2 = _stats(x, y)
    out.update(spearman=rho, aligned=rho * out["direction"], r2=r2)
    if name == "misfit":
        out["r2_identity"] = float(1 - ((y - x) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    units = [(p["direction"], p["weak_model"], p["seed"]) for p in known]
    out["n_units"] = len(set(units))
    reps = [_stats(x[idx], y[idx]) for idx in _clustered(units, n_boot, seed)] if n_boot else []
    out["ci"] = {}
    if reps:
        lo, hi = _interval([r[0] for r in reps], confidence)
        out["ci"] = {"spearman": [lo, hi], "r2": _interval([r[1] for r in reps], confidence),
                     "aligned": [lo, hi] if lo is None or out["direction"] > 0 else [-hi, -lo]}
    return _plain(out)


def selection_regret(points: list[dict[str, Any]], name: str, *, n_boot: int = 1000, seed: int = BOOT_SEED,
                     confidence: float = 0.95) -> dict[str, Any]:
    """Choose, per (seed, target[, weak budget, w2s_train size]), the weak model with the largest value x
    direction; the mean regret in test w2s_error, with an interval over seeds. Scenarios where a weak model
    lacks the value are skipped."""
    direction = DIRECTIONS.get(name, 1)
    scenarios: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for p in points:  # a choice among weak models at one weak budget and w2s_train size (the sweep's axes)
        scenarios[(p["seed"], p["target"], p.get("weak_budget"), p.get("w2s_size"))].append(p)
    regrets, seeds, choices = [], [], {}
    for (s, target, budget, size), cands in sorted(scenarios.items(), key=lambda kv: str(kv[0])):
        if len(cands) < 2 or any(c.get(name) is None for c in cands):
            continue
        chosen = max(cands, key=lambda c: direction * float(c[name]))
        best = min(float(c["w2s_error"]) for c in cands)
        regrets.append(float(chosen["w2s_error"]) - best)
        seeds.append(s)
        choices[f"seed{s}/{target}" + ("" if budget in (None, "") else f"/n{budget}")
                + ("" if size in (None, "") else f"/N{size}")] = chosen["weak_model"]
    out: dict[str, Any] = {"n_scenarios": len(regrets), "chosen": choices,
                           "mean_regret": float(np.mean(regrets)) if regrets else None, "ci": None}
    if regrets and n_boot and len(set(seeds)) > 1:
        r = np.asarray(regrets)
        reps = [float(r[idx].mean()) for idx in _clustered(seeds, n_boot, seed)]
        out["ci"] = _interval(reps, confidence)
    return out


def score_predictors(points: list[dict[str, Any]], *, n_boot: int = 1000, seed: int = BOOT_SEED,
                     confidence: float = 0.95) -> dict[str, Any]:
    """Every predictor found in the points: its correlations with the gain and its selection regret."""
    names = [p for p in PREDICTORS if any(r.get(p) is not None for r in points)]
    scores = {name: {**correlation(points, name, n_boot=n_boot, seed=seed, confidence=confidence),
                     "selection": selection_regret(points, name, n_boot=n_boot, seed=seed, confidence=confidence)}
              for name in names}
    return {"scores": scores, "resampling_unit": {"correlation": CORRELATION_UNIT, "regret": REGRET_UNIT},
            "n_boot": n_boot, "seed": seed, "gain_split": "test",
            "note": "directions fixed by each predictor's paper, none fitted; r2 is descriptive (no line is used)"}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
