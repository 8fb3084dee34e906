"""A sweep's config: a run config (every key of `W2SConfig`, the strong representation among them) plus its axes.

The axes are what a sweep varies: the weak models (each a `RepresentationConfig`), the split seeds,
the weak teachers' label budgets and the w2s_train sizes (scaling over N); with `cv_folds` (a run key)
every point is pooled over its folds.
The file is read by the run's own parser (`config.parser.flatten` and `check_types`), so a key means
the same in a sweep as in `train_w2s.py`, and the command line overrides the file the same way:

    w2s sweep --config scripts/configs/sweep/esol_random_smiles.yaml --seeds 0 1 --ridge theorem
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .representation import RepresentationConfig
from .run import ARGUMENT_CLASSES, W2SConfig


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class SweepAxes:
    """What a sweep varies around its run config."""

    weak_models: list[str] = field(default_factory=list, metadata=_help(
        "Weak representations, each 'MODEL[,layer=..,name=..,pca=..]' (YAML: mappings, which may have parts)."))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=_help("Split seeds (split_seed)."))
    weak_budgets: list[str] | None = field(default=None, metadata=_help(
        "Graded weak teachers: label budgets of the weak heads (numbers, or 'all' for every weak_train row), an "
        "axis beside the weak models; each is drawn from weak_train with the split seed."))
    w2s_sizes: list[str] | None = field(default=None, metadata=_help(
        "Scaling over N: w2s_train sizes the student and the ceiling train on (numbers, or 'all'), crossed with "
        "the weak models, budgets and seeds; the sizes of one seed are nested subsets (run key w2s_size)."))
    swap_roles: bool = field(default=False, metadata=_help("Also train each weak model on the strong model's labels."))
    eval_split: str = field(default="test", metadata=_help("Split whose decomposition the panel plots."))
    name: str | None = field(default=None, metadata=_help("Title of the sweep's plot."))


SWEEP_CLASSES = (*ARGUMENT_CLASSES, SweepAxes)


@dataclass
class SweepConfig:
    """A run config (`base`; its strong representation is the sweep's) and the axes around it."""

    base: W2SConfig
    axes: SweepAxes
    weak_models: list[RepresentationConfig]
    budgets: list[int | None]
    sizes: list[int | None] = field(default_factory=lambda: [None])  # w2s_sizes: None = every w2s_train row

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "sweep config") -> SweepConfig:
        """Flat or grouped keys (`strong: {model: ..}`, `head: {ridge: 0}`), checked as a run's YAML is."""
        from .parser import check_types, flatten

        known = {f.name for c in SWEEP_CLASSES for f in dataclasses.fields(c)}
        flat = flatten(dict(values), known, source)
        for key in ("task", "weak_models", "output_dir"):
            if flat.get(key) in (None, "", []):
                raise ConfigError(f"{source} needs {key!r}.")
        check_types(flat, SWEEP_CLASSES, source)
        parts = [c(**{f.name: flat[f.name] for f in dataclasses.fields(c) if f.name in flat}) for c in SWEEP_CLASSES]
        *run_parts, axes = parts
        base = W2SConfig(*run_parts)
        base.run.report_to, base.run.plot = "none", False  # a sweep's points log nothing and draw no bar chart
        base.validate()
        weak = [RepresentationConfig.from_value(w, f"weak_models[{i}]") for i, w in enumerate(axes.weak_models)]
        labels = [w.label for w in weak]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"weak_models in {source} have repeated names {labels}; give each a distinct 'name'.")
        config = cls(base, axes, weak, _sizes("weak_budgets", axes.weak_budgets, source),
                     _sizes("w2s_sizes", axes.w2s_sizes, source))
        for seed in axes.seeds:
            config.run_config(weak[0], config.strong, seed, "check")  # validates every key now
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> SweepConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Sweep config {str(path)!r} does not exist.")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"Sweep config {str(path)!r} is not valid YAML: {err}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, source=str(path))

    # ------------------------------------------------------------------ using
    @property
    def strong(self) -> RepresentationConfig:
        return self.base.model.representation("strong")

    def __getattr__(self, name: str) -> Any:
        # the run's and the axes' keys read as attributes (config.task, config.seeds, config.cache_dir)
        if name in ("base", "axes"):
            raise AttributeError(name)
        for part in (self.axes, *self.base.parts()):
            if name in {f.name for f in dataclasses.fields(part)}:
                return getattr(part, name)
        raise AttributeError(f"SweepConfig has no key {name!r}")

    @property
    def folds(self) -> list[int | None]:
        """Each point's folds: 0..K-1 under cross-fitting, else one run."""
        return list(range(self.base.task.cv_folds)) if self.base.task.cv_folds else [None]

    def run_config(self, weak: RepresentationConfig, strong: RepresentationConfig, seed: int, folder: str,
                   budget: int | None = None, fold: int | None = None, size: int | None = None) -> W2SConfig:
        """The run of one point: the base config with these representations, seed, budget, w2s_train size and
        fold."""
        config = W2SConfig(*(dataclasses.replace(p) for p in self.base.parts()))
        config.model.set_representation("weak", weak)
        config.model.set_representation("strong", strong)
        config.task.split_seed, config.task.weak_budget, config.task.w2s_size = seed, budget, size
        config.task.cv_fold = 0 if fold is None else fold
        config.run.output_dir = str(Path(self.base.run.output_dir) / "runs" / folder)
        return config.validate()

    def as_dict(self) -> dict[str, Any]:
        """Every key, as sweep.json records it."""
        return {**self.base.to_dict(), **dataclasses.asdict(self.axes),
                "strong": self.strong.as_dict(), "weak_models": [w.as_dict() for w in self.weak_models]}


def _sizes(key: str, values: list[Any] | None, source: str) -> list[int | None]:
    """The numbers of rows of an axis (weak_budgets, w2s_sizes); 'all' is None. Checked against each split's
    rows before any run starts (`experiments.sweep.check_sizes`)."""
    if not values:
        return [None]
    out: list[int | None] = []
    for value in values:
        if str(value).strip().lower() == "all":
            out.append(None)
        elif isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 2:
            raise ConfigError(f"{key} in {source}: {value!r} must be a number of rows >= 2 or 'all'.")
        else:
            out.append(int(value))
    if len(set(out)) != len(out):
        raise ConfigError(f"{key} in {source} repeats a value: {values}.")
    return out
