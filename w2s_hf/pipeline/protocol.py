"""The weak-to-strong protocol as data: who trains on what, and who selects on what.

One row per head; the pipeline reads a row and nothing else, so a new head is a new row:

    head       kind    features  trains on             selects on        stage (its predictions)  when
    weak       linear  weak      weak_train gold       val gold          train_weak (label)       always
    weak_lora  lora    weak      weak_train gold       val gold          train_weak_lora          weak_student=lora
    w2s        linear  strong    w2s_train weak labels val weak labels   train_w2s                always
    w2s_lora   lora    strong    w2s_train weak labels val weak labels   train_w2s_lora           student=lora
    ceiling    linear  strong    w2s_train gold        val gold          train_ceiling            always
"weak" labels are the teacher's predictions (`teacher_of`: weak, or weak_lora when weak_student=lora):
a head on them never sees those rows' gold labels. A lora head starts at the linear head `init_from`
(w2s_hf/heads/lora); only linear students are in the theorem's convex class (`covered_by_theorem`).
For classification (`task_type: classification`) the weak head is one softmax head, and the linear
heads marked `mixture` (student and ceiling) are the k-head mixture class of Mulgund & Pabbaraju (k =
`k_heads`); heads on gold labels train on cross-entropy, the student on `student_loss`, and a lora
row's head is the class of its `init_from` row, trained on the same loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data.kinds import GOLD

WEAK = "weak"
# kinds of head: "linear" (a head on frozen features, the theorem's convex class) or "lora" (heads/lora)
STUDENT_KINDS = ("linear", "lora")


@dataclass(frozen=True)
class HeadSpec:
    name: str  # heads/<name>.safetensors, predictions/<name>.csv
    features: str  # representation it reads: "weak" or "strong"
    train_split: str
    train_labels: str  # GOLD or WEAK
    select_split: str  # where its ridge / early stopping is chosen
    select_labels: str  # GOLD or WEAK
    stage: str  # the stage that fits it
    predict_stage: str  # the stage that writes its predictions
    mixture: bool = False  # classification: the k-head mixture class (else one softmax head)
    kind: str = "linear"  # "linear": a ridge / adamw head on frozen features; "lora": w2s_hf.heads.lora
    init_from: str | None = None  # a lora head starts at this (linear) head
    when: tuple[str, str] | None = None  # (config key, value) that turns the row on; None: always on
    teaches_when: tuple[str, str] | None = None  # (config key, value) under which its predictions are the weak labels

    def active(self, config: dict[str, Any]) -> bool:
        """Is the row part of a run with this flat config (`W2SConfig.to_dict()`)?"""
        return self.when is None or config.get(self.when[0]) == self.when[1]

    @property
    def covered_by_theorem(self) -> bool:
        """A linear head on a frozen representation: the convex class of gain >= misfit."""
        return self.kind == "linear"

    @property
    def selected_on(self) -> str:
        return f"{self.select_split} {self.select_labels} labels"

    @property
    def is_student(self) -> bool:
        """Trained on weak labels: the head whose gain the decomposition explains."""
        return self.train_labels == WEAK


PROTOCOL: tuple[HeadSpec, ...] = (
    HeadSpec("weak", "weak", "weak_train", GOLD, "val", GOLD, stage="train_weak", predict_stage="label",
             teaches_when=("weak_student", "linear")),
    HeadSpec("weak_lora", "weak", "weak_train", GOLD, "val", GOLD, stage="train_weak_lora",
             predict_stage="train_weak_lora", kind="lora", init_from="weak", when=("weak_student", "lora"),
             teaches_when=("weak_student", "lora")),
    HeadSpec("w2s", "strong", "w2s_train", WEAK, "val", WEAK, stage="train_w2s", predict_stage="train_w2s",
             mixture=True),
    HeadSpec("w2s_lora", "strong", "w2s_train", WEAK, "val", WEAK, stage="train_w2s_lora",
             predict_stage="train_w2s_lora", kind="lora", init_from="w2s", when=("student", "lora")),
    HeadSpec("ceiling", "strong", "w2s_train", GOLD, "val", GOLD, stage="train_ceiling",
             predict_stage="train_ceiling", mixture=True),
)
HEADS = {spec.name: spec for spec in PROTOCOL}
# Splits some selection reads (every ridge, the strong layer of a sweep, `select_weak_model`'s weak
# error): their weak_error, ceiling_error and misfit are minima over a grid, not clean estimates.
SELECTION_SPLITS = frozenset(spec.select_split for spec in PROTOCOL)
# Splits some head was fitted on (the student and the ceiling: w2s_train): errors there are in-sample.
FIT_SPLITS = frozenset(spec.train_split for spec in PROTOCOL)
# Every stage in run order: extraction, each row's fitting and predicting stages, evaluation.
_HEAD_STAGES = dict.fromkeys(stage for spec in PROTOCOL for stage in (spec.stage, spec.predict_stage))
STAGES: tuple[str, ...] = ("extract", *_HEAD_STAGES, "evaluate")


def active_heads(config: dict[str, Any]) -> tuple[HeadSpec, ...]:
    """The rows of a run with this flat config, in protocol order."""
    return tuple(spec for spec in PROTOCOL if spec.active(config))


def teacher_of(config: dict[str, Any]) -> HeadSpec:
    """The head whose predictions are the weak labels of a run with this flat config."""
    found = [s for s in active_heads(config) if s.teaches_when and config.get(s.teaches_when[0]) == s.teaches_when[1]]
    if len(found) != 1:
        raise ValueError(f"the protocol names {len(found)} teachers for this config: {[s.name for s in found]}")
    return found[0]
