"""`w2s qsar-figure`: the paper's Figure 2 d-f from finished sweeps.

Gold-label and proxy-truth panels side by side, with the residual split.

Each sweep folder (`w2s sweep`'s output) becomes one row of the figure: gain against misfit with the gold
labels (left) and with the ceiling's predictions as the truth (right, where the non-realizability term is 0),
each with its least-squares line, its row-id bootstrap interval and the mean residual split
(residual = finite-sample term + non-realizability term). A Markdown table of the same numbers is printed.

    w2s qsar-figure --sweeps runs/figure2/esol_random runs/figure2/lipophilicity_random \
        --figure docs/figures/qsar_figure2.png
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2s_hf.config import ConfigError
from w2s_hf.experiments.sweep import point_folder_name


@dataclass
class FigureArguments:
    sweeps: list[str] = field(default_factory=list, metadata={"help": "Sweep output folders (sweep.json, sweep.csv)."})
    figure: str | None = field(default=None, metadata={"help": "Write the PNG here."})
    gold_only: bool = field(default=False, metadata={"help": "One panel per sweep (gold labels) instead of two."})


def _fmt(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def premise_on_val(folder: Path, row: dict) -> bool:
    """The theorem's premise, read on val only: the teacher is weaker than the ceiling, its val gap
    (weak_error - ceiling_error) positive with a bootstrap interval above 0 (the runs' pgr is then reported).
    Under cross-fitting every fold's val must say so."""
    base = point_folder_name("normal", row["weak_model"], row["strong_model"], row["seed"], row.get("weak_budget"),
                             row.get("w2s_size"))
    folds = int(row["folds"]) if row.get("folds") else 0
    names = [f"{base}__fold{k}" for k in range(folds)] if folds else [base]
    vals = [json.loads((folder / "runs" / n / "results.json").read_text())["splits"]["val"] for n in names]
    return all(v.get("pgr_reason") is None and v["weak_error"] > v["ceiling_error"] for v in vals)


def _line(x: np.ndarray, y: np.ndarray) -> dict:
    if len(x) < 3 or np.ptp(x) == 0:
        return {"slope": None, "r2": None, "n": int(len(x))}
    slope, intercept = np.polyfit(x, y, 1)
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(np.corrcoef(x, y)[0, 1] ** 2),
            "n": int(len(x)), "share_positive_gain": float(np.mean(y > 0))}


def panel_numbers(folder: Path) -> dict:
    """The numbers one sweep contributes: its points, both lines and the mean residual split."""
    summary = json.loads((folder / "sweep.json").read_text())
    with open(folder / "sweep.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["direction"] == "normal"]
    number = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else np.nan  # noqa: E731
    split = summary.get("residual_split") or {}
    met = np.array([premise_on_val(folder, r) for r in rows], dtype=bool)
    gains, misfits = np.array([number(r, "gain") for r in rows]), np.array([number(r, "misfit") for r in rows])
    # the lower half of the misfits: a line over misfits spanning decades is set by its largest points;
    # this one says whether gain tracks misfit where the misfits are small too
    low = misfits <= np.nanmedian(misfits) if len(misfits) else np.zeros(0, dtype=bool)
    return {
        "premise": _line(misfits[met], gains[met]),
        "lower_half": _line(misfits[low], gains[low]),
        "name": summary["config"].get("name") or folder.name,
        "split": rows[0]["split"] if rows else "",
        "misfit": misfits,
        "gain": gains,
        "proxy_gain": np.array([number(r, "proxy_gain") for r in rows]),
        # colour by weak model; in a graded-teacher sweep the marker grows with the label budget
        "weak": [r["weak_model"] for r in rows],
        "budget": [(r.get("weak_budget") or "all") if summary["config"].get("weak_budgets") else None for r in rows],
        "gold": summary["fit"]["all"],
        "proxy": split.get("fit_proxy_truth"),
        "mean": split.get("mean", {}),
        "share_positive_gain": summary["share_positive_gain"],
        "bound_above_misfit": split.get("share_nonrealizability_bound_above_misfit"),
    }


def table(panels: list[dict]) -> str:
    lines = ["| sweep | evaluated on | points | gold: slope [95% CI] | R² | gain > 0 | proxy truth: slope [95% CI] "
             "| R² | mean residual = finite-sample + non-realizability | bound > misfit "
             "| gold, points whose val gap > 0 (premise on val): n, slope, R², gain > 0 "
             "| gold, lower half of the misfits: n, slope, R², gain > 0 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in panels:
        g, q, m = p["gold"], p["proxy"] or {}, p["mean"]
        gl, gh = g.get("ci", {}).get("slope", (None, None))
        ql, qh = q.get("ci", {}).get("slope", (None, None))
        lines.append(
            f"| {p['name']} | {p['split']} | {g['n']} | {_fmt(g['slope'])} [{_fmt(gl)}, {_fmt(gh)}] "
            f"| {_fmt(g['r2'])} | {p['share_positive_gain']:.0%} | {_fmt(q.get('slope'))} [{_fmt(ql)}, {_fmt(qh)}] "
            f"| {_fmt(q.get('r2'))} | {_fmt(m.get('residual'), 3)} = {_fmt(m.get('finite_sample_term'), 3)} + "
            f"{_fmt(m.get('nonrealizability_term'), 3)} "
            f"| {'n/a' if p['bound_above_misfit'] is None else format(p['bound_above_misfit'], '.0%')} "
            f"| {_premise(p['premise'])} | {_premise(p['lower_half'])} |")
    return "\n".join(lines)


def _premise(line: dict) -> str:
    if line["slope"] is None:
        return f"{line['n']}, n/a"
    return f"{line['n']}, {line['slope']:.2f}, {line['r2']:.2f}, {line['share_positive_gain']:.0%}"


def draw(panels: list[dict], path: Path, gold_only: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from w2s_hf.atomic import atomic_path

    kinds = [("gain", "gold", "gold labels")] + ([] if gold_only else [("proxy_gain", "proxy", "ceiling as truth")])
    n = len(panels) * len(kinds)
    ncols = min(n, 3) if gold_only else min(n, 4)  # two sweeps per row: gold, proxy, gold, proxy
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    flat = axes.ravel()
    colours = {w: plt.get_cmap("tab10")(i % 10) for i, w in enumerate(dict.fromkeys(w for p in panels
                                                                                    for w in p["weak"]))}
    budgets = sorted({b for p in panels for b in p["budget"] if b is not None},
                     key=lambda b: float("inf") if b == "all" else float(b))
    sizes = {None: 14, **{b: 6 + 34 * i / max(len(budgets) - 1, 1) for i, b in enumerate(budgets)}}
    k = 0
    for p in panels:
        for key, fit_key, label in kinds:
            ax, fit = flat[k], p[fit_key] or {}
            k += 1
            x, y = p["misfit"], p[key]
            ax.scatter(x, y, s=[sizes[b] for b in p["budget"]], c=[colours[w] for w in p["weak"]], alpha=0.8)
            top = float(np.nanmax(np.concatenate([x, y, [0.0]]))) * 1.05
            ax.plot([0, top], [0, top], "k--", lw=0.8)
            if fit.get("slope") is not None:
                ax.plot([0, top], [fit["intercept"], fit["intercept"] + fit["slope"] * top], "r-", lw=1)
            lo, hi = fit.get("ci", {}).get("slope", (None, None))
            text = f"slope {_fmt(fit.get('slope'))} [{_fmt(lo)}, {_fmt(hi)}]\nR² {_fmt(fit.get('r2'))}"
            if key == "gain" and p["mean"]:
                m = p["mean"]
                text += (f"\nresidual {_fmt(m['residual'], 3)} = {_fmt(m['finite_sample_term'], 3)}"
                         f" + {_fmt(m['nonrealizability_term'], 3)}")
            ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=7)
            ax.set_title("\n".join(textwrap.wrap(p["name"], 48)) + f"\n{label}", fontsize=8)
            ax.set_xlabel("misfit", fontsize=8)
            ax.set_ylabel("gain" if key == "gain" else "gain (ceiling as truth)", fontsize=8)
    for ax in flat[k:]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=w) for w, c in colours.items()]
    handles += [plt.Line2D([], [], marker="o", ls="", color="grey", markersize=np.sqrt(sizes[b]), label=f"n={b}")
                for b in budgets]  # marker area grows with the weak head's label budget
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 11), fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser

    try:
        (args,) = W2SArgumentParser(FigureArguments, prog="w2s qsar-figure").parse_args_and_config(argv)
        folders = [Path(s) for s in args.sweeps]
        missing = [str(f) for f in folders if not (f / "sweep.json").is_file()]
        if not folders or missing:
            raise ConfigError(f"--sweeps needs finished sweep folders; {missing or 'none given'} has no sweep.json.")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    panels = [panel_numbers(f) for f in folders]
    print(table(panels))
    if args.figure:
        print(f"wrote {draw(panels, Path(args.figure), args.gold_only)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
