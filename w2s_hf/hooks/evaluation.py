"""Evaluation points of a run: gather per-example predictions, decompose, hand the result to hooks.

Predictions are gathered per example from every process (never per-rank averages). Hooks receive
every evaluation point (`on_evaluate`) and the final results dict (`on_end`):

    TrackerHook(accelerator)   scalars to the accelerate trackers (`report_to`, tensorboard by default)
    JsonResultsHook(path)      results.json, written atomically
    TableHook()                the decomposition table, printed at the end
    PlotHook(path)             bar chart of weak / w2s / ceiling error and the misfit, per target
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..atomic import atomic_path, write_json_atomic
from ..data.rows import EVAL_SPLITS
from ..decomposition.core import DIAGNOSTICS, QUANTITIES
from ..distributed import gather_predictions  # noqa: F401  (public here: evaluation points gather first)


def metric_path() -> str:
    """Folder of the `evaluate` metric module: `evaluate.load(w2s_hf.evaluation.metric_path())`."""
    return str(Path(__file__).resolve().parent / "metrics" / "misfit_decomposition")


# ---------------------------------------------------------------------- hooks
class EvalHook:
    """Base class of evaluation hooks; both methods are no-ops, override the ones you need.

    `on_evaluate(step, split, decomposition, state)` runs at every evaluation point (`state` carries
    context such as `{"head": "w2s", "epoch": 3}`); `on_end(results)` runs once with the results
    dict. Hooks are called on the main process only, so they may write files freely.
    """

    def on_evaluate(self, step: int, split: str, decomposition: Any, state: dict[str, Any]) -> None:
        return None

    def on_end(self, results: dict[str, Any]) -> None:
        return None


def evaluate_point(
    step: int,
    split: str,
    y_true: np.ndarray,
    weak_pred: np.ndarray,
    w2s_pred: np.ndarray,
    ceiling_pred: np.ndarray | None = None,
    *,
    hooks: Iterable[EvalHook] = (),
    state: dict[str, Any] | None = None,
    accelerator: Any = None,
    **decompose_kwargs: Any,
) -> Any:
    """Decompose gathered, row-aligned predictions of one split and call every hook's `on_evaluate`.

    Every process computes the (deterministic) decomposition and gets it back; only the main process
    calls the hooks. `decompose_kwargs` go to `w2s_hf.misfit.decompose` (target_names, n_boot, seed).
    """
    from ..decomposition.core import decompose

    dec = decompose(y_true, weak_pred, w2s_pred, ceiling_pred, **decompose_kwargs)
    if accelerator is None or accelerator.is_main_process:
        for hook in hooks:
            hook.on_evaluate(step, split, dec, dict(state or {}))
    return dec


def _scalars(dec: Any) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(averaged quantities, per-target quantities) of a Decomposition or its as_dict(), Nones dropped."""
    d = dec if isinstance(dec, dict) else dec.as_dict()
    avg = {q: float(d[q]) for q in QUANTITIES if d.get(q) is not None}
    avg.update({q: float(v) for q, v in (d.get("extras") or {}).items() if v is not None})
    avg.update({q: float(v) for q, v in (d.get("diagnostics") or {}).items() if v is not None})
    per = {
        t: {q: float(v[q]) for q in QUANTITIES if v.get(q) is not None} for t, v in (d.get("per_target") or {}).items()
    }
    for t, v in (d.get("diagnostics_per_target") or {}).items():
        per.setdefault(t, {}).update({q: float(x) for q, x in v.items() if x is not None})
    return avg, per


class TrackerHook(EvalHook):
    """Log every quantity to the accelerate trackers as `{split}/{quantity}` and `{split}/{target}/{quantity}`.

    The caller creates the trackers (`Accelerator(log_with=report_to)` + `init_trackers`); with none
    initialised `accelerator.log` does nothing. `state["prefix"]`, if given, goes in front of every
    key (e.g. "ceiling" to keep a second series apart).
    """

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator

    def on_evaluate(self, step: int, split: str, decomposition: Any, state: dict[str, Any]) -> None:
        prefix = f"{state['prefix']}/{split}" if state.get("prefix") else split
        avg, per = _scalars(decomposition)
        values = {f"{prefix}/{q}": v for q, v in avg.items()}
        if len(per) > 1:
            for target, qs in per.items():
                values.update({f"{prefix}/{target}/{q}": v for q, v in qs.items()})
        self.accelerator.log(values, step=step)

    def on_end(self, results: dict[str, Any]) -> None:
        # Flush rather than end: the caller owns the trackers' lifetime (`accelerator.end_training()`).
        for tracker in getattr(self.accelerator, "trackers", []):
            flush = getattr(getattr(tracker, "tracker", None), "flush", None)
            if callable(flush):
                flush()


class JsonResultsHook(EvalHook):
    """Write the final results dict to `path` atomically; optionally every evaluation point under "history"."""

    def __init__(self, path: str | os.PathLike, include_history: bool = False):
        self.path = Path(path)
        self.include_history = include_history
        self.history: list[dict[str, Any]] = []

    def on_evaluate(self, step: int, split: str, decomposition: Any, state: dict[str, Any]) -> None:
        if self.include_history:
            avg, _ = _scalars(decomposition)
            self.history.append({"step": int(step), "split": split, **state, **avg})

    def on_end(self, results: dict[str, Any]) -> None:
        if self.include_history and self.history and "history" not in results:
            results = {**results, "history": self.history}
        write_json_atomic(self.path, results)


# ---------------------------------------------------------------------- table
def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _ordered_splits(splits: dict[str, Any]) -> list[str]:
    return [s for s in EVAL_SPLITS if s in splits] + [s for s in splits if s not in EVAL_SPLITS]


# The residual diagnostics' rows (w2s_hf.decomposition.diagnostics), one block each below the quantities.
_DIAGNOSTIC_BLOCKS = (("residual split", DIAGNOSTICS[:4]), ("ceiling as truth", DIAGNOSTICS[4:]))
IN_SAMPLE_NOTE = ("^ in-sample: the student and the ceiling were fitted on these rows; their errors are training "
                  "errors, not estimates on new rows")


def format_table(results: dict[str, Any]) -> str:
    """Quantities (rows) by splits (columns), with bootstrap intervals; then the residual split and the
    ceiling-as-truth decomposition, one line per split saying why its residual is what it is, and one
    block per target."""
    # divergence-specific quantities (classification: accuracies, forward misfit) are rows too
    splits = {s: {**d, **(d.get("extras") or {})} for s, d in (results.get("splits") or {}).items()}
    names = _ordered_splits(splits)
    if not names:
        return "(no splits evaluated)"
    extra = list(dict.fromkeys(q for s in names for q in (splits[s].get("extras") or {})))
    rows = [q for q in (*QUANTITIES, *extra) if any(splits[s].get(q) is not None for s in names)]
    if any(splits[s].get("pgr_reason") for s in names) and "pgr" not in rows:
        rows.append("pgr")  # a withheld pgr shows as "-" with its reason below the table
    heads = {s: s + ("*" if splits[s].get("used_for_selection") else "") + ("^" if splits[s].get("in_sample") else "")
             for s in names}
    diag = {s: {**(splits[s].get("diagnostics") or {}), "ci": splits[s].get("diagnostics_ci") or {}} for s in names}
    lines = _block("quantity", names, heads, {s: splits[s] for s in names}, rows, with_ci=True)
    for title, keys in _DIAGNOSTIC_BLOCKS:
        present = [q for q in keys if any(diag[s].get(q) is not None for s in names)]
        if present:
            lines += ["", *_block(title, names, heads, diag, present, with_ci=True, with_n=False)]
    lines += [f"pgr on {s}: null, {splits[s]['pgr_reason']}" for s in names if splits[s].get("pgr_reason")]
    lines += [f"reading on {s}: {splits[s]['reading']}" for s in names if splits[s].get("reading")]
    if any(splits[s].get("in_sample") for s in names):
        lines.append(IN_SAMPLE_NOTE)
    if any(splits[s].get("used_for_selection") for s in names):
        lines.append("* used for selection (ridges, strong layer, weak model): its errors and misfit are minima "
                     "over a grid, not clean estimates")
    targets = list((splits[names[0]].get("per_target") or {}).keys())
    if len(targets) > 1:
        diag_rows = [q for _, keys in _DIAGNOSTIC_BLOCKS for q in keys
                     if any(diag[s].get(q) is not None for s in names)]
        for t in targets:
            per = {s: {**(splits[s].get("per_target") or {}).get(t, {}),
                       **(splits[s].get("diagnostics_per_target") or {}).get(t, {})} for s in names}
            lines += ["", *_block(f"target {t}", names, heads, per, [*rows, *diag_rows], with_ci=False)]
    return "\n".join(lines)


def _cell(d: dict[str, Any], q: str, with_ci: bool) -> str:
    text = _fmt(d.get(q))
    ci = (d.get("ci") or {}).get(q)
    if with_ci and ci and d.get(q) is not None and None not in ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _block(title: str, names: list[str], heads: dict[str, str], dicts: dict[str, dict[str, Any]], rows: list[str],
           with_ci: bool, with_n: bool | None = None) -> list[str]:
    """Rows `rows` by columns `names` (headed `heads`); the block with intervals ends with each split's n."""
    with_n = with_ci if with_n is None else with_n
    cells = {s: [_cell(dicts[s], q, with_ci) for q in rows] for s in names}
    if with_n:
        for s in names:
            cells[s].append("-" if dicts[s].get("n") is None else str(dicts[s]["n"]))
    labels = [*rows, "n"] if with_n else rows
    width = {s: max(len(heads[s]), *(len(c) for c in cells[s])) for s in names}
    label = max(len(title), *(len(q) for q in labels))
    lines = [title.ljust(label) + "  " + "  ".join(heads[s].rjust(width[s]) for s in names)]
    lines.append("-" * len(lines[0]))
    for i, q in enumerate(labels):
        lines.append(q.ljust(label) + "  " + "  ".join(cells[s][i].rjust(width[s]) for s in names))
    return lines


class TableHook(EvalHook):
    """Print `format_table(results)` at the end of the run (through `printer`, `print` by default)."""

    def __init__(self, printer: Callable[[str], None] = print):
        self.printer = printer

    def on_end(self, results: dict[str, Any]) -> None:
        from .predictor_table import format_predictors

        self.printer(format_table(results))
        if results.get("predictors"):
            self.printer("\n" + format_predictors(results["predictors"]))
        for name, block in (results.get("students") or {}).items():
            if not block.get("covered_by_theorem", True):  # the theorem's student is the table above
                self.printer(f"\nstudent {name} ({block.get('kind')}; outside the theorem's convex class: measured, "
                             f"not bounded)\n" + format_table({"splits": block["splits"]}))


# ---------------------------------------------------------------------- plot
class PlotHook(EvalHook):
    """Bar chart per split: weak / w2s / ceiling error and the misfit, grouped per target; saved atomically.

    The dashed tick on each w2s bar marks the predicted w2s error (weak error - misfit): the gap
    between the tick and the bar top is the residual the theorem bounds.
    """

    COLORS: ClassVar[dict[str, str]] = {
        "weak_error": "#d62728",
        "w2s_error": "#1f77b4",
        "ceiling_error": "#2ca02c",
        "misfit": "#ff7f0e",
    }

    def __init__(self, path: str | os.PathLike, splits: Sequence[str] | None = None, dpi: int = 120):
        self.path = Path(path)
        self.splits = tuple(splits) if splits else None
        self.dpi = dpi

    def on_end(self, results: dict[str, Any]) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        splits = results.get("splits") or {}
        names = [s for s in (self.splits or _ordered_splits(splits)) if s in splits]
        if not names:
            return
        fig = Figure(figsize=(max(4.5, 3.2 * len(names) + 0.8 * _n_groups(splits[names[0]])), 4.2))
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, split in zip(axes, names):
            self._draw(ax, split, splits[split])
        axes[0].set_ylabel("mean squared error")
        found = dict(zip(*reversed(axes[0].get_legend_handles_labels())))
        order = [
            q for q in ("weak_error", "w2s_error", "predicted_w2s_error", "ceiling_error", "misfit") if q in found
        ]
        fig.legend([found[q] for q in order], order, loc="lower center", ncol=len(order), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        fmt = self.path.suffix.lstrip(".") or "png"
        with atomic_path(self.path, suffix=self.path.suffix) as tmp:
            fig.savefig(tmp, format=fmt, dpi=self.dpi)

    def _draw(self, ax: Any, split: str, d: dict[str, Any]) -> None:
        per = d.get("per_target") or {}
        groups = {"mean": d} if len(per) <= 1 else {**per, "mean": d}
        bars = [q for q in ("weak_error", "w2s_error", "ceiling_error", "misfit") if d.get(q) is not None]
        width = 0.8 / len(bars)
        for j, q in enumerate(bars):
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(groups))]
            ys = [float(g.get(q) or 0.0) for g in groups.values()]
            ax.bar(
                xs,
                ys,
                width,
                color=self.COLORS[q],
                label=q,
                hatch="//" if q == "misfit" else None,
                edgecolor="white" if q == "misfit" else None,
            )
            if q == "w2s_error":
                pred = [float(g.get("predicted_w2s_error") or 0.0) for g in groups.values()]
                ax.hlines(
                    pred,
                    [x - width / 2 for x in xs],
                    [x + width / 2 for x in xs],
                    colors="black",
                    linestyles="dashed",
                    label="predicted_w2s_error",
                )
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(
            list(groups) if len(groups) > 1 else [""], rotation=30 if len(groups) > 3 else 0, fontsize=8
        )
        ax.set_title(f"{split} (n={d.get('n', '?')})", fontsize=10)


def _n_groups(d: dict[str, Any]) -> int:
    per = d.get("per_target") or {}
    return 1 if len(per) <= 1 else len(per) + 1
