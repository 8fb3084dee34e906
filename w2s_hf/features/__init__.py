"""Frozen representations: map inputs to fixed vectors, fast, sharded across processes, cached on disk.

`build_representation(name, **kwargs)` is the factory configs go through: it picks the featurizer
family from the name's prefix (`rdkit:` -> `RDKitFeaturizer`, anything else -> `FrozenEncoder`,
which also understands `packaged:` names). The public names are in `_EXPORTS` below.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

_EXPORTS = {
    "FrozenEncoder": "w2s_hf.features.encoder",
    "pool": "w2s_hf.features.pooling",
    "POOLING_METHODS": "w2s_hf.features.pooling",
    "FeatureCache": "w2s_hf.features.cache",
    "FEATURE_FORMAT_VERSION": "w2s_hf.features.cache",
    "make_fingerprint": "w2s_hf.features.cache",
    "fingerprint_texts": "w2s_hf.features.cache",
    "hash_model_files": "w2s_hf.features.cache",
    "cached_extract": "w2s_hf.features.sharding",
    "resolve_model": "w2s_hf.features.packaged",
    "resolve_model_source": "w2s_hf.features.packaged",
    "ModelNotAvailableError": "w2s_hf.features.hub",
}

# Featurizer families chosen by a name prefix ("prefix:rest"): prefix -> (module, class). The class
# is called as cls(rest, **kwargs). Names without a listed prefix go to FrozenEncoder, which itself
# understands "packaged:" names.
_PREFIXED_FEATURIZERS: dict[str, tuple[str, str]] = {
    "rdkit": ("w2s_hf.features.chem", "RDKitFeaturizer"),  # rdkit:descriptors, rdkit:morgan
}

__all__ = ["build_representation", "Representation", *_EXPORTS]


class Representation(Protocol):
    """What the pipeline needs from a featurizer."""

    def encode(self, texts: list[str], cache_dir: Any = None, **kwargs: Any) -> np.ndarray: ...

    def encode_layers(self, texts: list[str], layers: list[int], cache_dir: Any = None, **kwargs: Any) -> dict: ...

    def fingerprint(self, texts: list[str]) -> str: ...

    def content_key(self) -> str: ...  # the model's content (Hub commit, file hash): part of a run's identity


def build_representation(name: str, **kwargs: Any) -> Representation:
    """Build the featurizer that `name` names, e.g. "packaged:all-MiniLM-L6-v2" or "bert-base-uncased"."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix.lower() in _PREFIXED_FEATURIZERS:
        module, cls_name = _PREFIXED_FEATURIZERS[prefix.lower()]
        return getattr(importlib.import_module(module), cls_name)(rest, **kwargs)
    from .encoder import FrozenEncoder

    return FrozenEncoder(name, **kwargs)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'w2s_hf.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
