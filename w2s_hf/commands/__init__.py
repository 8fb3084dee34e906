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
