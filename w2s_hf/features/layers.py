"""Read the hidden states of chosen layers from a model without running the layers above them.

HuggingFace's `output_hidden_states[L]` is the input of transformer block L (L = 0: the embedding
output) and, for the last index, the model's `last_hidden_state` (after any final layer norm, as in
GPT-2's `ln_f`). So for L below the last we hook the *input* of block L and stop the forward there
by raising from the hook: blocks L, L+1, ... never run, and no model-specific truncation code is
needed. The blocks are the largest `nn.ModuleList` of identical modules with one entry per layer.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)


class _StopForward(Exception):
    """Raised by a hook once every requested hidden state has been read."""


def find_blocks(model: nn.Module, n_layers: int) -> nn.ModuleList | None:
    """The ModuleList holding the model's `n_layers` transformer blocks, or None if ambiguous/absent."""
    candidates = [
        m
        for m in model.modules()
        if isinstance(m, nn.ModuleList) and len(m) == n_layers and len({type(c) for c in m}) == 1
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


class LayerReader:
    """Call `reader(inputs, layers)` -> {layer: hidden states (batch, tokens, hidden)}."""

    def __init__(self, model: nn.Module, n_layers: int, blocks: nn.ModuleList | None, forward_kwargs: Mapping):
        self.model = model
        self.n_layers = n_layers  # hidden-state indices run 0..n_layers
        self.blocks = blocks
        self.fast = blocks is not None
        self.forward_kwargs = dict(forward_kwargs)
        self.hidden_size: int | None = None

    @classmethod
    def probe(cls, model: nn.Module, inputs: Mapping[str, torch.Tensor], forward_kwargs: Mapping) -> LayerReader:
        """Count the model's hidden states and validate the early-stopping path on `inputs`."""
        with torch.inference_mode():
            out = model(**inputs, **forward_kwargs, output_hidden_states=True)
            states = out.hidden_states
            if states is None:
                raise ValueError(f"{type(model).__name__} returns no hidden_states; it cannot be used as an encoder.")
            n_layers = len(states) - 1
            reader = cls(model, n_layers, find_blocks(model, n_layers), forward_kwargs)
            reader.hidden_size = int(states[0].shape[-1])
            if reader.fast:
                try:
                    # every layer in one pass, then the early stop at a middle layer
                    every = reader._read_fast(inputs, list(range(n_layers + 1)))
                    middle = n_layers // 2
                    reader.fast = all(_same(every[layer], states[layer]) for layer in range(n_layers + 1)) and _same(
                        reader._read_fast(inputs, [middle])[middle], states[middle]
                    )
                except Exception as err:  # a block called in an unexpected way: use the safe path
                    logger.debug("early layer reading failed on the probe: %r", err)
                    reader.fast = False
            if not reader.fast:
                logger.warning(
                    "%s: hidden states cannot be read early from its blocks; every layer will run "
                    "(slower, same numbers).",
                    type(model).__name__,
                )
        return reader

    def __call__(self, inputs: Mapping[str, torch.Tensor], layers: Sequence[int]) -> dict[int, torch.Tensor]:
        bad = [layer for layer in layers if not 0 <= layer <= self.n_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range: this model has hidden states 0..{self.n_layers}.")
        if self.fast:
            return self._read_fast(inputs, layers)
        out = self.model(**inputs, **self.forward_kwargs, output_hidden_states=True)
        return {layer: out.hidden_states[layer] for layer in layers}

    def _read_fast(self, inputs: Mapping[str, torch.Tensor], layers: Sequence[int]) -> dict[int, torch.Tensor]:
        inner = sorted({layer for layer in layers if layer < self.n_layers})
        need_last = self.n_layers in layers
        stop_at = None if need_last else inner[-1]
        captured: dict[int, torch.Tensor] = {}

        def make_hook(layer: int):
            def hook(module, args, kwargs):
                captured[layer] = args[0] if args else kwargs["hidden_states"]
                if layer == stop_at:
                    raise _StopForward

            return hook

        handles = [self.blocks[layer].register_forward_pre_hook(make_hook(layer), with_kwargs=True) for layer in inner]
        try:
            out = self.model(**inputs, **self.forward_kwargs)
        except _StopForward:
            out = None
        finally:
            for handle in handles:
                handle.remove()
        if need_last:
            captured[self.n_layers] = out.last_hidden_state
        return captured


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5, equal_nan=True)
