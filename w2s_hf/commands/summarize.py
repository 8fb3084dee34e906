"""Tabulate finished sweeps (sweep.json / sweep.csv) as Markdown and draw one combined gain-vs-misfit figure.

This is what produced the tables of docs/results.md and docs/figures/*.png:

    w2s summarize --sweeps runs/sweeps/esol_scaffold runs/sweeps/freesolv_scaffold \
        runs/sweeps/lipophilicity_scaffold --figure docs/figures/qsar_scaffold.png
    w2s summarize runs/sweeps/ellipse --figure docs/figures/ellipse.png --per_target

The sweep folders may also come first, without `--sweeps` (the older positional form).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from w2s_hf.config import ConfigError


@dataclass
class SummarizeArguments:
    sweeps: list[str] = field(default_factory=list, metadata={"help": "Sweep output folders (with sweep.json)."})
    figure: str | None = field(default=None, metadata={"help": "Write a combined gain-vs-misfit PNG here."})
    per_target: bool = field(default=False, metadata={"help": "One panel per target instead of per sweep."})


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fmt_ridge(ridge: dict | None) -> str:
    """The chosen student ridge next to the slope: 0 is the theorem's setting (a subspace)."""
    if not ridge or ridge.get("median") is None:
        return "n/a"
    if not ridge["matches_theorem"]:
        return f"{ridge['median']:.3g}"
    # the theorem needs only the student at 0; ridge 0 for every head changes the teacher and the ceiling too
    return "0 (all heads)" if str(ridge.get("heads") or "").startswith("all heads") else "0 (theorem)"


def _fmt_split(split: dict | None) -> str:
    """Three cells from sweep.json's `residual_split` (docs/diagnostics.md); n/a for older sweeps."""
    if not split:
        return "n/a | n/a | n/a"
    mean, proxy = split["mean"], split["fit_proxy_truth"]
    lo, hi = proxy["ci"].get("slope", (None, None))
    return (f"{mean['finite_sample_term']:+.4f} + {mean['nonrealizability_term']:+.4f} "
            f"| {split['share_nonrealizability_bound_above_misfit']:.0%} "
            f"| {_fmt(proxy['slope'], 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}], R² {_fmt(proxy['r2'], 2)}")


def table(sweeps: list[Path]) -> str:
    lines = [
        "| sweep | strong | points | slope [95% CI] | student ridge (median) | R² | mean residual | gain > 0 "
        "| regret, misfit on val: predicted_w2s_error / lowest weak_error / largest misfit "
        "| regret, misfit on unlabelled test | strongest by val ceiling (val used for selection) "
        "| mean residual = finite-sample + non-realizability | non-realizability bound > misfit "
        "| ceiling as truth: slope [95% CI], R² |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in sweeps:
        s = json.loads((folder / "sweep.json").read_text())
        fit, regret = s["fit"]["all"], s["selection"]["mean_regret"]
        clean = s["selection"].get("by_misfit_split", {}).get(f"misfit_on_{s['config'].get('eval_split', 'test')}")
        clean = clean["mean_regret"] if clean else {}
        lo, hi = fit["ci"].get("slope", (None, None))  # no interval without bootstrap or a line
        lines.append(
            f"| {s['config'].get('name') or folder.name} "
            f"| {s['config']['strong'].get('name') or s['config']['strong']['model']} | {fit['n']} "
            f"| {_fmt(fit['slope'], 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}] "
            f"| {_fmt_ridge(fit.get('w2s_ridge'))} | {_fmt(fit['r2'], 2)} "
            f"| {_fmt(s['mean_residual'], 4)} | {s['share_positive_gain']:.0%} "
            f"| {_fmt(regret.get('predicted_w2s_error'), 4)} / {_fmt(regret.get('lowest_weak_error'), 4)} / "
            f"{_fmt(regret.get('largest_misfit'), 4)} "
            f"| {' / '.join(_fmt(clean.get(rule), 4) for rule in regret)} | {s['ceiling_error_val']['strongest']} "
            f"| {_fmt_split(s.get('residual_split'))} |"
        )
    return "\n".join(lines)


def classification_table(sweeps: list[Path]) -> str | None:
    """Classification sweeps (sweep.csv with accuracy columns): the mean over points of cross-entropy
    and accuracy of weak, student and ceiling, misfit KL(w2s || weak), the discrepancy gain - misfit,
    and the gain-on-misfit line. None when no sweep is a classification sweep."""
    import numpy as np

    lines = []
    for folder in sweeps:
        with open(folder / "sweep.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["direction"] == "normal"]
        if not rows or "w2s_accuracy" not in rows[0]:
            continue
        s = json.loads((folder / "sweep.json").read_text())
        mean = lambda key: float(np.mean([float(r[key]) for r in rows if r[key] not in ("", None)]))  # noqa: E731
        fit = s["fit"]["all"]
        lo, hi = fit["ci"].get("slope", (None, None))
        lines.append(
            f"| {s['config'].get('name') or folder.name} | {rows[0]['k_heads']} | {fit['n']} "
            f"| {mean('weak_error'):.3f} / {mean('w2s_error'):.3f} / {mean('ceiling_error'):.3f} "
            f"| {mean('weak_accuracy'):.3f} / {mean('w2s_accuracy'):.3f} / {mean('ceiling_accuracy'):.3f} "
            f"| {mean('misfit'):.4f} | {mean('gain'):.4f} | {mean('residual'):.4f} "
            f"| {sum(float(r['residual']) < 0 for r in rows)}/{len(rows)} "
            f"| {_fmt(fit['slope'], 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}] | {_fmt(fit['r2'], 2)} |"
        )
    if not lines:
        return None
    head = ("| sweep | k | points | cross-entropy weak / w2s / ceiling | accuracy weak / w2s / ceiling | misfit "
            "KL(w2s‖weak) | gain | discrepancy (gain − misfit) | points with gain < misfit | slope [95% CI] | R² |")
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|---|---|", *lines])


def _ci(ci: list | None, digits: int = 2) -> str:
    return "" if not ci or None in ci else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def predictors_table(sweeps: list[Path]) -> str | None:
    """Each gain predictor of each sweep: Spearman with the gain x the direction its paper claims
    (> 0: the paper's sign holds), R², and the regret of choosing the weak model by it; then which
    predictor wins where. Nothing is fitted: directions are fixed before the data (None without the
    sweep.json "predictors" block of a sweep made before them)."""
    lines, winners = [], []
    for folder in sweeps:
        s = json.loads((folder / "sweep.json").read_text())
        scores = (s.get("predictors") or {}).get("scores")
        if not scores:
            continue
        name = s["config"].get("name") or folder.name
        for pred, sc in scores.items():
            sel = sc["selection"]
            r2 = _fmt(sc.get("r2"), 2) + (f" (identity {sc['r2_identity']:.2f})" if "r2_identity" in sc else "")
            lines.append(f"| {name} | {pred} | {'+' if sc['direction'] > 0 else '−'} | {sc['n']} "
                         f"| {_fmt(sc.get('aligned'), 2)}{_ci(sc['ci'].get('aligned'))} | {r2} "
                         f"| {_fmt(sel['mean_regret'], 4)}{_ci(sel.get('ci'), 4)} |")
        base = (s["selection"].get("by_misfit_split", {}).get(f"misfit_on_{s['config'].get('eval_split', 'test')}")
                or {}).get("mean_regret", {})
        winners.append(f"| {name} | {_winner(scores)} | {_lowest_regret(scores)} "
                       f"| {_fmt(base.get('predicted_w2s_error'), 4)} / {_fmt(base.get('lowest_weak_error'), 4)} |")
    if not lines:
        return None
    head = ("| sweep | predictor | paper's sign | points | Spearman × sign [95% CI, runs resampled] | R² "
            "| regret of choosing by it [95% CI, seeds resampled] |")
    return "\n".join([head, "|---|---|---|---|---|---|---|", *lines, "",
                      "| sweep | best rank correlation (with the paper's sign) | lowest selection regret "
                      "| regret of the gold-using rules: val weak_error − misfit / lowest val weak_error |",
                      "|---|---|---|---|", *winners])


def _winner(scores: dict) -> str:
    """The predictor with the largest aligned Spearman; 'clear' only when its interval's lower end
    is above every other predictor's value."""
    ranked = sorted(((sc["aligned"], p, sc["ci"].get("aligned")) for p, sc in scores.items()
                     if sc.get("aligned") is not None), reverse=True)
    if not ranked:
        return "n/a"
    best, name, ci = ranked[0]
    if len(ranked) == 1:
        return f"{name} ({best:.2f})"
    clear = ci and ci[0] is not None and ci[0] > ranked[1][0]
    return f"{name} ({best:.2f}; {'clear' if clear else 'not separable from ' + ranked[1][1]})"


def _lowest_regret(scores: dict) -> str:
    known = sorted((sc["selection"]["mean_regret"], p) for p, sc in scores.items()
                   if sc["selection"]["mean_regret"] is not None)
    if not known:
        return "n/a"
    ties = [p for r, p in known if r == known[0][0]]
    return f"{', '.join(ties)} ({known[0][0]:.4f})"


def _positional_sweeps(argv: list[str]) -> list[str]:
    """The older form `summarize_sweeps.py a b --figure f`: leading folders become `--sweeps a b`."""
    lead = 0
    while lead < len(argv) and not argv[lead].startswith("-"):
        lead += 1
    return ["--sweeps", *argv[:lead], *argv[lead:]] if lead else argv


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser

    argv = _positional_sweeps(list(sys.argv[1:] if argv is None else argv))
    try:
        (args,) = W2SArgumentParser(SummarizeArguments).parse_args_and_config(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.sweeps = [Path(folder) for folder in args.sweeps]
    if not args.sweeps:
        print("error: give at least one sweep folder (--sweeps runs/sweeps/<name> ...)", file=sys.stderr)
        return 2
    for folder in args.sweeps:
        if not (folder / "sweep.json").is_file():
            print(f"error: {folder} has no sweep.json (run w2s sweep first)", file=sys.stderr)
            return 2
    print(table(args.sweeps))
    predictors = predictors_table(args.sweeps)
    if predictors:
        print("\n" + predictors)
    classification = classification_table(args.sweeps)
    if classification:
        print("\n" + classification)
    if args.figure:
        from w2s_hf.hooks.plots import plot_misfit_vs_gain

        rows = []
        for folder in args.sweeps:
            name = json.loads((folder / "sweep.json").read_text())["config"].get("name") or folder.name
            with open(folder / "sweep.csv", newline="") as fh:
                for r in csv.DictReader(fh):
                    if r["direction"] == "normal":
                        rows.append({**r, "panel": r["target"] if args.per_target else name})
        plot_misfit_vs_gain(rows, Path(args.figure))
        print(f"\nwrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
