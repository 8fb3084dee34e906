"""Command line of w2s pretrain: `PretrainConfig` through the toolkit's one parser."""

from __future__ import annotations

from ..config.parser import W2SArgumentParser
from ..errors import ConfigError
from .recipe import PretrainConfig  # not .train: --help and bad flags need no torch

MODES_HELP = """other modes (each takes the whole command line):
  --evaluate FOLDER [FOLDER ...]   QSAR ceilings of pretrained folders (written into ceilings.json and the card)
  --ship FOLDER [...] [--overwrite]  copy evaluated folders into the package as packaged:<folder name>
  --table FOLDER [FOLDER ...]      the family table of evaluated folders, with rdkit:descriptors as reference
"""


def pretrain_parser() -> W2SArgumentParser:
    import argparse

    description = ("Pretrain a SMILES BERT (masked LM + RDKit descriptor regression) on the toolkit's corpus. "
                   "Keys come from --config FILE.yaml, then from the flags below; see `w2s pretrain`'s docstring.")
    return W2SArgumentParser(PretrainConfig, description=description,
                             epilog=MODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_pretrain_args(argv: list[str]) -> PretrainConfig:
    """Defaults < the YAML file of `--config` < flags (see `w2s_hf.cli`); the config is validated."""
    argv = list(argv)
    for arg in argv:
        if arg.split("=", 1)[0] in ("--evaluate", "--ship", "--table"):
            raise ConfigError(f"{arg} must come first: w2s pretrain {arg} FOLDER ...")
        if arg.split("=", 1)[0] == "--config_file":
            raise ConfigError("Unknown command-line option --config_file. Did you mean --config?")
    (cfg,) = pretrain_parser().parse_args_and_config(argv)
    if "--config" in argv:
        cfg.config_file = argv[argv.index("--config") + 1]
    if not cfg.output_dir:
        raise ConfigError("output_dir is not set: give it in the YAML file or as --output_dir.")
    return cfg.validate()
