"""Task kinds: what a target is, how heads consume it and how predictions are compared, by name.

A kind owns its prediction columns (one per target, or one probability per class), how gold labels
and a teacher's predictions become training targets, the divergence the decomposition uses (a name
in `w2s_hf.decomposition.DIVERGENCES`) and the training loss of heads on gold labels (a name in
`w2s_hf.heads.losses.LOSSES`). The pipeline reads a kind and never branches on its name; a new kind
(preferences, say) is one entry in `TASK_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

GOLD = "gold"


def _values(kind: str, labels: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
    return labels


def _distributions(kind: str, labels: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
    """Gold class indices (n, 1) become one-hot rows; a teacher's probabilities are already distributions."""
    return np.eye(len(classes))[labels[:, 0].astype(np.int64)] if kind == GOLD else labels


@dataclass(frozen=True)
class TaskKind:
    name: str
    divergence: str  # w2s_hf.decomposition.DIVERGENCES
    gold_loss: str  # w2s_hf.heads.losses.LOSSES: what a head on gold labels trains on
    # (label kind "gold" | "weak", labels, classes) -> the training targets of a head
    training_targets: Callable[[str, np.ndarray, Sequence[str] | None], np.ndarray]
    has_classes: bool
    theory: str | None = None  # what the theorem says for this kind, in results.json
    # how a row becomes a feature vector: "rows" (its input's features) or "pair_difference"
    # (phi(prompt, first) - phi(prompt, second), each side's text extracted once: w2s_hf.features.pairs)
    inputs: str = "rows"
    student_loss_key: str = "student_loss"  # the HeadArguments key naming the students' loss

    def columns(self, targets: Sequence[str], classes: Sequence[str] | None) -> list[str]:
        """Columns of a prediction file: one per target, or p_<class> per class."""
        return [f"p_{c}" for c in classes] if self.has_classes else list(targets)


TASK_KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind("regression", "squared", "squared", _values, has_classes=False),
    TaskKind("classification", "kl", "forward_kl", _distributions, has_classes=True, theory=(
        "classification (Mulgund & Pabbaraju, ICML 2025): errors are cross-entropy against the gold "
        "class, misfit = KL(w2s || weak). gain >= misfit is guaranteed only for a convex student class "
        "containing the truth; the k-head mixture (k_heads) approaches one as k grows, so at finite k "
        "a negative residual is possible and is not a bug.")),
    TaskKind("preference", "binary_kl", "binary_xent", _values, has_classes=False, theory=(
        "pairwise preferences (Mulgund & Pabbaraju, ICML 2025, binary case): heads are Bradley-Terry heads "
        "p = sigmoid(w . (phi(prompt, first) - phi(prompt, second))); errors are binary cross-entropy against the "
        "gold A/B label, misfit = binary KL(w2s || weak). A logistic head is not a convex class of predictions, "
        "so gain >= misfit is not guaranteed and a negative residual is possible."),
        inputs="pair_difference", student_loss_key="preference_loss"),
)}
TASK_TYPES = tuple(TASK_KINDS)
