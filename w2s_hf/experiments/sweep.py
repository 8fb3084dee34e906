"""A sweep: one strong model, several weak models, several split seeds -> the paper's gain-vs-misfit panels.

Each (weak model, seed) is one ordinary pipeline run (`w2s_hf.pipeline.W2SPipeline`) in its own run
folder, so a sweep is resumable and every point can be inspected or rerun alone. Features are shared:
rows are cached in a split-independent order, and the layers that several representations take from
one model are extracted in one forward pass (`encode_layers`) before the runs start.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..config.representation import RepresentationConfig
from ..config.run import RunArguments
from ..config.sweep import SweepAxes, SweepConfig
from ..decomposition.core import DIAGNOSTICS, QUANTITIES
from ..decomposition.predictors import PREDICTORS
from ..divergences import sweep_columns
from .resampling import RESAMPLING_UNIT, PointRows, ols, row_bootstrap_line

logger = logging.getLogger("w2s_hf.sweep")

# A sweep's representation is the run config's (`config.representation`); the old name still works.
RepSpec = RepresentationConfig
__all__ = ["CSV_COLUMNS", "RESAMPLING_UNIT", "RepSpec", "SweepAxes", "SweepConfig", "run_sweep"]
# the residual diagnostics (split, bounds, ceiling as truth) and whether the split was fitted on, then the knobs
CSV_COLUMNS = ("direction", "weak_model", "strong_model", "seed", "target", "split", *QUANTITIES, "w2s_ridge",
               "in_sample", *DIAGNOSTICS, "weak_budget", "weak_ridge", "ceiling_ridge", "weak_clipped", "folds",
               "w2s_size", "w2s_rows", "weak_rows")  # w2s_size: the axis's value; *_rows: rows each head trained on
# every run's gain predictors (results.json -> predictors.per_target), one column each (the misfit is one already)
PREDICTOR_COLUMNS = tuple(p for p in PREDICTORS if p not in QUANTITIES)
# a divergence's own columns (w2s_hf.divergences.sweep_columns): classification sweeps add these (the KL
# decomposition's accuracies and forward misfit, the ceiling-as-truth residual and k_heads)
CLASSIFICATION_COLUMNS = sweep_columns("kl")


def encoded_inputs(task: Any) -> list:
    """What an encoder sees for `task`: its rows' inputs, or a preference task's distinct sides (the same list,
    in the same order, as the pipeline extracts, so a warmed cache is a hit)."""
    from ..data import TaskRows
    from ..features.pairs import unique_sides

    data = TaskRows.of(task)
    if data.sides is None:
        return data.canonical_texts
    return unique_sides(data.sides["prompt"], data.sides["first"], data.sides["second"])[0]


def _warm_cache(config: SweepConfig, reps: list[RepresentationConfig], texts: list[str], accelerator) -> None:
    """Extract every layer wanted from one model in a single forward pass, cached per layer."""
    from ..features import build_representation

    groups: dict[tuple, list[RepresentationConfig]] = defaultdict(list)
    for rep in reps:
        for part in rep.parts or [rep]:
            groups[part.group_key()].append(part)
    cache = os.path.join(config.cache_dir or RunArguments(output_dir="").resolved_cache_dir(), "features")
    for members in groups.values():
        first = members[0]
        layers = sorted({m.layer for m in members})
        encoder = build_representation(**first.encoder_kwargs())
        if len(layers) > 1 and hasattr(encoder, "encode_layers"):
            encoder.encode_layers(
                texts, layers, cache_dir=cache, accelerator=accelerator, show_progress=accelerator.is_main_process
            )


def _ceiling_on_val(pipeline, role: str) -> dict[str, float]:
    """Val error of a head fitted on w2s_train gold labels over `role` features (ridge chosen on val;
    classification: the val cross-entropy of a softmax head, its epoch chosen on val)."""
    from ..heads import fit_ridge

    X_val, y_val = pipeline.rows(role, "val"), pipeline.gold["val"]
    if pipeline.kind.inputs == "pair_difference":  # preferences: a Bradley-Terry head's val binary cross-entropy
        from ..heads.bradley_terry import fit_bradley_terry

        _, info = fit_bradley_terry(pipeline.rows(role, "w2s_train"), pipeline.gold["w2s_train"], X_val, y_val,
                                    loss=pipeline.kind.gold_loss)
        return {"mean": info["val_loss"], pipeline.targets[0]: info["val_loss"]}
    if pipeline.classes is not None:
        from ..heads.mixture import fit_classifier

        cfg = pipeline.config.head
        fitted = fit_classifier(pipeline.rows(role, "w2s_train"), pipeline.training_targets("gold", "w2s_train"),
                                X_val, pipeline.training_targets("gold", "val"), loss=pipeline.kind.gold_loss,
                                epochs=cfg.max_epochs(True),
                                lr=cfg.lr, patience=cfg.patience, seed=pipeline.config.run.seed,
                                solver="lbfgs" if cfg.solver == "exact" else "adamw")
        return {"mean": fitted.best_val_loss, pipeline.targets[0]: fitted.best_val_loss}
    head, _ = fit_ridge(pipeline.rows(role, "w2s_train"), pipeline.gold["w2s_train"], X_val, y_val)
    err = np.mean((head.predict(X_val).reshape(y_val.shape) - y_val) ** 2, axis=0)
    return {"mean": float(err.mean()), **{t: float(e) for t, e in zip(pipeline.targets, err)}}


def point_folder(direction: str, weak: RepresentationConfig, strong: RepresentationConfig, seed: int,
                 budget: int | None = None, size: int | None = None) -> str:
    """The run folder (under <output_dir>/runs/) of one sweep point; other experiments reuse it by this name."""
    return point_folder_name(direction, weak.label, strong.label, seed, budget, size)


def point_folder_name(direction: str, weak: str, strong: str, seed: Any, budget: Any = None, size: Any = None) -> str:
    """`point_folder` from labels (sweep.csv's columns; '' or None: no budget / every w2s_train row)."""
    name = f"{direction}__{weak}__{strong}__seed{seed}"
    name += "" if budget in (None, "") else f"__n{budget}"
    name += "" if size in (None, "") else f"__w2s{size}"
    return name.replace("/", "_")


def check_sizes(config: SweepConfig, tasks: dict) -> None:
    """Every weak budget and w2s_train size against its split's rows, for every (seed, fold), before any run
    starts: a size too large fails at once, not after the runs before it. Loads the tasks into `tasks`."""
    from ..data import TaskRows, load_task
    from ..errors import ConfigError

    for seed in config.seeds:
        for fold in config.folds:
            run = config.run_config(config.weak_models[0], config.strong, seed, "check", fold=fold)
            if (seed, fold) not in tasks:
                tasks[(seed, fold)] = load_task(config.task, **run.task.load_kwargs())
            rows = TaskRows.of(tasks[(seed, fold)]).sizes()
            for key, values, split in (("weak_budgets", config.budgets, "weak_train"),
                                       ("w2s_sizes", config.sizes, "w2s_train")):
                over = [v for v in values if v is not None and v > rows[split]]
                if over:
                    where = f"split_seed {seed}" + ("" if fold is None else f", cv_fold {fold}")
                    raise ConfigError(f"{key} {over} exceed the {rows[split]} rows of {split} ({where}); lower "
                                      "them or use 'all'.")


def run_sweep(config: SweepConfig, accelerator=None) -> dict[str, Any]:
    """Run every (direction, weak model, budget, seed[, fold]) pipeline; write sweep.csv, sweep.json, the plot."""
    from accelerate import Accelerator

    from ..atomic import atomic_path, write_json_atomic
    from ..decomposition.selection import select_weak_model
    from ..hooks.plots import plot_misfit_vs_gain

    accelerator = accelerator or Accelerator(cpu=True)
    started = time.perf_counter()
    out = Path(config.output_dir)
    tasks: dict[tuple, Any] = {}  # a split is loaded (files read, SMILES parsed) once per (seed, fold)
    check_sizes(config, tasks)  # before any feature is extracted
    texts = encoded_inputs(tasks[(config.seeds[0], config.folds[0])])
    _warm_cache(config, [config.strong, *config.weak_models], texts, accelerator)

    directions = [("normal", w, config.strong) for w in config.weak_models]
    if config.swap_roles:
        directions += [("reversed", config.strong, w) for w in config.weak_models]
    rows: list[dict[str, Any]] = []
    point_rows: list[PointRows] = []
    proxy_rows: list[PointRows] = []
    results: dict[tuple[str, str, int], dict] = {}
    ceilings: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    divergence = None  # the runs' (the students' loss names it): its columns close sweep.csv's header
    for direction, weak, strong in directions:
        for budget, size, seed in itertools.product(config.budgets, config.sizes, config.seeds):
            point = _run_point(config, direction, weak, strong, (budget, size), seed, accelerator, ceilings, tasks)
            divergence = point["divergence"]
            results[(direction, point["label"], seed)] = point["results"]
            rows += point["rows"]
            if direction == "normal":
                point_rows += point["point_rows"]
                proxy_rows += point["proxy_rows"]
    summary = _summarise(config, rows, point_rows, results, ceilings, select_weak_model, proxy_rows)
    # the sweep's wall time up to its summary (the figure and files after it take well under a second)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if accelerator.is_main_process:
        with atomic_path(out / "sweep.csv") as tmp, open(tmp, "w", newline="") as fh:
            columns = CSV_COLUMNS + PREDICTOR_COLUMNS + sweep_columns(divergence)
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        write_json_atomic(out / "sweep.json", summary, strict=False)
        normal = [r for r in rows if r["direction"] == "normal"]
        plot_misfit_vs_gain(
            normal,
            out / "misfit_vs_gain.png",
            panel_key="target",
            title=f"{config.name or config.task} ({config.split}), strong = {config.strong.label}",
        )
        if len(config.sizes) > 1:  # errors against the w2s_train rows, one panel per (weak model, target)
            _plot_scaling(config, normal, summary["scaling"], out / "scaling_vs_n.png")
    accelerator.wait_for_everyone()
    return summary


def _plot_scaling(config: SweepConfig, rows: list[dict], scaling: dict, path: Path) -> None:
    from ..hooks.scaling_plot import plot_scaling
    from .scaling import scaling_panels

    points = [{**r, "panel": f"{r['weak_model']} / {r['target']}"} for r in rows]
    plot_scaling(scaling_panels(points, scaling["panels"], "panel"), path,
                 title=f"{config.name or config.task}: {config.eval_split} errors against the w2s_train rows N")


def _point_label(weak: RepresentationConfig, budget: int | None, size: int | None = None) -> str:
    return weak.label + ("" if budget is None else f"@n{budget}") + ("" if size is None else f"@N{size}")


def _run_point(config: SweepConfig, direction: str, weak, strong, budget_size: tuple, seed: int, accelerator,
               ceilings: dict, tasks: dict) -> dict[str, Any]:
    """One point (a weak budget and w2s_train size): one run, or under cross-fitting one run per fold with the
    test rows pooled. `tasks`: every (seed, fold)'s loaded task (`check_sizes`)."""
    from ..decomposition.core import DIVERGENCES, decompose
    from ..pipeline.run import W2SPipeline

    folds, (budget, size) = config.folds, budget_size
    label = _point_label(weak if direction == "normal" else strong, budget, size)
    base = point_folder(direction, weak, strong, seed, budget, size)
    runs, evals, trained = [], [], []
    for fold in folds:
        folder = (base + ("" if fold is None else f"__fold{fold}")).replace("/", "_")
        run = config.run_config(weak, strong, seed, folder, budget=budget, fold=fold, size=size)
        # one compact summary at the end (sweep_report.py), not a decomposition table per run
        pipeline = W2SPipeline(run, accelerator=accelerator, task=tasks[(seed, fold)], print_table=False)
        runs.append(pipeline.run())
        trained.append([len(pipeline.train_subset(s)) for s in ("w2s_train", "weak_train")])
        evals.append(_eval_rows(pipeline, config.eval_split))
        if direction == "normal" and fold in (None, 0) and seed not in ceilings[weak.label]:
            # on every w2s_train row with gold labels: the same for every budget and size of this seed
            ceilings[weak.label][seed] = _ceiling_on_val(pipeline, "weak")
            ceilings[strong.label].setdefault(seed, _ceiling_on_val(pipeline, "strong"))
    # a divergence with extras (KL: accuracies beside it) reports them and the diagnostics' ceiling-as-truth residual
    with_extras = bool(sweep_columns(pipeline.divergence))
    if fold is None:
        block = runs[0]["splits"][config.eval_split]
    else:  # cross-fitting: every row's test prediction comes from the fold that held it out (val: each fold's
        # val rows, drawn from the other folds, so a row may recur; the bootstrap resamples row ids, not rows)
        pooled = {k: np.concatenate([e[k] for e in evals]) for k in ("y", "weak", "w2s", "ceiling")}
        block = decompose(pooled["y"], pooled["weak"], pooled["w2s"], pooled["ceiling"],
                          target_names=pipeline.targets, n_boot=config.n_boot, seed=config.base.run.seed,
                          divergence=pipeline.divergence).as_dict()
        evals = [{"ids": [i for e in evals for i in e["ids"]], **pooled}]
    # classification has one target: its averaged extras are that target's
    extras = {**block.get("extras", {}), "k_heads": config.base.head.k_heads,
              "residual_ceiling_as_truth": block["diagnostics"]["proxy_residual"]} if with_extras else {}
    heads = [r.get("heads", {}) for r in runs]
    chosen = {f"{h}_ridge": _median([r.get(h, {}).get("ridge") for r in heads]) for h in ("w2s", "weak", "ceiling")}
    # weak_clip: the share of the teacher's w2s_train labels the clip moved (empty when the teacher is not clipped)
    chosen["weak_clipped"] = _median([(r.get("weak", {}).get("clip") or {}).get("clipped_share_w2s_train")
                                      for r in heads])
    rows, point_rows = [], []
    predicted = runs[0].get("predictors", {}).get("per_target", {}) if fold is None else {}
    div = DIVERGENCES[pipeline.divergence]
    e = evals[0]
    gain_rows = div.loss(e["weak"], e["y"]) - div.loss(e["w2s"], e["y"])  # (n, targets)
    misfit_rows = (div.pair_loss or div.loss)(e["weak"], e["w2s"])
    proxy_rows = None if with_extras else div.loss(e["weak"], e["ceiling"]) - div.loss(e["w2s"], e["ceiling"])
    proxy_points: list[PointRows] = []
    for j, (target, values) in enumerate(block["per_target"].items()):
        rows.append({**extras, "direction": direction, "weak_model": weak.label, "strong_model": strong.label,
                     "seed": seed, "target": target, "split": f"{config.eval_split} (cross-fitted)"
                     if fold is not None else config.eval_split, **{c: values.get(c) for c in QUANTITIES}, **chosen,
                     "in_sample": block.get("in_sample", False),
                     **{c: block["diagnostics_per_target"].get(target, {}).get(c) for c in DIAGNOSTICS},
                     "weak_budget": budget, "folds": len(folds) if fold is not None else None, "w2s_size": size,
                     # under cross-fitting each fold's split has its own size: the median over folds
                     "w2s_rows": int(np.median([t[0] for t in trained])),
                     "weak_rows": int(np.median([t[1] for t in trained])),
                     **{p: predicted.get(target, {}).get(p) for p in PREDICTOR_COLUMNS}})
        point_rows.append(PointRows(e["ids"], gain_rows[:, j], misfit_rows[:, j]))
        if proxy_rows is not None:  # the same rows with the ceiling's predictions as the truth
            proxy_points.append(PointRows(e["ids"], proxy_rows[:, j], misfit_rows[:, j]))
    result = runs[0] if fold is None else {"splits": {config.eval_split: block}, "heads": heads[0]}
    return {"results": result, "rows": rows, "point_rows": point_rows, "proxy_rows": proxy_points, "label": label,
            "divergence": pipeline.divergence}


def _eval_rows(pipeline, split: str) -> dict[str, Any]:
    """Ids, gold labels and the weak, student and ceiling predictions of one split of a finished run."""
    return {"ids": list(pipeline.data.ids[split]), "y": pipeline.gold[split],
            "weak": pipeline.load_predictions(pipeline.teacher.name)[split],
            "w2s": pipeline.load_predictions("w2s")[split], "ceiling": pipeline.load_predictions("ceiling")[split]}


def _median(values: list[Any]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return float(np.median(known)) if known else None


BOOT_SEED = 0


def _gain_line(points: list[dict[str, Any]], rows: list[PointRows] | None, n_boot: int = 1000,
               gain_key: str = "gain") -> dict[str, Any]:
    """Gain (column `gain_key`) regressed on misfit over `points`, its interval from resampling row ids
    (`resampling.py`); no line (None) from fewer than two distinct misfits, e.g. a one-run sweep."""
    misfit, gain = [r["misfit"] for r in points], [r[gain_key] for r in points]
    ridge = ridge_summary([r.get("w2s_ridge") for r in points],
                           [r.get(f"{h}_ridge") for r in points for h in ("weak", "ceiling")],
                           weak=[r.get("weak_ridge") for r in points])
    if len(set(misfit)) < 2:
        return {"w2s_ridge": ridge, "slope": None, "intercept": None, "r2": None, "n": len(points), "ci": {},
                "note": "fewer than two distinct misfit values: no line to fit"}
    x, y = np.array([misfit], dtype=float), np.array([gain], dtype=float)
    slope, intercept, r2 = (float(v[0]) for v in ols(x, y))
    out = {"slope": slope, "intercept": intercept, "r2": None if np.isnan(r2) else r2, "n": len(points),
           "ci": {}, "w2s_ridge": ridge}
    if rows and n_boot > 0:
        boot = row_bootstrap_line(rows, n_boot=n_boot, seed=BOOT_SEED)
        out["ci"] = boot.pop("ci")
        out["bootstrap"] = boot
    return out


def ridge_summary(ridges: list[float | None], others: list[float | None] | None = None,
                  weak: list[float | None] | None = None) -> dict[str, Any]:
    """The students' chosen ridges beside a slope: only a student at ridge 0 (a subspace) is the theorem's
    setting; with ridge > 0 gain >= misfit needs the truth inside a weak-label-dependent ball. `heads` says
    whether the weak heads and ceilings were chosen on val (the theorem's setting) or fixed at 0 too
    (`others`: the weak heads' and ceilings' ridges; `weak`: the weak heads' alone)."""
    known = [float(r) for r in ridges if r is not None]
    if not known:
        return {"min": None, "median": None, "max": None, "matches_theorem": None, "heads": None}
    theorem = all(r == 0.0 for r in known)
    rest = [float(r) for r in others or [] if r is not None]
    heads = None
    if theorem and rest:
        weak_known = [float(r) for r in weak or [] if r is not None]
        if all(r == 0.0 for r in rest):
            heads = "all heads at ridge 0 (teacher and ceiling unregularised too)"
        elif weak_known and all(r == 0.0 for r in weak_known):
            heads = "student and weak heads at ridge 0 (minimum-norm teachers), ceilings chosen on val"
        else:
            heads = "theorem: student at ridge 0, weak heads and ceilings chosen on val"
    return {"min": min(known), "median": float(np.median(known)), "max": max(known),
            "matches_theorem": theorem, "heads": heads}


def _selection(config, results, targets, select_weak_model, misfit_split: str) -> dict[str, Any]:
    """Weak-model choice per (seed, budget, target) with the misfit read on `misfit_split`, and mean regrets."""
    per_scenario, regrets = {}, defaultdict(list)
    for seed in config.seeds:
        for budget, size in itertools.product(config.budgets, config.sizes):
            labels = [_point_label(w, budget, size) for w in config.weak_models]
            candidates = {label: results[("normal", label, seed)] for label in labels}
            for target in targets:
                pick = select_weak_model(
                    candidates, target=target, misfit_split=misfit_split, evaluate_on=config.eval_split
                )
                scenario = (f"seed{seed}/{target}" + ("" if budget is None else f"/n{budget}")
                            + ("" if size is None else f"/N{size}"))
                per_scenario[scenario] = pick.as_dict()
                for rule, info in pick.baselines.items():
                    regrets[rule].append(info["regret"])
    return {"per_scenario": per_scenario, "mean_regret": {k: float(np.mean(v)) for k, v in regrets.items()}}


def _residual_split(points: list[dict[str, Any]], proxy_rows: list[PointRows], n_boot: int) -> dict[str, Any] | None:
    """Why the sweep's residuals are what they are: the mean split over points, how often the
    non-realizability bound exceeds the misfit, and the gain-on-misfit line with the ceiling as the truth
    (its non-realizability term is 0). None when the runs had no ceiling to split at."""
    if not points or any(r.get("nonrealizability_term") is None for r in points):
        return None
    mean = {c: float(np.mean([r[c] for r in points])) for c in ("residual", *DIAGNOSTICS[:4])}
    above = float(np.mean([r["nonrealizability_bound"] > r["misfit"] for r in points]))
    return {"mean": mean, "share_nonrealizability_bound_above_misfit": above,
            "share_positive_proxy_gain": float(np.mean([r["proxy_gain"] > 0 for r in points])),
            "fit_proxy_truth": _gain_line(points, proxy_rows or None, n_boot, gain_key="proxy_gain")}


def _summarise(config, rows, point_rows, results, ceilings, select_weak_model, proxy_rows) -> dict[str, Any]:
    normal = [r for r in rows if r["direction"] == "normal"]
    n_boot = 1000
    fits = {"all": _gain_line(normal, point_rows, n_boot)}
    targets = sorted({r["target"] for r in normal})
    if len(targets) > 1:
        fits["per_target"] = {
            t: _gain_line([r for r in normal if r["target"] == t],
                          [p for r, p in zip(normal, point_rows) if r["target"] == t], n_boot) for t in targets
        }
    if config.base.task.cv_folds or config.eval_split == "val":
        # each fold chose its ridges on its own val; a val panel has no untouched split to score a choice on
        selection: dict[str, Any] = {}
        top = {"per_scenario": {}, "mean_regret": {},
               "note": "not computed: under cross-fitting each fold has its own val (the pooled test rows are the "
                       "only evaluation split); with eval_split val no untouched split scores the choice"}
    else:
        clean = f"misfit_on_{config.eval_split}"
        selection = {"misfit_on_val": _selection(config, results, targets, select_weak_model, "val"),
                     clean: _selection(config, results, targets, select_weak_model, config.eval_split)}
        selection["misfit_on_val"]["note"] = ("val also chose every ridge: its misfit is the student's selection "
                                              "criterion")
        selection[clean]["note"] = (f"misfit on the unlabelled inputs of {config.eval_split}, a split no selection "
                                    "touched")
        top = selection["misfit_on_val"]
    # which gain predictor predicts best (rank correlation, R², regret), on the gain of eval_split
    from .predictor_scores import score_predictors

    predictors = score_predictors(normal, n_boot=1000 if config.n_boot else 0, seed=BOOT_SEED)
    predictors["gain_split"] = config.eval_split
    from .scaling import sweep_scaling

    scaling = sweep_scaling(normal, n_boot=n_boot if config.n_boot else 0)  # power laws over w2s_sizes, weak_budgets
    ceiling_mean = {rep: float(np.mean([v["mean"] for v in per_seed.values()])) for rep, per_seed in ceilings.items()}
    summary = {
        "config": config.as_dict(),
        "n_runs": len({(r["weak_model"], r["weak_budget"], r["w2s_size"], r["seed"]) for r in normal}),
        "fit": fits,
        "bootstrap": {"resampling_unit": RESAMPLING_UNIT, "seed": BOOT_SEED, "n_boot": n_boot,
                      "not_resampled": "the weak models, the fitted heads and the splits (intervals are "
                                       "conditional on them)"},
        "predictors": predictors,
        "scaling": scaling,
        "mean_residual": float(np.mean([r["residual"] for r in normal])),
        "share_positive_gain": float(np.mean([r["gain"] > 0 for r in normal])),
        "residual_split": _residual_split(normal, proxy_rows, n_boot),
        # top-level per_scenario / mean_regret: the misfit on val, as in earlier sweep.json files
        "selection": {**top, "by_misfit_split": selection},
        "ceiling_error_val": {
            "per_representation": ceiling_mean,
            "strongest": min(ceiling_mean, key=ceiling_mean.get),
            "used_for_selection": True,  # val chose these heads' ridges: an optimistic ranking
        },
    }
    if config.swap_roles:
        summary["reversal"] = {}
        for w in config.weak_models:
            pair = {}
            for direction in ("normal", "reversed"):
                sel = [
                    r
                    for r in rows
                    if r["direction"] == direction
                    and (r["weak_model"] if direction == "normal" else r["strong_model"]) == w.label
                ]
                pair[direction] = {
                    c: float(np.mean([r[c] for r in sel]))
                    for c in ("weak_error", "w2s_error", "misfit", "gain", "residual")
                }
            summary["reversal"][w.label] = pair
    return summary
