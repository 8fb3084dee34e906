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

import errno
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from ..atomic import remove_stale_temporaries
from ..distributed import Processes
from ..errors import DiskFullError
from ..progress import progress
from .cache import FeatureCache

logger = logging.getLogger(__name__)
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
    units: Sequence[np.ndarray] | None = None,
    n_shards: int | None = None,
    shard_size: int = 2048,
    accelerator: Any = None,
    overwrite: bool = False,
    show_progress: bool = True,
    desc: str = "features",
) -> list[np.ndarray]:
    """Run `compute` over all rows, shard by shard, and return one (n_rows, dim) float32 array per output.

    compute(rows, advance) gets caller row indices and returns one array per output (per cache when
    `caches` is given), rows in the order given. A full cache hit returns without calling it.

    `units` (instead of `order`): groups of rows that are never split, e.g. the batches of a model, so
    that a row is computed with the same batch-mates whatever the number of processes. Shard k is
    then units k, k + K, ... (K = `n_shards`, default ceil(n_rows / shard_size), never the world
    size), and compute receives whole units, concatenated in that order.
    """
    if n_rows <= 0:
        raise ValueError("nothing to extract: the input has no rows.")
    if shard_size <= 0:
        raise ValueError(f"shard_size={shard_size} must be a positive number of rows.")
    procs = Processes.from_accelerator(accelerator)
    caches = list(caches or [])
    if len({cache.path for cache in caches}) != len(caches):
        raise ValueError(f"caches must be distinct entries; got {caches}.")
    with _entry_locks(caches, procs):
        return _extract_locked(n_rows, compute, caches, procs, order, units, n_shards, shard_size, overwrite,
                               show_progress, desc)


@contextmanager
def _entry_locks(caches: Sequence[FeatureCache], procs: Processes) -> Iterator[None]:
    """Hold the cache entries' locks (main process; the others wait at the barrier) for one extraction.

    Two runs on one entry would otherwise both write its shards, and the first to finish would delete
    them under the other. The second run waits here, then finds the entry complete and only loads it.
    `filelock` uses flock on POSIX, which the kernel releases when its holder dies: no stale lock.
    """
    if not caches:
        yield
        return
    with ExitStack() as stack:
        if procs.is_main:
            from filelock import FileLock

            for cache in sorted(caches, key=lambda c: str(c.path)):
                cache.cache_dir.mkdir(parents=True, exist_ok=True)
                lock = FileLock(str(cache.cache_dir / f".{cache.fingerprint}.lock"))
                try:
                    lock.acquire(timeout=0)
                except TimeoutError:
                    logger.warning("feature cache %s is being written by another run; waiting for it.", cache.path)
                    lock.acquire()
                stack.callback(lock.release)
                # a writer killed mid-write (SIGKILL) leaves its temporary file; no one else will
                for folder in (cache.path, cache.path / "shards"):
                    remove_stale_temporaries(folder)
        procs.barrier()
        yield
        procs.barrier()


def _extract_locked(n_rows, compute, caches, procs, order, units, n_shards, shard_size, overwrite, show_progress,
                    desc) -> list[np.ndarray]:
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
    if units is not None:
        units = [np.asarray(u, dtype=np.int64) for u in units]
        flat = np.concatenate(units) if units else np.zeros(0, np.int64)
        if flat.shape != (n_rows,) or not np.array_equal(np.sort(flat), np.arange(n_rows)):
            raise ValueError(f"units must partition range({n_rows}).")
        n_shards = max(1, min(len(units), n_shards or math.ceil(n_rows / shard_size)))
        shards = [np.concatenate(units[k::n_shards]) for k in range(n_shards)]
    else:
        order = np.arange(n_rows) if order is None else np.asarray(order, dtype=np.int64)
        if order.shape != (n_rows,) or not np.array_equal(np.sort(order), np.arange(n_rows)):
            raise ValueError(f"order must be a permutation of range({n_rows}).")
        n_shards = count_shards(n_rows, shard_size, procs.world)
        shards = split_shards(order, n_shards)
    mine = range(procs.rank, n_shards, procs.world)
    pending = [k for k in mine if not caches or any(c.load_shard(k, n_shards, shards[k]) is None for c in caches)]

    # a bar on a terminal, a log line every 30 s in a log file (no \r frames)
    bar = progress(sum(len(shards[k]) for k in pending), desc, enabled=show_progress and procs.is_main)
    results: dict[int, list[np.ndarray]] = {}
    full = None
    try:
        for k in pending:
            arrays = _check_outputs(compute(shards[k], bar.update), len(shards[k]), len(caches) or None)
            if caches:
                for cache, array in zip(caches, arrays):
                    cache.save_shard(k, n_shards, shards[k], array)
            else:
                results[k] = arrays
    except DiskFullError as err:
        full = err
    finally:
        bar.close()

    if caches:
        _fail_together(procs, full)
        if procs.is_main:
            try:
                for cache in caches:
                    cache.finalize(n_rows, shards)
            except DiskFullError as err:
                full = err
        _fail_together(procs, full)
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


def _fail_together(procs: Processes, error: DiskFullError | None) -> None:
    """A barrier that raises on every process when one ran out of disk (the others would wait forever)."""
    messages = [m for m in procs.gather([str(error) if error else None]) if m]
    if error is not None:
        raise error
    if messages:
        raise DiskFullError(errno.ENOSPC, messages[0])


def _check_outputs(arrays: Sequence[np.ndarray], n: int, expected: int | None) -> list[np.ndarray]:
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    if expected is not None and len(arrays) != expected:
        raise ValueError(f"compute returned {len(arrays)} arrays for {expected} caches.")
    for array in arrays:
        if array.ndim != 2 or array.shape[0] != n:
            raise ValueError(f"compute must return ({n}, dim) arrays; got {array.shape}.")
    return arrays
