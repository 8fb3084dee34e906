"""Choosing the weak model without gold labels for the student: rank by predicted_w2s_error.

The theorem gives w2s_error ~= weak_error - misfit. `weak_error` is the weak model's own validation
error (gold labels of `val`) and the misfit, which needs no labels, is measured on unlabelled rows:
`val`, or the *inputs* of a split no selection touched (`test`). Either way the ranking reads no gold
label of `w2s_train` nor of `test`; the test w2s_error is read only afterwards, for the regret.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np


@dataclass
class Selection:
    """Outcome of `select_weak_model` for one scenario (one task, split seed and target)."""

    chosen: str
    ranking: list[tuple[str, float]]
    true_best: str | None = None
    regret: float | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ranking"] = [[name, value] for name, value in self.ranking]
        return out


def _quantity(results: Mapping[str, Any], split: str, name: str, target: str | None) -> float:
    try:
        block = results["splits"][split]
        value = block["per_target"][target][name] if target is not None else block[name]
    except KeyError as err:
        where = f"splits.{split}" + (f".per_target.{target}" if target is not None else "")
        raise ValueError(f"candidate results have no {name!r} at {where} (missing key {err.args[0]!r}).") from None
    return float(value)


def select_weak_model(
    candidates: Mapping[str, Mapping[str, Any]],
    *,
    target: str | None = None,
    weak_error_split: str = "val",
    misfit_split: str = "val",
    evaluate_on: str | None = "test",
) -> Selection:
    """Rank candidate weak models by predicted_w2s_error = weak_error - misfit and report the regret.

    Args:
        candidates: {weak model name: results dict of its run} (the `results.json` of
            `w2s run`, all with the same strong model, task and split).
        target: a target column, or None for the average over targets.
        weak_error_split: where the weak model's own error is measured with gold labels ("val").
        misfit_split: where the misfit is measured. It reads no label, so any split's inputs will do:
            "val" (which the ridges already selected on), "w2s_train", or the evaluation split itself,
            whose rows no selection touched.
        evaluate_on: the split whose gold w2s_error judges the choice afterwards, or None to skip.

    Only `splits[weak_error_split].weak_error` and `splits[misfit_split].misfit` are read to choose.
    """
    if not candidates:
        raise ValueError("select_weak_model needs at least one candidate.")
    if weak_error_split in ("w2s_train", evaluate_on):
        raise ValueError(
            f"weak_error_split={weak_error_split!r} would read gold labels of the student's split or of "
            f"{evaluate_on!r}; use 'val' for the weak error (the misfit reads no labels: any misfit_split is fine)."
        )
    names = list(candidates)
    weak = np.array([_quantity(candidates[n], weak_error_split, "weak_error", target) for n in names])
    misfit = np.array([_quantity(candidates[n], misfit_split, "misfit", target) for n in names])
    predicted = weak - misfit
    order = np.argsort(predicted, kind="stable")
    ranking = [(names[i], float(predicted[i])) for i in order]
    picks = {
        "predicted_w2s_error": names[int(order[0])],
        "lowest_weak_error": names[int(np.argmin(weak))],
        "largest_misfit": names[int(np.argmax(misfit))],
    }
    selection = Selection(chosen=picks["predicted_w2s_error"], ranking=ranking)
    if evaluate_on is not None:
        truth = {n: _quantity(candidates[n], evaluate_on, "w2s_error", target) for n in names}
        best = min(truth, key=truth.get)
        selection.true_best = best
        selection.regret = truth[selection.chosen] - truth[best]
        selection.baselines = {
            rule: {"chosen": pick, "regret": truth[pick] - truth[best]} for rule, pick in picks.items()
        }
    return selection
