"""`MisfitCallback`: the misfit decomposition inside a `transformers.Trainer` run.

For users who train the strong model on weak labels with `Trainer` rather than with the toolkit's
heads: at every evaluation it decomposes the gain on the eval set from the model's predictions, the
weak model's predictions on the same rows and the gold labels, logs the quantities with the
Trainer's own metrics (so they land in `state.log_history` and every `report_to` integration as
`eval_misfit`, `eval_w2s_error`, ...) and passes the `Decomposition` to evaluation hooks
(`w2s_hf.evaluation.EvalHook`: results.json, plots, tables).

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from transformers import TrainerCallback

from ..arrays import as_real_array
from ..decomposition.core import QUANTITIES
from .evaluation import EvalHook


def _as_float_array(values: Any, name: str) -> np.ndarray:
    return as_real_array(values, name).astype(np.float64)


class MisfitCallback(TrainerCallback):
    """Log the misfit decomposition (weak / w2s / ceiling error, misfit, gain, ...) at every evaluation.

    Args:
        weak_predictions: the weak model's predictions on the eval set, (n,) or (n, k), in the eval
            dataset's row order.
        references: gold labels of the eval set in the same order; default: the eval dataset's
            `labels` as the Trainer sees them.
        ceiling_predictions: optional predictions of a strong model trained on gold labels (adds
            `ceiling_error`, `pgr` and the residual diagnostics: `finite_sample_term`,
            `nonrealizability_term`, their bounds and the `proxy_*` quantities, docs/diagnostics.md).
        target_names: names of the k target columns (per-target keys `<target>/<quantity>`).
        split: name given to the eval set in hook calls (default "eval").
        hooks: `EvalHook`s called with each decomposition (main process) and, at the end of
            training, `on_end({"splits": {split: last decomposition}, "history": [...]})`.
        n_boot: bootstrap resamples for the intervals (0 = none); with n_boot > 0 the Trainer also
            logs `<quantity>_ci_low` / `<quantity>_ci_high`.
        seed: seed of the bootstrap resamples.
        confidence: coverage of the bootstrap intervals.
        divergence: "squared" (regression) or, for a classifier, "kl_logits" (the model's logits, as
            a Trainer returns them) or "kl" (probabilities); the weak (and ceiling) predictions are then
            in the same form, and the references are class indices (n,) or soft labels. Accuracies and
            the forward misfit are logged too.

    Usage (the Trainer computes metrics only through `compute_metrics`, so wire both in):

        callback = MisfitCallback(weak_predictions=weak_on_val)            # rows of `val`, in order
        trainer = Trainer(model=model, args=TrainingArguments(..., eval_strategy="epoch"),
                          train_dataset=train_on_weak_labels, eval_dataset=val,
                          compute_metrics=callback.compute_metrics, callbacks=[callback])
        trainer.train()
        [log for log in trainer.state.log_history if "eval_misfit" in log]

    or `callback.attach(trainer)` on an existing Trainer (keeps its own `compute_metrics`, adding
    these keys). The model's outputs (`logits`, the first output if a tuple) are the w2s
    predictions; a trailing dimension of 1 is dropped to match 1-D weak predictions. One eval set
    per callback: the eval dataset needs its labels (the Trainer skips metrics without them).
    """

    def __init__(
        self,
        weak_predictions: Any,
        references: Any = None,
        ceiling_predictions: Any = None,
        *,
        target_names: list[str] | None = None,
        split: str = "eval",
        hooks: Iterable[EvalHook] = (),
        n_boot: int = 0,
        seed: int = 0,
        confidence: float = 0.95,
        divergence: str = "squared",
    ):
        from ..decomposition.core import DIVERGENCES

        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {divergence!r}")
        self.divergence = divergence
        self.weak = _as_float_array(weak_predictions, "weak_predictions")
        self.references = None if references is None else _as_float_array(references, "references")
        self.ceiling = (
            None if ceiling_predictions is None else _as_float_array(ceiling_predictions, "ceiling_predictions")
        )
        # class-index references have another shape than class-probability predictions
        same_shape = [("references", self.references)] if divergence == "squared" else []
        for name, arr in (*same_shape, ("ceiling_predictions", self.ceiling)):
            if arr is not None and arr.shape != self.weak.shape:
                raise ValueError(
                    f"{name} has shape {arr.shape} but weak_predictions has {self.weak.shape}; "
                    "they must cover the same eval rows in the same order."
                )
        self.target_names = target_names
        self.split = split
        self.hooks = list(hooks)
        self.decompose_kwargs = {"n_boot": n_boot, "seed": seed, "confidence": confidence, "divergence": divergence}
        self.last = None  # the latest Decomposition
        self.history: list[dict[str, Any]] = []
        self._pending = None

    # ------------------------------------------------------------------ metrics
    def compute_metrics(self, eval_pred: Any) -> dict[str, float]:
        """`Trainer(compute_metrics=...)`: the decomposition as flat float metrics."""
        from ..decomposition.core import decompose

        preds = eval_pred.predictions
        if isinstance(preds, (tuple, list)):
            preds = preds[0]
        preds = self._match(np.asarray(preds, dtype=np.float64), "the model's predictions")
        if self.references is not None:
            refs = self.references
        else:
            if eval_pred.label_ids is None:
                raise ValueError(
                    "MisfitCallback needs gold labels: pass references=... or give the eval dataset a labels column."
                )
            labels = eval_pred.label_ids[0] if isinstance(eval_pred.label_ids, (tuple, list)) else eval_pred.label_ids
            refs = np.asarray(labels, dtype=np.float64)
            if self.divergence == "squared":
                refs = self._match(refs, "the eval labels")
        dec = decompose(refs, self.weak, preds, self.ceiling, target_names=self.target_names, **self.decompose_kwargs)
        self._pending = dec
        return _flat_metrics(dec)

    def _match(self, arr: np.ndarray, what: str) -> np.ndarray:
        if self.weak.ndim == 1 and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != self.weak.shape:
            raise ValueError(
                f"{what} have shape {arr.shape} but weak_predictions has {self.weak.shape}: the callback's "
                "weak predictions must be for the Trainer's eval dataset, row by row (one eval set per callback)."
            )
        return arr

    def attach(self, trainer: Any) -> Any:
        """Add this callback to `trainer` and its metrics to the trainer's `compute_metrics`; returns trainer."""
        own: Callable | None = trainer.compute_metrics
        trainer.compute_metrics = (
            self.compute_metrics if own is None else (lambda p: {**own(p), **self.compute_metrics(p)})
        )
        trainer.add_callback(self)
        return trainer

    # ------------------------------------------------------------------ events
    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
        dec, self._pending = self._pending, None
        if dec is None:
            raise ValueError(
                "MisfitCallback saw an evaluation without its metrics: pass compute_metrics=callback.compute_metrics "
                "to Trainer (or call callback.attach(trainer)), and give the eval dataset its labels."
            )
        self.last = dec
        step = int(state.global_step)
        self.history.append({"step": step, "epoch": state.epoch, **{q: getattr(dec, q) for q in QUANTITIES}})
        if state.is_world_process_zero:
            for hook in self.hooks:
                hook.on_evaluate(step, self.split, dec, {"epoch": state.epoch, "trainer": True})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.last is not None and state.is_world_process_zero:
            results = {"splits": {self.split: self.last.as_dict()}, "history": list(self.history)}
            for hook in self.hooks:
                hook.on_end(results)


def _flat_metrics(dec: Any) -> dict[str, float]:
    """Scalars only (what every logging integration accepts): quantities, intervals, per target."""
    d = dec.as_dict()
    out = {q: float(d[q]) for q in QUANTITIES if d.get(q) is not None}
    out.update({q: float(v) for q, v in (d.get("extras") or {}).items() if v is not None})
    out.update({q: float(v) for q, v in (d.get("diagnostics") or {}).items() if v is not None})  # residual split
    for q, ci in {**(d.get("ci") or {}), **(d.get("diagnostics_ci") or {})}.items():
        if ci and None not in ci:
            out[f"{q}_ci_low"], out[f"{q}_ci_high"] = float(ci[0]), float(ci[1])
    per = d.get("per_target") or {}
    if len(per) > 1:
        per_diag = d.get("diagnostics_per_target") or {}
        for target, values in per.items():
            out.update({f"{target}/{q}": float(v) for q, v in values.items() if q in QUANTITIES and v is not None})
            out.update({f"{target}/{q}": float(v) for q, v in per_diag.get(target, {}).items() if v is not None})
    return out
