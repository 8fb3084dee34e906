"""Representations built from others: parts concatenated, each scaled, then projected on k principal components.

`ComposedRepresentation([(rep, scale), ...], pca=k)` reads each part (a `FrozenEncoder`, an
`RDKitFeaturizer`, ...) from its own cache, z-scores the parts whose scale is "standard",
concatenates them and, with `pca`, keeps the first k principal components. Every statistic (the
z-score moments, the PCA mean and axes) is fitted on the rows `fit_rows` the pipeline passes (its
training rows, `W2SPipeline.train_rows()`), never on val or test: the same contract as the descriptor
scaler (`fits_on_rows`). The fitted output is cached under a fingerprint of the parts, the scalings,
k and the fit rows, so a sweep pays for a projection once per split.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .cache import FeatureCache, make_fingerprint

SCALINGS = ("none", "standard")


def zscore(x: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Columns centred and scaled with the moments of `fit_rows` (constant columns become 0)."""
    x = np.asarray(x, dtype=np.float64)
    mean, std = x[fit_rows].mean(axis=0), x[fit_rows].std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1.0)
    z[:, std == 0] = 0.0
    return z


def pca_project(x: np.ndarray, fit_rows: np.ndarray, k: int) -> np.ndarray:
    """Every row of `x` on the first `k` principal axes of the rows `fit_rows` (centred on their mean).

    Axes come from the SVD of the centred fit rows, each signed so that its largest-magnitude loading
    is positive: the projection is a deterministic function of the fit rows alone.
    """
    x = np.asarray(x, dtype=np.float64)
    fit = x[fit_rows]
    if k > min(fit.shape):
        raise ValueError(f"pca={k} needs at most min(training rows, dimensions) = {min(fit.shape)} components.")
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:k]
    signs = np.sign(axes[np.arange(k), np.argmax(np.abs(axes), axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    return (x - mean) @ axes.T


def rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


class ComposedRepresentation:
    """Parts concatenated (each with its own scaling), optionally projected on `pca` components.

    A single part with scale "none" and no PCA is never built this way (the config uses the part
    itself), so a plain representation keeps its own cache entry and numbers.
    """

    fits_on_rows = True

    def __init__(self, parts: Sequence[tuple[Any, str]], pca: int | None = None, label: str = "composed"):
        if not parts:
            raise ValueError("a composed representation needs at least one part")
        for _, scale in parts:
            if scale not in SCALINGS:
                raise ValueError(f"scale={scale!r} is not allowed; choose one of: {', '.join(SCALINGS)}.")
        if pca is not None and pca < 1:
            raise ValueError(f"pca={pca} must be >= 1.")
        self.parts, self.pca, self.label = list(parts), pca, label

    def __repr__(self) -> str:
        return f"ComposedRepresentation({self.label!r}, pca={self.pca})"

    def content_key(self) -> str:
        """The parts' model contents (Hub commits, file hashes), joined: part of a run's identity."""
        return "+".join(rep.content_key() for rep, _ in self.parts)

    def fingerprint(self, texts: Sequence[str], fit_rows: np.ndarray | None = None) -> str:
        parts = [[rep.fingerprint(texts), scale] for rep, scale in self.parts]
        rows = None if fit_rows is None else rows_digest(np.asarray(fit_rows))
        return make_fingerprint({"composed": parts, "pca": self.pca, "fit_rows": rows})

    def encode(
        self,
        texts: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
        *,
        accelerator: Any = None,
        overwrite: bool = False,
        no_cache: bool = False,
        show_progress: bool = True,
        fit_rows: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, d) float32 features; statistics fitted on `fit_rows` (indices into `texts`; None: all rows)."""
        texts = list(texts)
        fit = np.arange(len(texts)) if fit_rows is None else np.asarray(fit_rows, dtype=np.int64)
        if fit.size == 0:
            raise ValueError("fit_rows is empty: scaling and PCA need at least one training row.")
        cache = None
        if cache_dir is not None and not no_cache:
            cache = FeatureCache(cache_dir, self.fingerprint(texts, fit),
                                 meta={"featurizer": self.label, "n": len(texts), "pca": self.pca})
            hit = None if overwrite else cache.load()
            if hit is not None:
                return hit
        common = {"accelerator": accelerator, "overwrite": overwrite, "no_cache": no_cache,
                  "show_progress": show_progress}
        blocks = []
        for rep, scale in self.parts:
            extra = {"fit_rows": fit} if getattr(rep, "fits_on_rows", False) else {}
            x = np.asarray(rep.encode(texts, cache_dir, **common, **extra), dtype=np.float64)
            blocks.append(zscore(x, fit) if scale == "standard" else x)
        x = np.concatenate(blocks, axis=1)
        out = (pca_project(x, fit, self.pca) if self.pca else x).astype(np.float32)
        if cache is not None and (accelerator is None or accelerator.is_main_process):
            # every process computes the same float64 projection; only one writes it
            return cache.save(out)
        return out

    def encode_layers(self, texts: Sequence[str], layers: Sequence[int], cache_dir=None, **kwargs: Any) -> dict:
        """A composed representation has one 'layer' (each part names its own)."""
        features = self.encode(texts, cache_dir, **kwargs)
        return {int(layer): features for layer in layers}
