"""Tables and the figure of docs/preference_results.md from finished preference sweeps (sweep.csv).

    w2s preference-panels runs/sweeps/esol_pairs_smiles runs/sweeps/ellipse_pairs \
        --figure docs/figures/preference_panels.png

Per sweep, one row per weak model (means over the split seeds, on the sweep's eval split): the binary-KL
decomposition (errors = binary cross-entropy, misfit = KL(w2s || weak), gain, residual) and beside it the
accuracies and the accuracy PGR = (w2s - weak) / (ceiling - weak). The PGR is withheld ("-") where the mean
gap ceiling - weak is not above twice its standard error across seeds: a ratio over a noisy denominator.
The figure: top row gain vs misfit per sweep (the line gain = misfit), bottom row w2s vs weak accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = ("weak_error", "w2s_error", "misfit", "gain", "residual", "weak_accuracy", "w2s_accuracy",
           "ceiling_accuracy")


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "sweep.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["direction"] == "normal"]


def by_weak(rows: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """{weak model: {column: values over seeds}} in the sweep's order."""
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for c in COLUMNS:
            out[r["weak_model"]][c].append(float(r[c]))
    return {w: {c: np.asarray(v) for c, v in cols.items()} for w, cols in out.items()}


def accuracy_pgr(v: dict[str, np.ndarray]) -> str:
    gap = v["ceiling_accuracy"] - v["weak_accuracy"]
    se = gap.std(ddof=1) / np.sqrt(len(gap)) if len(gap) > 1 else np.inf
    if not gap.mean() > 2 * se:
        return "-"
    return f"{(v['w2s_accuracy'] - v['weak_accuracy']).mean() / gap.mean():.2f}"


def table(folder: Path) -> str:
    summary = json.loads((folder / "sweep.json").read_text())
    rows = read_rows(folder)
    lines = [f"**{summary['config'].get('name') or folder.name}** (strong = {rows[0]['strong_model']}; "
             f"{len({r['seed'] for r in rows})} seeds; {rows[0]['split']})", "",
             "| weak model | weak BCE | w2s BCE | misfit KL(w2s‖weak) | gain | residual | weak acc | w2s acc "
             "| ceiling acc | acc PGR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for weak, v in by_weak(rows).items():
        cells = " | ".join(f"{v[c].mean():.3f}" for c in COLUMNS)
        lines.append(f"| {weak} | {cells} | {accuracy_pgr(v)} |")
    fit = summary["fit"]["all"]
    lo, hi = fit["ci"].get("slope", (None, None))
    ci = "" if lo is None else f" [{lo:.2f}, {hi:.2f}]"
    slope = "n/a" if fit["slope"] is None else f"{fit['slope']:.2f}{ci}, R² {fit['r2']:.2f}"
    lines += ["", f"gain on misfit over all {fit['n']} points: slope {slope}; mean residual "
              f"{summary['mean_residual']:.4f}; gain > 0 on {summary['share_positive_gain']:.0%}."]
    return "\n".join(lines)


def figure(folders: list[Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(folders), figsize=(5.2 * len(folders), 9), squeeze=False)
    for k, folder in enumerate(folders):
        name = json.loads((folder / "sweep.json").read_text())["config"].get("name") or folder.name
        groups = by_weak(read_rows(folder))
        top, bottom = axes[0, k], axes[1, k]
        for weak, v in groups.items():
            top.scatter(v["misfit"], v["gain"], label=weak, s=28)
            bottom.scatter(v["weak_accuracy"], v["w2s_accuracy"], label=weak, s=28)
        hi = max(max(v["misfit"].max(), v["gain"].max()) for v in groups.values())
        lo = min(min(v["gain"].min(), 0.0) for v in groups.values())
        top.plot([0, hi], [0, hi], "k--", lw=1, label="gain = misfit")
        top.axhline(0, color="grey", lw=0.5)
        top.set(xlabel="misfit KL(w2s ‖ weak), test pairs", ylabel="gain (weak BCE − w2s BCE)", title=name,
                ylim=(lo - 0.01, hi * 1.1))
        accs = np.concatenate([np.r_[v["weak_accuracy"], v["w2s_accuracy"]] for v in groups.values()])
        a, b = accs.min() - 0.02, accs.max() + 0.02
        bottom.plot([a, b], [a, b], "k--", lw=1)
        ceiling = np.mean([v["ceiling_accuracy"].mean() for v in groups.values()])
        bottom.axhline(ceiling, color="grey", ls=":", label=f"ceiling accuracy ({ceiling:.2f})")
        bottom.set(xlabel="weak accuracy (test pairs)", ylabel="w2s accuracy")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="w2s preference-panels", description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    print("\n\n".join(table(f) for f in args.sweeps))
    if args.figure:
        figure(args.sweeps, args.figure)
    return 0


if __name__ == "__main__":
    main()
