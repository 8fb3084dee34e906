"""The heads' view of the training losses: `LOSSES` by name, `loss_names`, `get_loss`.

Each loss is a per-example `fn(pred (n, k), target (n, k)) -> (n,)` on torch tensors, with the task type it
serves and the divergence it minimises. The losses are listed inside their divergence's entry of
`w2s_hf.divergences.registry.DIVERGENCES` (one entry per divergence, one file), and read from there.
"""

from __future__ import annotations

from ..divergences.registry import LOSSES, TrainingLoss, get_loss, loss_names

__all__ = ["LOSSES", "TrainingLoss", "get_loss", "loss_names"]
