"""Collectives across the processes of an `accelerate launch`: every cross-process call lives here.

Each function must be called on every process. Checks that can fail are agreed on first
(`agree`), so a bad input on one process raises on all of them instead of leaving the others
waiting in the next collective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def num_processes(accelerator: Any) -> int:
    return int(getattr(accelerator, "num_processes", 1)) if accelerator is not None else 1


@dataclass
class Processes:
    """Rank, world size and collectives of the running job (one process when `state` is None)."""

    rank: int = 0
    world: int = 1
    state: Any = None

    @classmethod
    def from_accelerator(cls, accelerator: Any = None) -> Processes:
        """Wrap an `Accelerator`/`PartialState`; with None, join a process group that is already running."""
        if accelerator is None:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                return cls()
            from accelerate import PartialState

            accelerator = PartialState()
        return cls(int(accelerator.process_index), int(accelerator.num_processes), accelerator)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> Any:
        return getattr(self.state, "device", None) if self.world > 1 else None

    def barrier(self) -> None:
        if self.world > 1:
            self.state.wait_for_everyone()

    def gather(self, items: list) -> list:
        """Concatenate every process's list (in rank order) on every process."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)


def reduce_array(accelerator: Any, values: np.ndarray, reduction: str = "sum") -> np.ndarray:
    """`values` (float64) summed (or maxed: reduction="max") over processes; unchanged with one."""
    if num_processes(accelerator) <= 1:
        return np.asarray(values, dtype=np.float64)
    import torch
    from accelerate.utils import reduce

    device = getattr(accelerator, "device", torch.device("cpu"))
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(device)
    return reduce(tensor, reduction=reduction).cpu().numpy()


def sum_arrays(accelerator: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Sum several float64 arrays over processes in one collective call."""
    if num_processes(accelerator) <= 1:
        return arrays
    total = reduce_array(accelerator, np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64))
    out, start = [], 0
    for a in arrays:
        size = np.size(a)
        out.append(total[start:start + size].reshape(np.shape(a)))
        start += size
    return out


def agree(accelerator: Any, error: Exception | None, shape: Sequence[float], what: str) -> None:
    """Raise on every process if any process had invalid input (`error`) or a different `shape`.

    `shape` is whatever every process must share (numbers of columns, ...); `what` names the inputs
    in the message.
    """
    shape = np.asarray(shape, dtype=np.float64)
    flags = reduce_array(accelerator, np.concatenate([[error is not None], shape, -shape]), "max")
    if error is not None:
        raise error
    if flags[0]:
        raise ValueError(f"invalid {what} on another process (see its error); nothing was fitted")
    high, low = flags[1 : 1 + len(shape)], -flags[1 + len(shape) :]
    if not np.array_equal(high, low):
        raise ValueError(
            f"processes disagree on the shapes of {what}: {low.tolist()} to {high.tolist()}; "
            "every process needs the same layout (same representation and targets)"
        )


def gather_predictions(
    accelerator: Any, ids: Sequence | np.ndarray, preds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gather this process's `(ids, preds)` from every process; return all rows, deduplicated, sorted by id.

    `ids` are one id per row (ints or strings), `preds` an array (n_local,) or (n_local, k). A process
    may hold any number of rows, including none. Rows whose id appears on several processes (padding
    by a distributed sampler repeats rows) are kept once; if two copies disagree, that is a sharding
    bug and raises. Must be called on every process (it is a collective operation).

    `accelerator.gather_for_metrics` is not used on whole arrays on purpose: it trims to the dataloader
    remainder whenever the last prepared dataloader just ended, which would cut a whole-array gather.
    Deduplicating by id is exact however the rows were split.
    """
    ids, preds = np.asarray(ids), np.asarray(preds)
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(ids, preds)])
    else:
        parts = [(ids, preds)]
    # Checked after the gather: every process sees every part and raises alike (no process left
    # waiting in a collective because another one failed alone).
    for rank, (i, p) in enumerate(parts):
        where = f" on process {rank}" if len(parts) > 1 else ""
        if np.ndim(i) != 1:
            raise ValueError(f"ids must be 1-D (one id per row){where}, got shape {np.shape(i)}.")
        if np.ndim(p) not in (1, 2) or len(p) != len(i):
            raise ValueError(
                f"preds must have shape (n,) or (n, k) with n = len(ids) = {len(i)}{where}, got {np.shape(p)}."
            )
    parts = [(np.asarray(i), np.asarray(p, dtype=np.float64)) for i, p in parts if len(i)]
    if not parts:
        return ids[:0], np.asarray(preds, dtype=np.float64)[:0]
    all_ids = np.concatenate([i for i, _ in parts])
    all_preds = np.concatenate([p for _, p in parts])
    # Stable sort, then keep the first row of every run of equal ids.
    order = np.argsort(all_ids, kind="stable")
    all_ids, all_preds = all_ids[order], all_preds[order]
    first = np.ones(len(all_ids), dtype=bool)
    first[1:] = all_ids[1:] != all_ids[:-1]
    if not first.all():
        group = np.cumsum(first) - 1
        kept = all_preds[first]
        # Same head, same row: equal up to float noise from a different batch composition.
        same = np.isclose(all_preds, kept[group], rtol=1e-4, atol=1e-6, equal_nan=True).reshape(len(all_ids), -1)
        if not same.all():
            bad = all_ids[~same.all(axis=1)]
            raise ValueError(
                f"ids {bad[:5].tolist()} were predicted differently on different processes: every process "
                "must predict a row with the same head (gather after all processes hold the same weights)."
            )
    return all_ids[first], all_preds[first]
