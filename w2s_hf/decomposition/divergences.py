"""The decomposition's view of the divergences: `DIVERGENCES` by name (squared loss, KL on probabilities or
logits, binary KL), each with its `BregmanMap`.

The one table lives in `w2s_hf.divergences.registry`, below this layer and `heads`, so that one entry there
holds both the numpy divergence evaluated here and the torch losses heads train on.
"""

from __future__ import annotations

from ..divergences.registry import DIVERGENCES, SQUARED, BregmanMap, Divergence

__all__ = ["DIVERGENCES", "SQUARED", "BregmanMap", "Divergence"]
