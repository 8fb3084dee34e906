"""Run configuration: dataclasses (run.py) read by one parser (parser.py), plus `--config file.yaml`.

Precedence: built-in defaults < values in the YAML file < flags on the command line. Every key is
checked before any model is loaded or any feature extracted: an unknown key (in the YAML file or on
the command line) or a bad value raises `ConfigError` naming the key, the value and what is allowed.
The config imports the domain's lists of allowed values (poolings, solvers, losses, stages) from the
modules that own them; no layer imports the config.

The YAML file may be flat (`weak_model: ...`) or grouped (`weak: {model: ..., layer: 3}`); groups are
flattened to `<group>_<key>`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..errors import ConfigError
from .run import (
    ARGUMENT_CLASSES,
    HeadArguments,
    LoraArguments,
    ModelArguments,
    RunArguments,
    TaskArguments,
    W2SConfig,
    default_cache_dir,
)

__all__ = ["ARGUMENT_CLASSES", "ConfigError", "HeadArguments", "LoraArguments", "ModelArguments", "RunArguments",
           "TaskArguments", "W2SArgumentParser", "W2SConfig", "default_cache_dir", "load_yaml", "parse_config"]


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's YAML config file into a flat, checked {key: value} dict."""
    from .parser import load_yaml as read_yaml

    return read_yaml(path, {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)})


def parse_config(argv: list[str] | None = None, prog: str | None = None) -> W2SConfig:
    """Parse `[--config file.yaml] [--key value ...]` into a validated `W2SConfig` (`prog`: the name in --help)."""
    from .parser import W2SArgumentParser

    usage = f"{prog or 'w2s run'} [--config FILE.yaml] [--KEY VALUE ...]   (sections below; YAML < flags)"
    parser = W2SArgumentParser(ARGUMENT_CLASSES, prog=prog, usage=usage)
    model, task, head, run, lora = parser.parse_args_and_config(argv)
    return W2SConfig(model=model, task=task, head=head, run=run, lora=lora).validate()


def __getattr__(name: str) -> Any:
    # the parser imports transformers (HfArgumentParser): loaded on first use
    if name == "W2SArgumentParser":
        from .parser import W2SArgumentParser

        return W2SArgumentParser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
