"""The synthetic experiment's configuration: `SyntheticConfig`, its variants, protocols and defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

VARIANTS = ("realizable", "pretrained", "reversal")
PROTOCOLS = ("fast", "notebook")
HEAD_SOLVERS = ("exact", "adamw")
# Independent random streams, all derived from `seed`, so that changing one setting (say epochs)
# leaves the truth, the pretraining data and the downstream tasks as they were.
(STREAM_TRUTH, STREAM_PRETRAIN_HEADS, STREAM_PRETRAIN_DATA, STREAM_INIT, STREAM_SHUFFLE, STREAM_HELDOUT, STREAM_TASK,
 STREAM_HEAD_INIT, STREAM_HEAD_SHUFFLE) = range(9)
QUICK = {"pretrain_samples": 500, "epochs": 20, "reversal_epochs": 200, "n_boot": 200, "head_epochs": 30,
          "sweep_samples": [10, 50], "sweep_epochs": [20, 200]}
# What `protocol: notebook` gives the pretraining settings left at their (fast) defaults.
NOTEBOOK = {"batch_size": 32, "lr": 1e-3}
HELDOUT_PER_TASK = 1000


@dataclass
class SyntheticConfig:
    """Settings of the synthetic experiment (defaults: the paper's sizes and epochs)."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS),
                                metadata={"help": "Variants to run: realizable, pretrained, reversal."})
    protocol: str = field(
        default="fast",
        metadata={
            "help": "fast (exact heads, batch 500, cosine lr; the default) or notebook (the authors' notebook: "
            "final ReLU, batch 32, constant lr 1e-3, heads with bias, AdamW downstream heads, misfit on its own x).",
            "choices": list(PROTOCOLS),
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of every random stream (truth, data, inits, tasks)."})
    n_tasks: int = field(default=100, metadata={"help": "Downstream tasks (points of the gain-vs-misfit plot)."})
    n_samples: int = field(default=2000, metadata={"help": "Samples per downstream task the heads are fitted on."})
    n_test: int = field(
        default=2000, metadata={"help": "Fresh samples per downstream task the errors are measured on."}
    )
    input_dim: int = field(default=8, metadata={"help": "Dimension of x."})
    input_std: float = field(default=500.0, metadata={"help": "Standard deviation of each coordinate of x."})
    width: int = field(default=16, metadata={"help": "Width of every MLP = representation dimension."})
    truth_depth: int = field(default=5, metadata={"help": "Linear layers of the ground truth h*."})
    deep_depth: int = field(default=8, metadata={"help": "Linear layers of the deep (strong) MLP."})
    shallow_depth: int = field(default=2, metadata={"help": "Linear layers of the shallow (weak) MLP."})
    n_pretrain_tasks: int = field(default=10, metadata={"help": "Pretraining tasks T (frozen random heads)."})
    pretrain_samples: int = field(
        default=2000, metadata={"help": "Pretraining samples per task (realizable, pretrained)."}
    )
    epochs: int = field(
        default=1000, metadata={"help": "Pretraining epochs (realizable, pretrained), as in the paper."}
    )
    batch_size: int = field(
        default=500, metadata={"help": "Pretraining minibatch size (capped at the data size; notebook: 32)."}
    )
    lr: float = field(
        default=1e-2,
        metadata={"help": "AdamW learning rate: fast, the peak of warm-up + cosine decay; notebook, constant 1e-3."},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of the steps spent warming up (fast only; notebook: constant lr)."}
    )
    reversal_samples: int = field(
        default=10, metadata={"help": "Pretraining samples per task in the reversal variant."}
    )
    reversal_epochs: int = field(default=1000, metadata={"help": "Pretraining epochs in the reversal variant."})
    sweep_samples: list[int] = field(
        default_factory=lambda: [10, 20, 50, 100],
        metadata={"help": "Reversal sweep: pretraining samples per task (with every sweep_epochs value)."},
    )
    sweep_epochs: list[int] = field(
        default_factory=lambda: [100, 300, 1000],
        metadata={"help": "Reversal sweep: pretraining epochs (with every sweep_samples value)."},
    )
    head_epochs: int = field(
        default=1000, metadata={"help": "notebook: AdamW epochs of every downstream head (fast fits them exactly)."}
    )
    head_batch_size: int = field(default=32, metadata={"help": "notebook: minibatch size of the downstream heads."})
    head_lr: float = field(default=1e-3, metadata={"help": "notebook: constant AdamW lr of the downstream heads."})
    head_solver: str | None = field(
        default=None,
        metadata={
            "help": "Downstream heads: exact (least squares) or adamw; default the protocol's own (fast: exact, "
            "notebook: adamw). notebook with exact is the notebook's nets with the heads fast fits.",
            "choices": list(HEAD_SOLVERS),
        },
    )
    n_boot: int = field(default=1000, metadata={"help": "Bootstrap replicates for the slope / R^2 intervals."})
    quick: bool = field(
        default=False, metadata={"help": "Test size: shrink pretraining (fields left at their defaults) to seconds."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.variants, str):
            self.variants = [self.variants]
        unknown = [v for v in self.variants if v not in VARIANTS]
        if not self.variants or unknown or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct names from {list(VARIANTS)}, got {self.variants}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if self.head_solver is not None and self.head_solver not in HEAD_SOLVERS:
            raise ValueError(f"head_solver must be one of {list(HEAD_SOLVERS)} or unset, got {self.head_solver!r}")
        if self.protocol == "notebook" and self.warmup_fraction != config_default("warmup_fraction"):
            raise ValueError(
                "warmup_fraction is a setting of protocol fast; the notebook's learning rate is constant "
                "(drop --warmup_fraction or use --protocol fast)"
            )
        for name in ("sweep_samples", "sweep_epochs"):
            values = [getattr(self, name)] if isinstance(getattr(self, name), int) else list(getattr(self, name))
            if not values or any(not isinstance(v, int) or v < 1 for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers, got {getattr(self, name)!r}")
            setattr(self, name, values)
        for name in (
            "n_tasks",
            "n_samples",
            "n_test",
            "input_dim",
            "width",
            "truth_depth",
            "deep_depth",
            "shallow_depth",
            "n_pretrain_tasks",
            "pretrain_samples",
            "epochs",
            "batch_size",
            "reversal_samples",
            "reversal_epochs",
            "head_epochs",
            "head_batch_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_tasks < 2 or self.n_samples < 2 or self.n_test < 2:
            raise ValueError(
                "n_tasks, n_samples and n_test must each be at least 2 (a line needs two "
                "points, an error needs two samples)"
            )
        for name in ("input_std", "lr", "head_lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not (0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must be in [0, 1), got {self.weight_decay!r}")
        if not (0 <= self.warmup_fraction < 1):
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        for name in ("n_boot", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")

    def resolved(self) -> SyntheticConfig:
        """The settings actually run: fields left at their defaults take the protocol's values
        (notebook: batch 32, lr 1e-3) and, with `quick`, test sizes."""
        changes: dict[str, Any] = {}
        changes["head_solver"] = head_solver(self)
        if self.protocol == "notebook":
            changes.update({k: v for k, v in NOTEBOOK.items() if getattr(self, k) == config_default(k)})
        if self.quick:
            changes.update({k: v for k, v in QUICK.items() if getattr(self, k) == config_default(k)})
        return dataclasses.replace(self, **changes)


def head_solver(config: SyntheticConfig) -> str:
    """How the downstream heads are fitted: `head_solver`, else the protocol's own."""
    return config.head_solver or ("exact" if config.protocol == "fast" else "adamw")


def config_default(name: str) -> Any:
    f = next(f for f in dataclasses.fields(SyntheticConfig) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# -------------------------------------------------------------------------------------- downstream
