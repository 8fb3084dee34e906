"""Tabulate finished sweeps (sweep.json / sweep.csv) as Markdown and draw one combined gain-vs-misfit figure.

This is what produced the README's Results tables and docs/figures/*.png:

    python scripts/summarize_sweeps.py --sweeps runs/sweeps/esol_scaffold runs/sweeps/freesolv_scaffold \
        runs/sweeps/lipophilicity_scaffold --figure docs/figures/qsar_scaffold.png
    python scripts/summarize_sweeps.py runs/sweeps/ellipse --figure docs/figures/ellipse.png --per_target

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


def table(sweeps: list[Path]) -> str:
    lines = [
        "| sweep | strong | points | slope [95% CI] | student ridge (median) | R² | mean residual | gain > 0 "
        "| regret, misfit on val: predicted_w2s_error / lowest weak_error / largest misfit "
        "| regret, misfit on unlabelled test | strongest by val ceiling (val used for selection) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"| {' / '.join(_fmt(clean.get(rule), 4) for rule in regret)} | {s['ceiling_error_val']['strongest']} |"
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
            print(f"error: {folder} has no sweep.json (run scripts/sweep.py first)", file=sys.stderr)
            return 2
    print(table(args.sweeps))
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
