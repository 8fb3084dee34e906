"""Command line of scripts/pretrain_smiles.py: `PretrainConfig` read by HfArgumentParser, `--config` YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .train import PretrainConfig


def parse_pretrain_args(argv: list[str]) -> PretrainConfig:
    """Defaults < the YAML file of `--config` < flags; an unknown YAML key is an error naming file and key."""
    import yaml
    from transformers import HfArgumentParser

    parser = HfArgumentParser(PretrainConfig)
    parser.add_argument("--config", default=None, help="YAML file of keys (flags override it).")
    known = {f.name for f in dataclasses.fields(PretrainConfig)}
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ValueError("--config needs a YAML file.")
        path = Path(argv[i + 1])
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file.")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of keys, got {type(values).__name__}.")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; run with --help for the keys.")
        values["config_file"] = str(path)
        parser.set_defaults(**{k: v for k, v in values.items() if k in known})
        for action in parser._actions:  # a key the YAML file gives is no longer required on the command line
            if action.dest in values:
                action.required = False
        config_file = str(path)
    else:
        config_file = None
    *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    cfg = parsed[0]
    if rest:
        raise ValueError(f"unknown argument(s): {' '.join(rest)}; run with --help for the keys.")
    cfg.config_file = config_file
    return cfg.validate()
