"""RDKit descriptors of the corpus, the regression targets of the MTR objective: parallel, cached, scaled.

All of `rdkit.Chem.Descriptors._descList` (217 in RDKit 2024/2025) cost ~4-5 ms a molecule on one core
(scripts/benchmarks/bench_descriptors.py), so the corpus is split over a process pool and the raw
float32 matrix is cached under the corpus fingerprint (plus the RDKit version and the descriptor
names), in resumable blocks while it is computed. Scaling uses statistics of the corpus alone, never of a task:
non-finite values become the column median, each column is clipped to its [0.5%, 99.5%] quantiles
(Ipc and a few counts have tails that would dominate the loss), then z-scored; columns that are
constant after that carry nothing and are dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .corpus import corpus_cache_path, fingerprint_smiles

logger = logging.getLogger(__name__)
BLOCK = 8192  # molecules per cached block of a large corpus: ~40 s of one core


def descriptor_names() -> list[str]:
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def _compute_chunk(smiles: list[str]) -> np.ndarray:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors

    from ..features.chem import safe_value

    RDLogger.DisableLog("rdApp.*")
    out = np.full((len(smiles), len(Descriptors._descList)), np.nan, dtype=np.float32)
    for row, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise ValueError(f"invalid SMILES {text!r} at corpus row {row}")
        with np.errstate(all="ignore"):
            values = np.array([safe_value(fn, mol) for _, fn in Descriptors._descList], dtype=np.float64)
        out[row] = np.clip(values, -3e38, 3e38)  # float32 overflow (Ipc) -> huge but finite, clipped later
    return out


def compute_descriptors(smiles: list[str], num_workers: int = 1, chunk: int = 256, pool=None) -> np.ndarray:
    """(n, n_descriptors) float32 raw descriptors, NaN where RDKit fails; `num_workers` processes."""
    chunks = [smiles[i : i + chunk] for i in range(0, len(smiles), chunk)]
    if pool is not None:
        parts = pool.map(_compute_chunk, chunks, chunksize=1)
    elif num_workers <= 1:
        parts = [_compute_chunk(c) for c in chunks]
    else:
        with _pool(num_workers) as own:
            parts = own.map(_compute_chunk, chunks, chunksize=1)
    return np.concatenate(parts) if parts else np.zeros((0, len(descriptor_names())), np.float32)


def _pool(num_workers: int):
    # spawn, not fork: a forked torch/OpenMP parent can deadlock its children
    return get_context("spawn").Pool(num_workers)


def _load(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
        return np.asarray(array) if array.shape == shape else None
    except (OSError, ValueError):
        return None  # a corrupt file is recomputed and replaced


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def cached_descriptors(smiles: list[str], cache_dir: str | os.PathLike, num_workers: int = 1,
                       block: int = BLOCK) -> np.ndarray:
    """Raw descriptors of `smiles`, from the cache when the same molecules, RDKit and names were seen.

    A large corpus is computed in blocks of `block` molecules, each cached as it finishes (keyed by
    its own molecules), with a progress line per block: a killed computation resumes from the last
    finished block. The blocks are joined into one file for the whole corpus and then deleted.
    """
    import rdkit

    names = descriptor_names()
    key = hashlib.sha256(json.dumps([rdkit.__version__, names]).encode()).hexdigest()[:12]
    path = corpus_cache_path(cache_dir, fingerprint_smiles(smiles), f"descriptors-{key}.npy")
    array = _load(path, (len(smiles), len(names)))
    if array is not None:
        return array
    blocks_dir = corpus_cache_path(cache_dir, "blocks", f"descriptors-{key}")
    starts = range(0, len(smiles), block)
    files = [blocks_dir / f"{fingerprint_smiles(smiles[i : i + block])}.npy" for i in starts]
    parts: list[np.ndarray | None] = [_load(f, (len(smiles[i : i + block]), len(names)))
                                      for i, f in zip(starts, files)]
    todo = [j for j, part in enumerate(parts) if part is None]
    pool = _pool(num_workers) if num_workers > 1 and todo else None
    started, done = time.time(), 0
    try:
        for j in todo:
            rows = smiles[starts[j] : starts[j] + block]
            parts[j] = compute_descriptors(rows, num_workers=num_workers, pool=pool)
            done += len(rows)
            if len(todo) > 1:  # progress only where a computation takes long enough to need it
                _save(files[j], parts[j])
                rate = done / max(time.time() - started, 1e-9)
                left = sum(len(smiles[starts[k] : starts[k] + block]) for k in todo) - done
                logger.warning("descriptors: %d/%d molecules to compute, %.0f molecules/s, %.1f min left",
                               done, done + left, rate, left / rate / 60)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    array = np.concatenate(parts) if parts else np.zeros((0, len(names)), np.float32)
    _save(path, array)
    for f in files:
        f.unlink(missing_ok=True)
    if blocks_dir.is_dir() and not any(blocks_dir.iterdir()):
        blocks_dir.rmdir()
    return array


@dataclass
class DescriptorScaler:
    """Per-column median fill, quantile clip and z-score, fitted on the corpus; kept in the model folder."""

    names: list[str]
    median: list[float]
    low: list[float]
    high: list[float]
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, raw: np.ndarray, names: list[str], quantile: float = 0.005) -> "DescriptorScaler":
        x = np.asarray(raw, dtype=np.float64)
        finite = np.isfinite(x)
        keep, stats = [], []
        for j in range(x.shape[1]):
            col = x[finite[:, j], j]
            if len(col) < 0.5 * len(x):
                continue  # RDKit fails on most molecules: not a target worth learning
            med = float(np.median(col))
            filled = np.where(finite[:, j], x[:, j], med)
            lo, hi = np.quantile(filled, [quantile, 1 - quantile])
            clipped = np.clip(filled, lo, hi)
            std = float(clipped.std())
            if std <= 1e-12:
                continue
            keep.append(j)
            stats.append((med, float(lo), float(hi), float(clipped.mean()), std))
        med, lo, hi, mean, std = (list(v) for v in zip(*stats))
        return cls([names[j] for j in keep], med, lo, hi, mean, std)

    def transform(self, raw: np.ndarray, names: list[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.names if n not in index]
        if missing:
            raise ValueError(f"descriptors {missing[:5]} are not in the raw matrix (another RDKit version?).")
        x = np.asarray(raw, dtype=np.float64)[:, [index[n] for n in self.names]]
        x = np.where(np.isfinite(x), x, np.asarray(self.median))
        x = np.clip(x, self.low, self.high)
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DescriptorScaler":
        return cls(**json.loads(Path(path).read_text()))


def descriptor_targets(smiles: list[str], fit_rows: np.ndarray, cache_dir: str | os.PathLike,
                       num_workers: int = 1) -> tuple[np.ndarray, DescriptorScaler]:
    """(targets, scaler): the MTR targets of `smiles`, scaled with statistics of `fit_rows` only."""
    names = descriptor_names()
    raw = cached_descriptors(smiles, cache_dir, num_workers=num_workers)
    scaler = DescriptorScaler.fit(raw[fit_rows], names)
    return scaler.transform(raw, names), scaler
