"""The divergences layer: one registry, `DIVERGENCES`, of what the decomposition evaluates and heads train on.

    registry.py  `DIVERGENCES`: each entry a numpy divergence with its Bregman geometry (`BregmanMap`), the
                 torch `TrainingLoss`es that minimise it and the sweep columns of its extras; `LOSSES`,
                 `loss_names`, `get_loss`, `sweep_columns` are derived from it. A new divergence is one entry there.
    kl.py        the numpy KL, its input checks and the classification extras (accuracies, ...)

It sits below `heads` (which train on the losses) and `decomposition` (which evaluates the divergences).
"""

from .registry import (
    DIVERGENCES,
    LOSSES,
    BregmanMap,
    Divergence,
    TrainingLoss,
    get_loss,
    loss_help,
    loss_names,
    sweep_columns,
)

__all__ = ["DIVERGENCES", "LOSSES", "BregmanMap", "Divergence", "TrainingLoss", "get_loss", "loss_help",
           "loss_names", "sweep_columns"]
