"""Command line of w2s pretrain: `PretrainConfig` through the toolkit's one parser."""

from __future__ import annotations

from ..config.parser import W2SArgumentParser
from ..errors import ConfigError
from .train import PretrainConfig


def parse_pretrain_args(argv: list[str]) -> PretrainConfig:
    """Defaults < the YAML file of `--config` < flags (see `w2s_hf.cli`); the config is validated."""
    argv = list(argv)
    (cfg,) = W2SArgumentParser(PretrainConfig).parse_args_and_config(argv)
    if "--config" in argv:
        cfg.config_file = argv[argv.index("--config") + 1]
    if not cfg.output_dir:
        raise ConfigError("output_dir is not set: give it in the YAML file or as --output_dir.")
    return cfg.validate()
