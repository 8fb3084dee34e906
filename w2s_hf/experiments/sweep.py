"""A sweep: one strong model, several weak models, several split seeds -> the paper's gain-vs-misfit panels.

Each (weak model, seed) is one ordinary pipeline run (`w2s_hf.pipeline.W2SPipeline`) in its own run
folder, so a sweep is resumable and every point can be inspected or rerun alone. Features are shared:
rows are cached in a split-independent order, and the layers that several representations take from
one model are extracted in one forward pass (`encode_layers`) before the runs start.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config.run import ConfigError, HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig
from ..decomposition.core import QUANTITIES

logger = logging.getLogger("w2s_hf.sweep")

_REP_KEYS = ("model", "revision", "layer", "pooling", "max_length", "dtype", "trust_remote_code")
CSV_COLUMNS = ("direction", "weak_model", "strong_model", "seed", "target", "split", *QUANTITIES, "w2s_ridge")
# classification sweeps add these (the KL decomposition's accuracies and forward misfit)
CLASSIFICATION_COLUMNS = ("weak_accuracy", "w2s_accuracy", "ceiling_accuracy", "misfit_forward",
                          "residual_ceiling_as_truth", "k_heads")
KL_TASK_TYPES = ("classification", "preference")  # decompositions with accuracies beside them


def encoded_inputs(task: Any) -> list:
    """What an encoder sees for `task`: its rows' inputs, or a preference task's distinct sides (the same list,
    in the same order, as the pipeline extracts, so a warmed cache is a hit)."""
    from ..data import TaskRows
    from ..features.pairs import unique_sides

    data = TaskRows.of(task)
    if data.sides is None:
        return data.canonical_texts
    return unique_sides(data.sides["prompt"], data.sides["first"], data.sides["second"])[0]


@dataclass
class RepSpec:
    """A representation: a model (Hub id, folder, packaged:NAME, rdkit:KIND) and how it is read."""

    model: str
    name: str | None = None
    revision: str | None = None
    layer: int = -1
    pooling: str = "mean"
    max_length: int = 512
    dtype: str = "float32"
    trust_remote_code: bool = False

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        base = self.model.split(":", 1)[-1].rstrip("/").split("/")[-1]
        return base if self.model.startswith("rdkit:") or self.layer == -1 else f"{base}@L{self.layer}"

    def as_args(self, role: str) -> dict[str, Any]:
        return {f"{role}_{k}": getattr(self, k) for k in _REP_KEYS}

    def group_key(self) -> tuple:
        return tuple(getattr(self, k) for k in _REP_KEYS if k != "layer")


@dataclass
class SweepConfig:
    """What a sweep runs; read from YAML (see scripts/configs/)."""

    task: str
    strong: RepSpec
    weak_models: list[RepSpec]
    output_dir: str
    task_path: str | None = None
    split: str = "random"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    targets: list[str] | None = None
    input_column: str | None = None
    target_columns: list[str] | None = None
    task_type: str = "regression"
    label_column: str | None = None
    threshold: float | None = None
    pair_from_scores: str | None = None
    pairs_per_item: int | None = None
    head: dict[str, Any] = field(default_factory=dict)
    swap_roles: bool = False
    cache_dir: str | None = None
    n_boot: int = 1000
    eval_split: str = "test"
    name: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "sweep config") -> "SweepConfig":
        values = dict(values)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown key(s) {unknown} in {source}; allowed: {sorted(known)}.")
        for key in ("task", "strong", "weak_models", "output_dir"):
            if key not in values or values[key] in (None, "", []):
                raise ConfigError(f"{source} needs {key!r}.")

        def rep(spec: Any, where: str) -> RepSpec:
            spec = {"model": spec} if isinstance(spec, str) else dict(spec)
            bad = sorted(set(spec) - set(RepSpec.__dataclass_fields__))
            if bad:
                raise ConfigError(f"Unknown key(s) {bad} in {where} of {source}.")
            return RepSpec(**spec)

        values["strong"] = rep(values["strong"], "strong")
        values["weak_models"] = [rep(w, f"weak_models[{i}]") for i, w in enumerate(values["weak_models"])]
        labels = [w.label for w in values["weak_models"]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"weak_models in {source} have repeated names {labels}; give each a distinct 'name'.")
        config = cls(**values)
        for seed in config.seeds:
            config.run_config(config.weak_models[0], config.strong, seed, "check")  # validates every key now
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> "SweepConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Sweep config {str(path)!r} does not exist.")
        values = yaml.safe_load(path.read_text()) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, source=str(path))

    def run_config(self, weak: RepSpec, strong: RepSpec, seed: int, folder: str) -> W2SConfig:
        head = HeadArguments(**{k: (str(v) if k == "ridge" else v) for k, v in self.head.items()})
        return W2SConfig(
            model=ModelArguments(**weak.as_args("weak"), **strong.as_args("strong")),
            task=TaskArguments(
                task=self.task,
                task_path=self.task_path,
                split=self.split,
                split_seed=seed,
                targets=self.targets,
                input_column=self.input_column,
                target_columns=self.target_columns,
                task_type=self.task_type,
                label_column=self.label_column,
                threshold=self.threshold,
                pair_from_scores=self.pair_from_scores,
                pairs_per_item=self.pairs_per_item,
            ),
            head=head,
            run=RunArguments(
                output_dir=str(Path(self.output_dir) / "runs" / folder),
                cache_dir=self.cache_dir,
                report_to="none",
                n_boot=self.n_boot,
                plot=False,
            ),
        ).validate()


def _warm_cache(config: SweepConfig, reps: list[RepSpec], texts: list[str], accelerator) -> None:
    """Extract every layer wanted from one model in a single forward pass, cached per layer."""
    from ..features import build_representation

    groups: dict[tuple, list[RepSpec]] = defaultdict(list)
    for rep in reps:
        groups[rep.group_key()].append(rep)
    cache = os.path.join(config.cache_dir or RunArguments(output_dir="").resolved_cache_dir(), "features")
    for members in groups.values():
        first = members[0]
        layers = sorted({m.layer for m in members})
        encoder = build_representation(name=first.model, **{k: getattr(first, k) for k in _REP_KEYS if k != "model"})
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
                                lr=cfg.lr, patience=cfg.patience, seed=pipeline.config.run.seed)
        return {"mean": fitted.best_val_loss, pipeline.targets[0]: fitted.best_val_loss}
    head, _ = fit_ridge(pipeline.rows(role, "w2s_train"), pipeline.gold["w2s_train"], X_val, y_val)
    err = np.mean((head.predict(X_val).reshape(y_val.shape) - y_val) ** 2, axis=0)
    return {"mean": float(err.mean()), **{t: float(e) for t, e in zip(pipeline.targets, err)}}


def run_sweep(config: SweepConfig, accelerator=None) -> dict[str, Any]:
    """Run every (direction, weak model, seed) pipeline and write sweep.csv, sweep.json and the plot."""
    from accelerate import Accelerator

    from ..atomic import atomic_path, write_json_atomic
    from ..data import load_task
    from ..decomposition.core import fit_gain_on_misfit
    from ..decomposition.selection import select_weak_model
    from ..hooks.plots import plot_misfit_vs_gain
    from ..pipeline.run import W2SPipeline

    accelerator = accelerator or Accelerator(cpu=True)
    out = Path(config.output_dir)
    tasks = {
        seed: load_task(
            config.task, **config.run_config(config.weak_models[0], config.strong, seed, "check").task.load_kwargs()
        )
        for seed in config.seeds
    }
    _warm_cache(config, [config.strong, *config.weak_models], encoded_inputs(tasks[config.seeds[0]]), accelerator)

    directions = [("normal", w, config.strong) for w in config.weak_models]
    if config.swap_roles:
        directions += [("reversed", config.strong, w) for w in config.weak_models]
    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str, int], dict] = {}
    ceilings: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for direction, weak, strong in directions:
        for seed in config.seeds:
            folder = f"{direction}__{weak.label}__{strong.label}__seed{seed}".replace("/", "_")
            pipeline = W2SPipeline(
                config.run_config(weak, strong, seed, folder), accelerator=accelerator, task=tasks[seed]
            )
            res = pipeline.run()
            key_label = weak.label if direction == "normal" else strong.label
            results[(direction, key_label, seed)] = res
            if direction == "normal":
                ceilings[weak.label][seed] = _ceiling_on_val(pipeline, "weak")
                if seed not in ceilings[strong.label]:
                    ceilings[strong.label][seed] = _ceiling_on_val(pipeline, "strong")
            block = res["splits"][config.eval_split]
            # classification has one target: its averaged extras are that target's
            extras = ({**block.get("extras", {}), "k_heads": config.head.get("k_heads", 1)}
                      if config.task_type in KL_TASK_TYPES else {})
            for target, values in block["per_target"].items():
                rows.append(
                    {
                        **extras,
                        "direction": direction,
                        "weak_model": weak.label,
                        "strong_model": strong.label,
                        "seed": seed,
                        "target": target,
                        "split": config.eval_split,
                        **{c: values.get(c) for c in QUANTITIES},
                        "w2s_ridge": res.get("heads", {}).get("w2s", {}).get("ridge"),
                    }
                )
    summary = _summarise(config, rows, results, ceilings, fit_gain_on_misfit, select_weak_model)
    if accelerator.is_main_process:
        with atomic_path(out / "sweep.csv") as tmp, open(tmp, "w", newline="") as fh:
            columns = CSV_COLUMNS + (CLASSIFICATION_COLUMNS if config.task_type in KL_TASK_TYPES else ())
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
    accelerator.wait_for_everyone()
    return summary


# Points of one (direction, weak model, seed) run share a test set and a weak model: the bootstrap of
# the gain-on-misfit line resamples whole runs, all their targets together, with a fixed seed.
RESAMPLING_UNIT = "(direction, weak model, seed) run, all its targets together"
BOOT_SEED = 0


def _gain_line(points: list[dict[str, Any]], fit_gain_on_misfit) -> dict[str, Any]:
    """Gain regressed on misfit over `points` with runs as bootstrap clusters; no line (None) from
    fewer than two distinct misfits, e.g. a one-run sweep, whose rows are still written."""
    misfit, gain = [r["misfit"] for r in points], [r["gain"] for r in points]
    ridge = _ridge_summary([r.get("w2s_ridge") for r in points])
    if len(set(misfit)) < 2:
        return {
            "w2s_ridge": ridge,
            "slope": None,
            "intercept": None,
            "r2": None,
            "n": len(points),
            "ci": {},
            "note": "fewer than two distinct misfit values: no line to fit",
        }
    runs = [(r["direction"], r["weak_model"], r["strong_model"], r["seed"]) for r in points]
    return {**fit_gain_on_misfit(misfit, gain, seed=BOOT_SEED, clusters=runs), "w2s_ridge": ridge}


def _ridge_summary(ridges: list[float | None]) -> dict[str, Any]:
    """The students' chosen ridges beside a slope: only ridge 0 (a subspace) is the theorem's
    setting; with ridge > 0 gain >= misfit needs the truth inside a weak-label-dependent ball."""
    known = [float(r) for r in ridges if r is not None]
    if not known:
        return {"min": None, "median": None, "max": None, "matches_theorem": None}
    return {"min": min(known), "median": float(np.median(known)), "max": max(known),
            "matches_theorem": all(r == 0.0 for r in known)}


def _selection(config, results, targets, select_weak_model, misfit_split: str) -> dict[str, Any]:
    """Weak-model choice per (seed, target) with the misfit read on `misfit_split`, and mean regrets."""
    per_scenario, regrets = {}, defaultdict(list)
    for seed in config.seeds:
        candidates = {w.label: results[("normal", w.label, seed)] for w in config.weak_models}
        for target in targets:
            pick = select_weak_model(
                candidates, target=target, misfit_split=misfit_split, evaluate_on=config.eval_split
            )
            per_scenario[f"seed{seed}/{target}"] = pick.as_dict()
            for rule, info in pick.baselines.items():
                regrets[rule].append(info["regret"])
    return {"per_scenario": per_scenario, "mean_regret": {k: float(np.mean(v)) for k, v in regrets.items()}}


def _summarise(config, rows, results, ceilings, fit_gain_on_misfit, select_weak_model) -> dict[str, Any]:
    normal = [r for r in rows if r["direction"] == "normal"]
    fits = {"all": _gain_line(normal, fit_gain_on_misfit)}
    targets = sorted({r["target"] for r in normal})
    if len(targets) > 1:
        fits["per_target"] = {
            t: _gain_line([r for r in normal if r["target"] == t], fit_gain_on_misfit) for t in targets
        }
    selection = {
        "misfit_on_val": _selection(config, results, targets, select_weak_model, "val"),
        f"misfit_on_{config.eval_split}": _selection(config, results, targets, select_weak_model, config.eval_split),
    }
    selection["misfit_on_val"]["note"] = "val also chose every ridge: its misfit is the student's selection criterion"
    selection[f"misfit_on_{config.eval_split}"]["note"] = (
        f"misfit on the unlabelled inputs of {config.eval_split}, a split no selection touched"
    )
    ceiling_mean = {rep: float(np.mean([v["mean"] for v in per_seed.values()])) for rep, per_seed in ceilings.items()}
    summary = {
        "config": {
            k: (v.__dict__ if hasattr(v, "__dict__") else ([w.__dict__ for w in v] if k == "weak_models" else v))
            for k, v in config.__dict__.items()
        },
        "n_runs": len({(r["weak_model"], r["seed"]) for r in normal}),
        "fit": fits,
        "bootstrap": {"resampling_unit": RESAMPLING_UNIT, "seed": BOOT_SEED, "n_boot": 1000},
        "mean_residual": float(np.mean([r["residual"] for r in normal])),
        "share_positive_gain": float(np.mean([r["gain"] > 0 for r in normal])),
        # top-level per_scenario / mean_regret: the misfit on val, as in earlier sweep.json files
        "selection": {**selection["misfit_on_val"], "by_misfit_split": selection},
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
