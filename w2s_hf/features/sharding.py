"""Split a feature extraction into shards, spread them over processes, cache and resume them.

`cached_extract` is the loop every featurizer shares: rows are processed in a chosen order (the
encoder passes longest-first), dealt into shards by striding over that order (shard k holds
positions k, k + K, k + 2K, ... so every shard mixes long and short inputs and processes finish
together), and shard k goes to process k mod world_size. With caches, each finished shard is written
atomically at once (an interrupted run resumes from the finished ones), the main process then
assembles them in the caller's row order and every process loads the same memory-mapped array.
Without caches, the shards are gathered in memory with `accelerate.utils.gather_object`, keyed by
row index, so no padded duplicates can enter the result. With caches on several machines, the cache
folder must be on a filesystem all processes share (the main process reads every shard).

    def compute(rows, advance):            # rows: caller's row indices, in processing order
        feats = featurize([inputs[i] for i in rows])
        advance(len(rows))                 # moves the progress bar
        return [feats]                     # one (len(rows), dim) array per output/cache
    [features] = cached_extract(len(inputs), compute, [FeatureCache(cache_dir, fp)], accelerator=acc)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..distributed import Processes
from .cache import FeatureCache

ComputeFn = Callable[[np.ndarray, Callable[[int], None]], Sequence[np.ndarray]]


def count_shards(n_rows: int, shard_size: int, world: int) -> int:
    """Enough shards of at most `shard_size` rows, and at least one per process."""
    return max(math.ceil(n_rows / shard_size), min(world, n_rows))


def split_shards(order: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """Shard k = order[k::n_shards]: strided, so each shard gets a mix of the ordered inputs."""
    return [order[k::n_shards] for k in range(n_shards)]


def cached_extract(
    n_rows: int,
    compute: ComputeFn,
    caches: Sequence[FeatureCache] | None = None,
    *,
    order: np.ndarray | None = None,
    shard_size: int = 2048,
    accelerator: Any = None,
    overwrite: bool = False,
    show_progress: bool = True,
    desc: str = "features",
) -> list[np.ndarray]:
    """Run `compute` over all rows, shard by shard, and return one (n_rows, dim) float32 array per output.

    compute(rows, advance) gets caller row indices and returns one array per output (per cache when
    `caches` is given), rows in the order given. A full cache hit returns without calling it.
    """
    if n_rows <= 0:
        raise ValueError("nothing to extract: the input has no rows.")
    if shard_size <= 0:
        raise ValueError(f"shard_size={shard_size} must be a positive number of rows.")
    procs = Processes.from_accelerator(accelerator)
    caches = list(caches or [])
    if len({cache.path for cache in caches}) != len(caches):
        raise ValueError(f"caches must be distinct entries; got {caches}.")
    if caches:
        if overwrite:
            # Drop old shards only: the old array stays valid until the new one replaces it, so a
            # failed rerun leaves the cache as it was.
            if procs.is_main:
                for cache in caches:
                    cache.clear_shards()
            procs.barrier()
        else:
            loaded = [cache.load() for cache in caches]
            # All processes must take the same branch, or the barriers below would never meet.
            if all(procs.gather([all(array is not None for array in loaded)])):
                return loaded
    order = np.arange(n_rows) if order is None else np.asarray(order, dtype=np.int64)
    if order.shape != (n_rows,) or not np.array_equal(np.sort(order), np.arange(n_rows)):
        raise ValueError(f"order must be a permutation of range({n_rows}).")
    n_shards = count_shards(n_rows, shard_size, procs.world)
    shards = split_shards(order, n_shards)
    mine = range(procs.rank, n_shards, procs.world)
    pending = [k for k in mine if not caches or any(c.load_shard(k, n_shards, shards[k]) is None for c in caches)]

    from tqdm.auto import tqdm

    bar = tqdm(
        total=sum(len(shards[k]) for k in pending),
        desc=desc,
        unit="row",
        disable=not (show_progress and procs.is_main),
        dynamic_ncols=True,
    )
    results: dict[int, list[np.ndarray]] = {}
    try:
        for k in pending:
            arrays = _check_outputs(compute(shards[k], bar.update), len(shards[k]), len(caches) or None)
            if caches:
                for cache, array in zip(caches, arrays):
                    cache.save_shard(k, n_shards, shards[k], array)
            else:
                results[k] = arrays
    finally:
        bar.close()

    if caches:
        procs.barrier()
        if procs.is_main:
            for cache in caches:
                cache.finalize(n_rows, shards)
        procs.barrier()
        out = [cache.load(verify=False) for cache in caches]
        if any(array is None for array in out):
            raise RuntimeError(f"feature caches {caches} were finalized but cannot be read back.")
        return out

    gathered = procs.gather(sorted(results.items()))
    dims = [array.shape[1] for array in gathered[0][1]]
    out = [np.empty((n_rows, dim), dtype=np.float32) for dim in dims]
    for k, arrays in gathered:
        for target, array in zip(out, arrays):
            target[shards[k]] = array
    return out


def _check_outputs(arrays: Sequence[np.ndarray], n: int, expected: int | None) -> list[np.ndarray]:
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    if expected is not None and len(arrays) != expected:
        raise ValueError(f"compute returned {len(arrays)} arrays for {expected} caches.")
    for array in arrays:
        if array.ndim != 2 or array.shape[0] != n:
            raise ValueError(f"compute must return ({n}, dim) arrays; got {array.shape}.")
    return arrays
