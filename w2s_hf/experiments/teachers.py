"""Several weak teachers as one: a convex mixture of weak heads, in the spirit of RAVEN (NeurIPS 2025).

For one split seed, every teacher is an ordinary finished run (`W2SPipeline`) with the same task, split
and strong model: its weak head was fitted on weak_train gold labels over its own representation, and its
student on its weak labels. The mixture W = sum_k w_k W_k (regression: the predictions; classification:
the probabilities) has weights on the simplex chosen on **val gold labels** (w2s_hf.decomposition.simplex:
the mixture's val error is minimised). The mixture is one function of the input, so the decomposition
holds for it as for any teacher: its student is the protocol's `w2s` row fitted on the mixture's labels
(`W2SPipeline.fit_student_on`), and gain, misfit, residual are `decompose()` of (gold, W, student).

Per teacher: its own run's decomposition and the mixture student's misfit against it. For the squared
loss the weighted misfits split exactly: sum_k w_k d(S, W_k) = d(S, W) + sum_k w_k d(W_k, W) (the
second term, `diversity`, is the teachers' spread around their mixture; Krogh & Vedelsby 1995).

The comparison: the mixture's student against the best single teacher's student, that teacher chosen
on val (the lowest val w2s_error of its own student, val gold labels), its test error read after. The
uniform mixture (weights 1/k, no label read) is reported beside it. No choice reads a test label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.rows import EVAL_SPLITS
from ..decomposition.core import decompose
from ..decomposition.divergences import DIVERGENCES
from ..decomposition.simplex import simplex_weights

CHOOSE_ON = "val"  # the split whose gold labels choose the weights and the best single teacher
MIXTURES = ("mixture", "uniform")
COMPARED = ("w2s_error", "weak_error")  # the students, and the teachers themselves, against the best single one


def check_same_task(runs: dict[str, Any]) -> None:
    """Every teacher's run must share the rows, gold labels and strong features: one task, one split."""
    if len(runs) < 2:
        raise ValueError(f"a mixture of teachers needs at least two teachers, got {list(runs)}")
    labels = list(runs)
    first = runs[labels[0]]
    for label in labels[1:]:
        run = runs[label]
        if run.data.ids != first.data.ids:
            raise ValueError(f"teacher {label!r} has other rows or another split than {labels[0]!r}: "
                             "give every teacher the same task, split and seed")
        if any(not np.array_equal(run.gold[s], first.gold[s]) for s in first.gold):
            raise ValueError(f"teacher {label!r} has other gold labels than {labels[0]!r}")
        if run.config.model.representation("strong") != first.config.model.representation("strong"):
            raise ValueError(f"teacher {label!r} has another strong model than {labels[0]!r}")


def mixture_labels(teachers: dict[str, dict[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
    """{split: sum_k w_k W_k[split]} over the splits every teacher predicts."""
    names = list(teachers)
    splits = set.intersection(*(set(t) for t in teachers.values()))
    return {s: sum(w * teachers[n][s] for n, w in zip(names, weights)) for s in splits}


def choose_weights(teachers: dict[str, dict[str, np.ndarray]], gold_val: np.ndarray,
                   divergence: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The simplex weights minimising the mixture's val loss; reads only val predictions and val gold."""
    loss = {"squared": "squared", "kl": "kl", "binary_kl": "binary_kl"}.get(divergence)
    if loss is None:
        raise ValueError(f"a mixture of teachers needs probabilities or values; divergence {divergence!r} "
                         "(logits) is not supported")
    preds = np.stack([t[CHOOSE_ON] for t in teachers.values()])
    return simplex_weights(preds, gold_val, loss=loss)


def mean_divergence(divergence: str, pred: np.ndarray, target: np.ndarray) -> float:
    """d(pred, target) averaged over rows: the misfit of `pred` against another model's predictions."""
    div = DIVERGENCES[divergence]
    return float(np.mean((div.pair_loss or div.loss)(pred, target)))


def _decomposition(run: Any, weak: dict, student: dict, ceiling: dict | None, n_boot: int) -> dict[str, Any]:
    out = {}
    for split in EVAL_SPLITS:
        dec = decompose(run.gold[split], weak[split], student[split],
                        None if ceiling is None else ceiling[split], target_names=run.targets, n_boot=n_boot,
                        seed=run.config.run.seed, divergence=run.divergence)
        out[split] = {**dec.as_dict(), "used_for_selection": split == CHOOSE_ON}  # val chose ridges and weights
    return out


def teacher_mixture(runs: dict[str, Any], *, n_boot: int = 0) -> dict[str, Any]:
    """The mixture of the teachers of finished runs (one split seed): weights, decompositions, comparison."""
    check_same_task(runs)
    first = next(iter(runs.values()))
    div = first.divergence
    teachers = {label: run.load_predictions(run.teacher.name) for label, run in runs.items()}
    students = {label: run.load_predictions("w2s") for label, run in runs.items()}
    ceiling = first.load_predictions("ceiling") if first.folder.predictions("ceiling").exists() else None
    weights, record = choose_weights(teachers, first.gold[CHOOSE_ON], div)
    singles = {label: _decomposition(first, teachers[label], students[label], ceiling, n_boot) for label in runs}
    out: dict[str, Any] = {"teachers": list(runs), "divergence": div, "weights": dict(zip(runs, weights.tolist())),
                           "weights_record": record, "chosen_on": f"{CHOOSE_ON} gold labels", "single": singles}
    for name, w in (("mixture", weights), ("uniform", np.full(len(runs), 1.0 / len(runs)))):
        labels = mixture_labels(teachers, w)
        student = first.fit_student_on(labels)
        block = {"weights": dict(zip(runs, w.tolist())),
                 "splits": _decomposition(first, labels, student, ceiling, n_boot),
                 "misfit_to_teacher": {label: mean_divergence(div, student["test"], teachers[label]["test"])
                                       for label in runs}}
        if div == "squared":  # the exact split of the weighted misfits (module docstring)
            block["diversity"] = float(sum(wk * mean_divergence(div, teachers[label]["test"], labels["test"])
                                           for label, wk in zip(runs, w)))
        out[name] = block
    # the best single teacher, chosen on val; its test errors are read afterwards. Students are compared with
    # the teacher whose own student has the lowest val w2s_error, teachers with the lowest val weak_error.
    best = {q: min(runs, key=lambda label, q=q: singles[label][CHOOSE_ON][q]) for q in COMPARED}
    out["best_single"] = {"teacher": best["w2s_error"], "teacher_by_weak_error": best["weak_error"],
                          "chosen_by": f"lowest {CHOOSE_ON} w2s_error of its own student (weak_error: of the teacher)"}
    out["comparison"] = {name: {q: out[name]["splits"]["test"][q] - singles[best[q]]["test"][q] for q in COMPARED}
                         for name in MIXTURES}
    return out


def rows_of(seed: int, result: dict[str, Any]) -> list[dict[str, Any]]:
    """CSV rows: one per teacher and per mixture, test quantities, the weight and the mixture student's misfit."""
    rows = []
    for label in [*result["teachers"], *MIXTURES]:
        block = result["single"][label] if label in result["single"] else result[label]["splits"]
        test = block["test"]
        rows.append({"seed": seed, "teacher": label,
                     "weight": result["weights"].get(label, ""),
                     "best_single": label == result["best_single"]["teacher"],
                     "best_single_by_weak_error": label == result["best_single"]["teacher_by_weak_error"],
                     **{q: test[q] for q in ("weak_error", "w2s_error", "misfit", "gain", "residual",
                                             "ceiling_error")},
                     "val_w2s_error": block["val"]["w2s_error"],
                     "mixture_student_misfit": result["mixture"]["misfit_to_teacher"].get(label, "")})
    return rows


def summary(results: dict[int, dict[str, Any]], *, n_boot: int = 1000, confidence: float = 0.95) -> dict[str, Any]:
    """Over seeds: mean test w2s_error of each mixture's student minus the best single teacher's student,
    with a percentile interval that resamples seeds (each seed is its own split), and the wins."""
    seeds = sorted(results)
    out: dict[str, Any] = {"seeds": seeds, "resampling_unit": "seed", "confidence": confidence}
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(seeds), (n_boot, len(seeds))) if n_boot and len(seeds) > 1 else None
    for name in MIXTURES:
        out[name] = {}
        for q in COMPARED:
            diff = np.array([results[s]["comparison"][name][q] for s in seeds])
            block = {"mean_difference": float(diff.mean()), "wins": int(np.sum(diff < 0)), "n": len(seeds),
                     "ci": None}
            if idx is not None:
                lo, means = (1 - confidence) / 2, diff[idx].mean(1)
                block["ci"] = [float(np.quantile(means, lo)), float(np.quantile(means, 1 - lo))]
            out[name][q] = block
    out["mean_weights"] = {label: float(np.mean([results[s]["weights"][label] for s in seeds]))
                           for label in results[seeds[0]]["teachers"]}
    return out


def table(results: dict[int, dict[str, Any]], stats: dict[str, Any]) -> str:
    """Markdown: per teacher, its weight and test errors (mean over seeds); then each mixture against the
    best single teacher's student."""
    seeds = sorted(results)
    names = results[seeds[0]]["teachers"]
    lines = ["| teacher | mean weight | weak_error | w2s_error | misfit | gain | mixture student's misfit to it |"
             " chosen best (seeds) |", "|---|---|---|---|---|---|---|---|"]

    def mean(get) -> str:
        return f"{np.mean([get(results[s]) for s in seeds]):.4f}"

    for label in names:
        cells = [mean(lambda r, q=q: r["single"][label]["test"][q]) for q in ("weak_error", "w2s_error", "misfit",
                                                                               "gain")]
        chosen = sum(results[s]["best_single"]["teacher"] == label for s in seeds)
        lines.append(f"| {label} | {stats['mean_weights'][label]:.3f} | " + " | ".join(cells)
                     + f" | {mean(lambda r: r['mixture']['misfit_to_teacher'][label])} | {chosen} |")
    for name in MIXTURES:
        cells = [mean(lambda r, q=q: r[name]["splits"]["test"][q]) for q in ("weak_error", "w2s_error", "misfit",
                                                                              "gain")]
        lines.append(f"| **{name}** | | " + " | ".join(cells) + " | | |")
    lines += ["", "| mixture | test error − the best single teacher's (chosen on val), mean over seeds "
              "| 95% CI (seeds) | wins |", "|---|---|---|---|"]
    for name in MIXTURES:
        for q, what in (("w2s_error", "students' w2s_error"), ("weak_error", "teachers' weak_error")):
            b = stats[name][q]
            ci = "—" if b["ci"] is None else f"[{b['ci'][0]:+.4f}, {b['ci'][1]:+.4f}]"
            lines.append(f"| {name} | {what}: {b['mean_difference']:+.4f} | {ci} | {b['wins']}/{b['n']} |")
    return "\n".join(lines)


def run_teachers(config: Any, accelerator: Any = None) -> dict[str, Any]:
    """Every (teacher, seed) run of a sweep config (reused when its folder holds it), then the mixture per
    seed; writes teachers.json and teachers.csv under the config's output_dir."""
    import csv
    from pathlib import Path

    from accelerate import Accelerator

    from ..atomic import atomic_path, write_json_atomic
    from ..data import load_task
    from ..pipeline.run import W2SPipeline
    from .sweep import point_folder

    accelerator = accelerator or Accelerator(cpu=True)
    if len(config.weak_models) < 2:
        raise ValueError(f"a mixture of teachers needs at least two weak_models, got {len(config.weak_models)}")
    results: dict[int, dict[str, Any]] = {}
    for seed in config.seeds:
        check = config.run_config(config.weak_models[0], config.strong, seed, "check")
        task = load_task(config.task, **check.task.load_kwargs())
        runs = {}
        for weak in config.weak_models:
            folder = point_folder("normal", weak, config.strong, seed)
            runs[weak.label] = W2SPipeline(config.run_config(weak, config.strong, seed, folder),
                                           accelerator=accelerator, task=task)
            runs[weak.label].run()
        results[seed] = teacher_mixture(runs, n_boot=config.n_boot)
    stats = summary(results)
    out = Path(config.output_dir)
    if accelerator.is_main_process:
        rows = [row for seed, result in results.items() for row in rows_of(seed, result)]
        with atomic_path(out / "teachers.csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        write_json_atomic(out / "teachers.json", {"summary": stats, "seeds": {str(s): r for s, r in results.items()}},
                          strict=False)
    accelerator.wait_for_everyone()
    return {"summary": stats, "results": results, "table": table(results, stats)}
