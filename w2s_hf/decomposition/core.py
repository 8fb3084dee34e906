"""The misfit decomposition of weak-to-strong gain, with bootstrap intervals.

Charikar, Pabbaraju & Shiragur (NeurIPS 2024): when the strong class is convex and the truth lies in
it, err(w2s) <= err(weak) - d(w2s, weak), i.e. gain = weak_error - w2s_error >= misfit, with equality
for a linear subspace. This module computes every quantity of that statement from per-example
predictions and gold labels; it is pure (no state, no I/O) and works on gathered arrays, so the
numbers are the same however the examples were spread over processes.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arrays import as_real_array, positive_ratio
from . import diagnostics
from .diagnostics import DIAGNOSTICS  # noqa: F401  (part of this module's API, beside QUANTITIES)
from .divergences import DIVERGENCES, Divergence  # noqa: F401  (Divergence: part of this module's API)

# Every quantity, in the order of tables, tracker keys, CSV columns and plots.
QUANTITIES = ("weak_error", "w2s_error", "misfit", "gain", "residual", "predicted_w2s_error", "ceiling_error", "pgr")
_BASE = ("weak_error", "w2s_error", "misfit", "ceiling_error")
_BOOT_ELEMENTS = 1 << 22  # resampling weights held at once (B x n), ~32 MB of float64


@dataclass
class Decomposition:
    """Weak-to-strong quantities averaged over target columns (and, in `per_target`, per column).

    pgr = gain / gap with gap = weak_error - ceiling_error. It is None (JSON null), with the reason
    in `pgr_reason`, when the gap is <= 0 or its bootstrap interval contains 0: the ratio of two
    numbers whose denominator may be zero is noise, not a share of a gap. Averaged pgr is
    sum(gain) / sum(gap) over targets, not a mean of ratios; per-target reasons are under
    `per_target[t]["pgr_reason"]`. `ci` maps each averaged quantity to its percentile-bootstrap
    interval [lo, hi] (empty when n_boot=0).

    `diagnostics` says why the residual is what it is (`w2s_hf.decomposition.diagnostics`, names in
    `DIAGNOSTICS`): its exact split into a finite-sample and a non-realizability term, their bounds, and
    every quantity with the ceiling's predictions as the truth (`proxy_*`); all None without a ceiling.
    Their intervals are in `diagnostics_ci`, per-target values in `diagnostics_per_target`, and `reading`
    is the one-line verdict (does the ceiling's own error leave the misfit able to predict the gain?).
    """

    weak_error: float
    w2s_error: float
    misfit: float
    gain: float
    residual: float
    predicted_w2s_error: float
    ceiling_error: float | None
    pgr: float | None
    n: int
    pgr_reason: str | None = None
    ci: dict[str, list[float]] = field(default_factory=dict)
    per_target: dict[str, dict[str, float]] = field(default_factory=dict)
    divergence: str = "squared"
    confidence: float = 0.95
    n_boot: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # divergence-specific quantities (intervals in `ci`)
    diagnostics: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(DIAGNOSTICS))
    diagnostics_ci: dict[str, list[float]] = field(default_factory=dict)
    diagnostics_per_target: dict[str, dict[str, float]] = field(default_factory=dict)
    reading: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only; nan (undefined pgr) becomes None so the output is strict JSON."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = _plain(value)
        return out


def decompose(y_true: Any, weak_pred: Any, w2s_pred: Any, ceiling_pred: Any = None, *,
              target_names: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
              confidence: float = 0.95, divergence: str = "squared") -> Decomposition:
    """Decompose the weak-to-strong gain on one set of examples.

    Arrays are (n,) or (n, k) and aligned by row. Bootstrap intervals resample rows with the same
    indices for every quantity, so derived quantities (gain, residual, pgr) get coherent intervals.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {divergence!r}")
    div = DIVERGENCES[divergence]
    n_boot, confidence = _check_boot(n_boot, confidence)
    y = _as_array(y_true, "y_true")
    preds = {"weak_pred": weak_pred, "w2s_pred": w2s_pred}
    if ceiling_pred is not None:
        preds["ceiling_pred"] = ceiling_pred
    arrays = {name: _as_array(a, name) for name, a in preds.items()}
    for name, a in arrays.items():
        div.check(a, name, y, "y_true")
        if a.shape != arrays["weak_pred"].shape:
            raise ValueError(f"{name} has shape {a.shape} but weak_pred has {arrays['weak_pred'].shape}")
    weak, w2s = arrays["weak_pred"], arrays["w2s_pred"]

    # per-example losses, one (n, m) block per base quantity
    pair = div.pair_loss or div.loss
    losses = [div.loss(weak, y), div.loss(w2s, y), pair(weak, w2s)]  # misfit = D(w2s, weak)
    if ceiling_pred is not None:
        losses.append(div.loss(arrays["ceiling_pred"], y))
    n, m = losses[0].shape
    names = [f"target_{j}" for j in range(m)] if target_names is None else [str(t) for t in target_names]
    if len(names) != m or len(set(names)) != m:
        raise ValueError(f"target_names must be {m} distinct names (one per target column), got {names}")

    per_example = np.concatenate(losses, axis=1)  # (n, q*m)
    columns = {} if div.extras is None else div.extras(y, weak, w2s, arrays.get("ceiling_pred"))
    present = [name for name, col in columns.items() if col is not None]
    split_block = diagnostics.per_example_columns(div, y, weak, w2s, arrays.get("ceiling_pred"))  # (n, 0): none
    base = per_example.mean(axis=0)[None, :]  # (1, q*m): the point estimate as a "replicate"
    point = _derive(base, len(losses), m)
    per_target = {
        t: {key: float(vals[0, j]) for key, vals in point.items() if vals.ndim == 2}
        for j, t in enumerate(names)
    }
    ci: dict[str, list[float]] = {}
    if n_boot > 0:
        # the extras and the residual split (per-example columns, last) ride in the same resamples: one pass
        extra_block = [np.stack([columns[c] for c in present], axis=1)] if present else []
        means = _bootstrap_means(np.concatenate([per_example, *extra_block, split_block], axis=1), n_boot, seed)
        boot = _derive(means[:, : per_example.shape[1]], len(losses), m)
        alpha = (1.0 - confidence) / 2.0
        for key, vals in boot.items():
            if vals.ndim == 1:
                ci[key] = [_nanquantile(vals, alpha), _nanquantile(vals, 1.0 - alpha)]
        for j, name in enumerate(present):
            vals = means[:, per_example.shape[1] + j]
            ci[name] = [_nanquantile(vals, alpha), _nanquantile(vals, 1.0 - alpha)]
    averaged = {key.removesuffix("_avg"): float(vals[0]) for key, vals in point.items() if vals.ndim == 1}
    averaged.setdefault("ceiling_error", None)
    averaged.setdefault("pgr", None)
    if ceiling_pred is not None:
        gaps = {"avg": (point["gap_avg"][0], boot["gap_avg"] if n_boot > 0 else None)}
        gaps.update({t: (point["gap"][0, j], boot["gap"][:, j] if n_boot > 0 else None) for j, t in enumerate(names)})
        for where, (gap, gap_boot) in gaps.items():
            reason = _pgr_reason(gap, gap_boot, confidence)
            if reason is not None:
                values = averaged if where == "avg" else per_target[where]
                values["pgr"], values["pgr_reason"] = None, reason
        if averaged.get("pgr_reason"):
            ci.pop("pgr_avg", None)
    for values in per_target.values():
        values.pop("gap", None)
    averaged.pop("gap", None)
    ci.pop("gap_avg", None)
    extras = {name: None if col is None else float(np.mean(col)) for name, col in columns.items()}
    diag = {} if split_block.shape[1] == 0 else _diagnostics(
        split_block, means[:, per_example.shape[1] + len(present):] if n_boot > 0 else None, point,
        boot if n_boot > 0 else None, names, confidence)
    return Decomposition(**averaged, n=int(n), ci={k.removesuffix("_avg"): v for k, v in ci.items()},
                         per_target=per_target, divergence=div.name, confidence=confidence, n_boot=n_boot,
                         extras=extras, **diag)


def _diagnostics(block: np.ndarray, boot_means: np.ndarray | None, base: dict[str, np.ndarray],
                 base_boot: dict[str, np.ndarray] | None, names: list[str], confidence: float) -> dict[str, Any]:
    """Decomposition fields of the residual diagnostics: point values (averaged and per target), the
    reading, and intervals from the bootstrap means of the same replicates as the base quantities
    (`base`, `base_boot`: the base quantities' point and replicate values from `_derive`)."""
    point = diagnostics.derive(block.mean(axis=0)[None, :], base["misfit"])
    values = {k: float(point[f"{k}_avg"][0]) for k in DIAGNOSTICS}
    per_target = {t: {k: float(point[k][0, j]) for k in DIAGNOSTICS} for j, t in enumerate(names)}
    ci: dict[str, list[float]] = {}
    if boot_means is not None:
        boot = diagnostics.derive(boot_means, base_boot["misfit"])
        alpha = (1.0 - confidence) / 2.0
        for k in DIAGNOSTICS:
            if math.isfinite(values[k]):
                ci[k] = [_nanquantile(boot[f"{k}_avg"], alpha), _nanquantile(boot[f"{k}_avg"], 1.0 - alpha)]
    text = diagnostics.reading(values, float(base["misfit_avg"][0]), float(base["residual_avg"][0]))
    return {"diagnostics": values, "diagnostics_ci": ci, "diagnostics_per_target": per_target, "reading": text}


def fit_gain_on_misfit(misfit: Any, gain: Any, *, n_boot: int = 1000, seed: int = 0,
                       confidence: float = 0.95, clusters: Sequence[Any] | None = None) -> dict[str, Any]:
    """OLS of gain on misfit over points (e.g. one per weak model), with bootstrap intervals.

    The theory predicts slope 1 and intercept 0 in the realizable, infinite-sample limit. r2 is nan
    when gain is constant; bootstrap replicates that draw a single distinct misfit are skipped.
    `clusters` (one label per point) makes the bootstrap resample whole clusters: points of one run
    (its targets, its test set) are correlated, and resampling them as independent narrows the
    interval. `out["resampling_unit"]` says which was done.
    """
    n_boot, confidence = _check_boot(n_boot, confidence)
    x = _as_array(misfit, "misfit")
    y = _as_array(gain, "gain")
    if x.shape[1] != 1 or y.shape[1] != 1:
        raise ValueError(f"misfit and gain must be 1-D, got shapes {np.shape(misfit)} and {np.shape(gain)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"misfit has {x.shape[0]} points but gain has {y.shape[0]}")
    if x.shape[0] < 2 or np.ptp(x) == 0:
        raise ValueError("misfit needs at least two points with different values to fit a line")
    x, y = x[:, 0], y[:, 0]
    slope, intercept, r2 = (float(v[0]) for v in _weighted_ols(np.ones((1, x.size)), x, y))
    out: dict[str, Any] = {"slope": slope, "intercept": intercept, "r2": _plain(r2), "n": int(x.size), "ci": {}}
    if clusters is None:
        member, n_units = np.arange(x.size), x.size
    else:
        if len(clusters) != x.size:
            raise ValueError(f"clusters has {len(clusters)} labels but there are {x.size} points")
        labels = {c: i for i, c in enumerate(dict.fromkeys(map(_cluster_key, clusters)))}
        member, n_units = np.array([labels[_cluster_key(c)] for c in clusters]), len(labels)
        out["n_clusters"] = n_units
    out["resampling_unit"] = "point" if clusters is None else "cluster"
    if n_boot > 0:
        alpha = (1.0 - confidence) / 2.0
        reps = [np.concatenate(parts) for parts in zip(
            *(_weighted_ols(w[:, member], x, y) for w in _resample_counts(n_units, n_boot, seed)))]
        for key, vals in zip(("slope", "intercept", "r2"), reps):
            out["ci"][key] = [_nanquantile(vals, alpha), _nanquantile(vals, 1.0 - alpha)]
    return out


def _cluster_key(label: Any) -> Any:
    return tuple(label) if isinstance(label, list) else label


def _derive(means: np.ndarray, q: int, m: int) -> dict[str, np.ndarray]:
    """Derived quantities from replicate means (B, q*m): per target (B, m) and averaged (B,)."""
    blocks = dict(zip(_BASE, np.split(means, q, axis=1)))
    out = {
        "weak_error": blocks["weak_error"],
        "w2s_error": blocks["w2s_error"],
        "misfit": blocks["misfit"],
        "gain": blocks["weak_error"] - blocks["w2s_error"],
        "residual": blocks["weak_error"] - blocks["w2s_error"] - blocks["misfit"],
        "predicted_w2s_error": blocks["weak_error"] - blocks["misfit"],
    }
    if "ceiling_error" in blocks:
        out["ceiling_error"] = blocks["ceiling_error"]
        out["gap"] = blocks["weak_error"] - blocks["ceiling_error"]
        out["pgr"] = positive_ratio(out["gain"], out["gap"])
    # Averaged values are the mean over target columns of the per-target values, except pgr:
    # sum(gain) / sum(gap), so a target whose gap is near zero cannot blow the average up.
    out.update({f"{key}_avg": vals.mean(axis=1) for key, vals in list(out.items())})
    if "gap" in out:
        out["pgr_avg"] = positive_ratio(out["gain_avg"], out["gap_avg"])
    return out


def _pgr_reason(gap: float, gap_boot: np.ndarray | None, confidence: float) -> str | None:
    """Why pgr is withheld (None when it is reported): gap <= 0, or a bootstrap interval with 0 in it."""
    if not gap > 0:
        return f"gap weak_error - ceiling_error = {gap:.4g} <= 0: the ceiling is no better than the weak model"
    if gap_boot is not None:
        alpha = (1.0 - confidence) / 2.0
        lo, hi = _nanquantile(gap_boot, alpha), _nanquantile(gap_boot, 1.0 - alpha)
        if lo <= 0 <= hi:
            return (f"the {confidence:.0%} bootstrap interval of the gap weak_error - ceiling_error "
                    f"[{lo:.4g}, {hi:.4g}] contains 0")
    return None


def _resample_counts(n: int, n_boot: int, seed: int):
    """Yield (B, n) float matrices of bootstrap multiplicities (rows of `n` draws with replacement)."""
    rng = np.random.default_rng(seed)
    batch = max(1, _BOOT_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _bootstrap_means(per_example: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, columns) means of resampled rows; one GEMM per batch of replicates."""
    n = per_example.shape[0]
    return np.concatenate([counts @ per_example / n for counts in _resample_counts(n, n_boot, seed)])


def _weighted_ols(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, intercept, r2 of y on x for each row of weights w (B, n)."""
    # Centre on the full-sample means first so the weighted moments do not cancel.
    x0, y0 = float(x.mean()), float(y.mean())
    xc, yc = x - x0, y - y0
    sw = w.sum(axis=1)
    mx, my = (w @ xc) / sw, (w @ yc) / sw
    sxx = w @ (xc * xc) - sw * mx * mx
    sxy = w @ (xc * yc) - sw * mx * my
    syy = w @ (yc * yc) - sw * my * my
    # A replicate that drew (almost) a single distinct misfit has no slope.
    flat = sxx <= 1e-12 * sw * float(np.mean(xc * xc))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(flat, np.nan, sxy / sxx)
        r2 = np.where(flat | (syy <= 0), np.nan, np.clip(sxy * sxy / (sxx * syy), 0.0, 1.0))
    intercept = (y0 + my) - slope * (x0 + mx)
    return slope, intercept, r2


def _check_boot(n_boot: Any, confidence: Any) -> tuple[int, float]:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer (0 disables intervals), got {n_boot!r}")
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return int(n_boot), confidence


def _as_array(a: Any, name: str) -> np.ndarray:
    arr = as_real_array(a, name)
    return arr.astype(np.float64).reshape(arr.shape[0], -1)


def _nanquantile(vals: np.ndarray, q: float) -> float:
    finite = vals[np.isfinite(vals)]
    return float(np.quantile(finite, q)) if finite.size else math.nan


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
