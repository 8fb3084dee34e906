"""The weak-to-strong protocol as data: who trains on what, and who selects on what.

One row per head; the pipeline reads a row and nothing else, so a new head is a new row:

    head     features  trains on             selects on           stage (its predictions)
    weak     weak      weak_train gold       val gold             train_weak (label)
    w2s      strong    w2s_train weak labels val weak labels      train_w2s
    ceiling  strong    w2s_train gold        val gold             train_ceiling
"weak" labels are the weak head's predictions: a head on them never sees those rows' gold labels.
For classification (`task_type: classification`) the weak head is one softmax head, and the heads
marked `mixture` (student and ceiling) are the k-head mixture class of Mulgund & Pabbaraju (k =
`k_heads`); heads on gold labels train on cross-entropy, the student on `student_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

GOLD, WEAK = "gold", "weak"


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

    @property
    def selected_on(self) -> str:
        return f"{self.select_split} {self.select_labels} labels"

    @property
    def is_student(self) -> bool:
        """Trained on weak labels: the head whose gain the decomposition explains."""
        return self.train_labels == WEAK


PROTOCOL: tuple[HeadSpec, ...] = (
    HeadSpec("weak", "weak", "weak_train", GOLD, "val", GOLD, stage="train_weak", predict_stage="label"),
    HeadSpec("w2s", "strong", "w2s_train", WEAK, "val", WEAK, stage="train_w2s", predict_stage="train_w2s",
             mixture=True),
    HeadSpec("ceiling", "strong", "w2s_train", GOLD, "val", GOLD, stage="train_ceiling",
             predict_stage="train_ceiling", mixture=True),
)
HEADS = {spec.name: spec for spec in PROTOCOL}
# Splits some selection reads (every ridge, the strong layer of a sweep, `select_weak_model`'s weak
# error): their weak_error, ceiling_error and misfit are minima over a grid, not clean estimates.
SELECTION_SPLITS = frozenset(spec.select_split for spec in PROTOCOL)
# The head whose labels the students learn from.
TEACHER = "weak"
