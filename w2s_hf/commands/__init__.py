"""The `w2s` subcommands (see w2s_hf/cli.py), each a module with `main(argv) -> int`."""

from __future__ import annotations

from typing import Any


def start_accelerator(**kwargs: Any) -> Any:
    """The `Accelerator` of a command (on the GPU when there is one; `kwargs` such as trackers go to it),
    with INFO logs from the main process only."""
    import logging

    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **kwargs)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return accelerator


def exiting(status: int) -> int:
    """Call with a command's exit status when the process ends right after: returns it unchanged.

    At exit the interpreter tears every module down and runs the cycle collector over everything
    left, which with torch, transformers, pandas and datasets loaded took 1.0-3.3 s per process on a
    busy 2-core machine (a warm rerun's largest part after the imports; bench_warm_rerun.py).
    `gc.freeze()` moves what exists into the permanent generation, which those final collections
    skip: 0.3 s. atexit handlers, flushes and closes still run; only cyclic garbage left at exit is
    not collected, and the process is ending. Never call it in a process that goes on (tests).
    """
    import gc

    gc.freeze()
    return status
