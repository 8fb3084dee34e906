"""How many intra-op threads torch's compute gets on a shared machine, and a context that applies it.

torch's CPU kernels split each op across its intra-op threads and wait for all of them at the op's
end. On a machine where other jobs hold cores, a thread that lost its core stalls every such
barrier: extraction of essays ran at 0.72x a bare loop under load, and the short ops of the heads
lose far more (docs/performance.md). The numpy heads already keep their short solves on one BLAS
thread (`heads.linear.single_blas_thread`, `W2S_HF_SOLVE_THREADS`); this is the torch side, used
around extraction (`features`), the k-head classifier (`heads.mixture`) and LoRA training
(`heads.lora`):

- the count is taken from the cores this process may run on (`os.sched_getaffinity`), less the load
  that other processes put on them (the 1-minute load average, less one for this process itself),
  and never more than torch's own setting (which follows OMP_NUM_THREADS and accelerate's split of
  the cores between processes);
- `W2S_HF_TORCH_THREADS=N` fixes it at N, `W2S_HF_TORCH_THREADS=0` leaves torch's own count
  (`auto`, the default, is the rule above).

A thread count can change the last bits of a result where torch splits a reduction between its threads
(as OMP_NUM_THREADS always could), never more: 1 and N processes, each with its own count, agree as
the tests require. For reruns equal bit for bit whatever the load, fix the count (`W2S_HF_TORCH_THREADS=N`).
Cached features are reused as first computed, so their reruns are equal anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "W2S_HF_TORCH_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; the CPU count where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores left to this process: `cores` less the other processes' load, rounded, at least 1.

    The load average counts this process too (one runnable thread while it prepares its work), so
    one is taken off it; half a core busy elsewhere already costs a thread (its barrier waits).
    """
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    others = max(0.0, load - 1.0)
    return int(max(1, min(cores, math.floor(cores - others + 0.5))))


def torch_thread_count(current: int, setting: str | None = None) -> int:
    """The intra-op thread count to use, given torch's `current` one and the `W2S_HF_TORCH_THREADS` setting."""
    setting = (os.environ.get(ENV, "auto") if setting is None else setting).strip().lower()
    if setting in ("", "auto"):
        return max(1, min(current, free_cores()))
    try:
        value = int(setting)
    except ValueError:
        raise ValueError(f"{ENV}={setting!r} must be 'auto', 0 (torch's own count) or a thread count") from None
    if value < 0:
        raise ValueError(f"{ENV}={value} must be 'auto', 0 (torch's own count) or a thread count")
    return current if value == 0 else value


@contextmanager
def torch_threads(device: object = None) -> Iterator[int]:
    """Run the enclosed torch CPU compute on `torch_thread_count` threads; restore torch's count after.

    On a GPU `device` nothing changes (the host threads only launch kernels). Yields the count used.
    """
    import torch

    current = torch.get_num_threads()
    if device is not None and torch.device(device).type != "cpu":
        yield current
        return
    count = torch_thread_count(current)
    if count == current:
        yield current
        return
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(current)
