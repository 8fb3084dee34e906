"""Choosing a panel's strong representation and its teachers' fit on val, by a rule declared before any test number.

A search is a set of sweeps (one per strong candidate, each over the same weak families on graded label
budgets) run with `eval_split: val`, so every number it reads is a val number. A candidate is a sweep's whole
panel, as in the paper's figure: the gold-label line of gain on misfit over every point of every weak family.
The rule picks:

1. among the candidates that meet the targets on val (slope in [0.8, 1.2], R² ≥ 0.7, gain > 0 on ≥ 80% of
   points), the one whose slope is nearest 1;
2. if none meets them, the candidate whose slope is nearest 1 (then the panel says it missed).

Ties go to the higher R². Weak families are not chosen one by one (that would fit the panel to val's noise);
their lines are reported beside the choice as diagnostics. The test split is never read here: the sweeps'
`split` column must say val.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..decomposition.core import fit_gain_on_misfit
from ..errors import ConfigError

TARGETS = {"slope": (0.8, 1.2), "r2": 0.7, "share_positive_gain": 0.8}


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    path = sweep_dir / "sweep.csv"
    if not path.is_file():
        raise ConfigError(f"{path}: no sweep.csv; run the search sweep first (w2s sweep --config ...)")
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["direction"] == "normal"]
    bad = sorted({r["split"] for r in rows if not r["split"].startswith("val")})
    if bad:
        raise ConfigError(f"{path}: rows scored on {bad}; a choice on val reads val rows only (eval_split: val)")
    return rows


def _line(rows: list[dict[str, str]], strong: str, weak: str, sweep_dir: Path) -> dict[str, Any]:
    """The gold-label line of gain on misfit over `rows`, with its mean residual split."""
    misfit = [float(r["misfit"]) for r in rows]
    gain = [float(r["gain"]) for r in rows]
    line = fit_gain_on_misfit(misfit, gain, n_boot=0)
    n = len(rows)
    return {"strong": strong, "weak": weak, "points": n, "slope": line["slope"], "r2": line["r2"],
            "share_positive_gain": sum(g > 0 for g in gain) / n,
            "mean_misfit": sum(misfit) / n, "mean_gain": sum(gain) / n,
            "mean_nonrealizability": sum(float(r["nonrealizability_term"]) for r in rows) / n,
            "mean_ceiling_error": sum(float(r["ceiling_error"]) for r in rows) / n, "sweep": str(sweep_dir)}


def teachers_of(sweep_dir: Path) -> str:
    """How a search sweep's weak heads were fitted, from its sweep.json: the ridge (chosen on val or fixed)
    and whether they were clipped to their label range (`weak_clip`). Two candidates with one strong
    representation differ here."""
    import json

    path = sweep_dir / "sweep.json"
    try:
        config = json.loads(path.read_text()).get("config", {}) if path.is_file() else {}
    except ValueError as err:
        raise ConfigError(f"{path}: unreadable ({err}); rerun the search sweep") from None
    if not config:
        return "n/a"
    from dataclasses import fields

    from ..config.run import HeadArguments

    head = HeadArguments(**{f.name: config[f.name] for f in fields(HeadArguments) if f.name in config})
    weak = head.ridge_for("weak", is_student=False)  # None: chosen on val
    return f"{'on val' if weak is None else f'ridge {weak:g}'}, {'clipped' if head.weak_clip else 'unclipped'}"


def search_lines(sweep_dirs: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(candidates, families) from one read of each search sweep: one line per sweep (its whole panel:
    weak = "all families"), the rule's candidates; and one per (strong, weak family), diagnostics only."""
    candidates, families = [], []
    for sweep_dir in map(Path, sweep_dirs):
        rows = _rows(sweep_dir)
        strong = sorted({r["strong_model"] for r in rows})
        if len(strong) != 1:
            raise ConfigError(f"{sweep_dir}: a search sweep has one strong representation, found {strong}")
        teachers = teachers_of(sweep_dir)
        candidates.append({**_line(rows, strong[0], "all families", sweep_dir), "teachers": teachers})
        groups: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in rows:
            groups[row["weak_model"]].append(row)
        families += [{**_line(members, strong[0], weak, sweep_dir), "teachers": teachers}
                     for weak, members in groups.items()]
    return candidates, families


def candidate_lines(sweep_dirs: list[Path]) -> list[dict[str, Any]]:
    """The rule's candidates: one line per search sweep (see `search_lines`)."""
    return search_lines(sweep_dirs)[0]


def family_lines(sweep_dirs: list[Path]) -> list[dict[str, Any]]:
    """One line per (strong, weak family) over its val points: diagnostics beside the choice, not candidates."""
    return search_lines(sweep_dirs)[1]


def meets_targets(line: dict[str, Any]) -> bool:
    low, high = TARGETS["slope"]
    r2 = line["r2"] if line["r2"] is not None and not math.isnan(line["r2"]) else -math.inf
    return (low <= line["slope"] <= high and r2 >= TARGETS["r2"]
            and line["share_positive_gain"] >= TARGETS["share_positive_gain"])


def choose(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule of the module docstring; returns the chosen line with `met_on_val` and `rule` set."""
    if not lines:
        raise ConfigError("no candidate lines: the search sweeps hold no normal-direction rows")
    meeting = [ln for ln in lines if meets_targets(ln)]
    pool = meeting or lines
    best = min(pool, key=lambda ln: (abs(ln["slope"] - 1.0), -(ln["r2"] or 0.0)))
    rule = ("met the targets on val; slope nearest 1 among the " f"{len(meeting)} that did" if meeting
            else "no candidate met the targets on val; slope nearest 1 over all")
    return {**best, "met_on_val": bool(meeting), "rule": rule, "candidates": len(lines)}
