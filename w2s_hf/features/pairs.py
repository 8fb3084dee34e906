"""Features of a pairwise preference: phi(prompt, first) - phi(prompt, second), each distinct side extracted once.

A side is the input (prompt, response), or the response alone when the prompt is empty
(`w2s_hf.features.prompts` decides how a model sees a pair: the tokenizer's pair template, a join for
decoders, or the chat template's user turn and assistant reply). The distinct sides of all pairs are
encoded in ONE call, sorted, so a response that appears in many pairs (an essay compared with ten
others) costs one forward pass, and the feature cache holds them by text under the encoder's usual
fingerprint: another task over the same texts, or a rerun, is a cache hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .prompts import input_key


def side_inputs(prompts: Sequence[str], responses: Sequence[str]) -> list:
    """(prompt, response) per row, or the response alone where the prompt is empty."""
    return [(p, r) if p.strip() else r for p, r in zip(prompts, responses)]


def unique_sides(prompts: Sequence[str], firsts: Sequence[str], seconds: Sequence[str]
                 ) -> tuple[list, np.ndarray, np.ndarray]:
    """(distinct inputs in a fixed order, position of each row's first side, of its second side)."""
    a, b = side_inputs(prompts, firsts), side_inputs(prompts, seconds)
    keys = {input_key(x): x for x in a + b}
    order = sorted(keys)
    position = {k: i for i, k in enumerate(order)}
    return ([keys[k] for k in order], np.array([position[input_key(x)] for x in a], dtype=np.int64),
            np.array([position[input_key(x)] for x in b], dtype=np.int64))


def pair_difference(encoder: Any, prompts: Sequence[str], firsts: Sequence[str], seconds: Sequence[str],
                    fit_pairs: Sequence[int] | np.ndarray | None = None, **encode_kwargs: Any) -> np.ndarray:
    """(n, d) float32 phi(first side) - phi(second side); `encode_kwargs` go to `encoder.encode`.

    `fit_pairs` (rows of the pairs some head trains on) is for a featurizer that scales its outputs on
    training rows (`rdkit:descriptors`): it is fitted on the distinct sides of those pairs only.
    """
    inputs, i, j = unique_sides(prompts, firsts, seconds)
    if fit_pairs is not None:
        fit_pairs = np.asarray(fit_pairs, dtype=np.int64)
        encode_kwargs["fit_rows"] = np.unique(np.concatenate([i[fit_pairs], j[fit_pairs]]))
    features = np.asarray(encoder.encode(inputs, **encode_kwargs))
    return (features[i] - features[j]).astype(np.float32)
