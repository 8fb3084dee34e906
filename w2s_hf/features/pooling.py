"""Pool per-token hidden states (batch, tokens, hidden) into one vector per sequence.

Every method reads *which* tokens are real from the attention mask, never from the token ids (a
pad id of 0 is a real token in many vocabularies), so the same code is correct for right padding
(BERT-style batches) and left padding (decoder models batched for generation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# the owner of the pooling names: the config's choices are read from here (no torch import needed)
POOLING_METHODS = ("mean", "cls", "last")


def check_pooling(pooling: str) -> str:
    """Return `pooling` if it names a method, else raise a ValueError listing the choices."""
    if pooling not in POOLING_METHODS:
        raise ValueError(f"pooling={pooling!r} is not supported; choose one of {list(POOLING_METHODS)}.")
    return pooling


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the first real token of each row (0 under right padding)."""
    import torch

    # argmax returns the first maximal position, i.e. the first 1 of the mask
    return attention_mask.to(torch.int32).argmax(dim=1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row (length - 1 under right padding, T - 1 under left)."""
    import torch

    width = attention_mask.shape[1]
    return width - 1 - attention_mask.to(torch.int32).flip(dims=[1]).argmax(dim=1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool `hidden` (B, T, H) over the real tokens of `attention_mask` (B, T) -> float32 (B, H).

    mean: average over real tokens; cls: the first real token; last: the last real token.
    """
    import torch

    check_pooling(pooling)
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden must be (batch, tokens, hidden) and attention_mask (batch, tokens); got "
            f"{tuple(hidden.shape)} and {tuple(attention_mask.shape)}."
        )
    mask = attention_mask.to(device=hidden.device, dtype=torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every row of attention_mask needs at least one real token to pool.")
    # Sums of bf16/fp16 activations lose digits; pool in float32 whatever the model dtype.
    hidden = hidden.float()
    if pooling == "mean":
        # masked_fill (not multiply): padding positions may hold inf/NaN for some attention kernels
        summed = hidden.masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).to(hidden.dtype)
    index = first_token_index(mask) if pooling == "cls" else last_token_index(mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index]
