"""The console summary of a sweep: one compact table of the runs and the gain-on-misfit line with its interval.

A sweep of 3 weak models x 3 seeds x 2 targets used to print 18 full decomposition tables and end in
raw JSON without the slope's interval; the full numbers are in sweep.csv / sweep.json and each run
folder's results.json, so the console keeps to what a reader checks first.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from typing import Any

import numpy as np

COLUMNS = ("weak_error", "w2s_error", "misfit", "gain", "residual")


def _interval(fit: dict[str, Any], key: str) -> str:
    ci = (fit.get("ci") or {}).get(key)
    if not ci or any(v is None for v in ci):
        return "no interval (n_boot = 0 or too few runs)"
    return f"95% interval [{ci[0]:.3f}, {ci[1]:.3f}]"


def _line(label: str, fit: dict[str, Any]) -> str:
    if fit.get("slope") is None:
        return f"{label}: {fit.get('note', 'no line')}"
    return (f"{label}: slope {fit['slope']:.3f} ({_interval(fit, 'slope')}), intercept {fit['intercept']:.4f}, "
            f"R^2 {fit['r2']:.3f}, {fit['n']} points")


def _alpha(fit: dict[str, Any]) -> str:
    if fit.get("alpha") is None:
        return f"no fit ({fit.get('note')})"
    ci = fit.get("ci")
    if ci:
        return f"{fit['alpha']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    why = "one seed" if fit.get("n_seeds", 0) <= 1 else "no bootstrap (n_boot 0)"
    return f"{fit['alpha']:.3f} (no interval: {why})"


def scaling_lines(scaling: dict[str, Any] | None) -> list[str]:
    """The power-law exponents of a sweep with w2s_sizes / weak_budgets axes (sweep.json -> scaling)."""
    if not scaling:
        return []
    out = [f"power laws err = a*N^-alpha, alpha with 95% interval (resampling {scaling['resampling_unit']}):"]
    for panel, fits in scaling["panels"].items():
        for axis, rows in (("w2s_size", "w2s_train rows"), ("weak_budget", "weak label budget")):
            for fixed, errors in fits.get(axis, {}).items():
                out.append(f"  {panel}, over the {rows} ({fixed}): "
                           + ", ".join(f"{e} {_alpha(f)}" for e, f in errors.items()))
    return out


def format_sweep_summary(summary: dict[str, Any], csv_path: str | os.PathLike) -> str:
    """Runs averaged over seeds per (weak model, target), then the fitted line(s), residual and selection."""
    with open(csv_path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["direction"] == "normal"]
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:  # a weak model at each label budget (@n) and w2s_train size (@N) is a row of its own
        label = (r["weak_model"] + (f"@n{r['weak_budget']}" if r.get("weak_budget") else "")
                 + (f"@N{r['w2s_size']}" if r.get("w2s_size") else ""))
        groups[(label, r["target"])].append(r)
    width = max([len("weak model"), *(len(w) for w, _ in groups)])
    twidth = max([len("target"), *(len(t) for _, t in groups)])
    split = rows[0]["split"] if rows else "?"
    out = [f"sweep: {summary['n_runs']} runs, {split} split, means over seeds",
           f"{'weak model':<{width}}  {'target':<{twidth}}  seeds  " + "  ".join(f"{c:>10}" for c in COLUMNS)]
    for (weak, target), members in groups.items():
        means = [np.mean([float(m[c]) for m in members]) for c in COLUMNS]
        out.append(f"{weak:<{width}}  {target:<{twidth}}  {len(members):>5}  "
                   + "  ".join(f"{v:>10.4f}" for v in means))
    fits = summary["fit"]
    out.append(_line("gain on misfit, all points", fits["all"]))
    for target, fit in (fits.get("per_target") or {}).items():
        out.append(_line(f"  {target}", fit))
    out.append(f"intervals resample {summary['bootstrap']['resampling_unit']}; "
               f"mean residual {summary['mean_residual']:.4f}; gain > 0 in {summary['share_positive_gain']:.0%}")
    out += scaling_lines(summary.get("scaling"))
    regret = summary["selection"]["mean_regret"]
    if regret:
        out.append("weak-model choice, mean regret: " + ", ".join(f"{k} {v:.4f}" for k, v in regret.items()))
    out.append(f"strongest representation by val ceiling (val chose its ridges): "
               f"{summary['ceiling_error_val']['strongest']}")
    return "\n".join(out)
