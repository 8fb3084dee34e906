"""Pretrain a SMILES BERT on the toolkit's corpus (MolBERT recipe: masked LM + RDKit descriptor regression).

Re-create a shipped model (each config names its output folder; `--overwrite` replaces it):

    w2s pretrain --accelerate_config accelerate_configs/cpu_2proc.yaml \
        --config scripts/configs/pretrain/smiles-bert-h64-l2-mtr.yaml --output_dir runs/pretrain/h64
    w2s pretrain --config scripts/configs/pretrain/smiles-bert-h64-l2-mtr.yaml \
        --output_dir runs/pretrain/tiny --limit 500 --max_steps 20     # a trial in seconds

Then measure its QSAR ceilings (ridge on gold labels; writes them into the model card), and ship it
inside the package as `packaged:<folder name>` (at most 5 MiB; `--overwrite` replaces a shipped one):

    w2s pretrain --evaluate runs/pretrain/h64
    w2s pretrain --ship runs/pretrain/h64
    w2s pretrain --table w2s_hf/models/smiles-bert-*   # the family table of docs/pretraining.md

Flags override the YAML file; `--help` lists every key. The corpus, the descriptors' cache and the
saved folder are described in `w2s_hf/pretraining/`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from w2s_hf.pretraining.cli import parse_pretrain_args

MODES = ("--evaluate", "--ship", "--table")


def _folders(mode: str, args: list[str]) -> list[Path]:
    """The model folders a mode was given: each must be a folder holding a model (config.json)."""
    if not args:
        raise ValueError(f"{mode} needs one or more model folders")
    for arg in args:
        path = Path(arg)
        if not path.exists():
            raise FileNotFoundError(f"{mode}: {arg!r} does not exist")
        if not path.is_dir():
            raise NotADirectoryError(f"{mode}: {arg!r} is a file; give a model folder (with config.json)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{mode}: {arg!r} holds no config.json; give a pretrained model folder")
    return [Path(a) for a in args]


def run_mode(mode: str, args: list[str]) -> int:
    overwrite = mode == "--ship" and "--overwrite" in args
    folders = _folders(mode, [a for a in args if not (mode == "--ship" and a == "--overwrite")])
    if mode == "--evaluate":
        from w2s_hf.pretraining.evaluate import evaluate_checkpoints

        for folder in folders:
            print(json.dumps(evaluate_checkpoints(folder), indent=1))
    elif mode == "--table":
        from w2s_hf.pretraining.evaluate import family_table, qsar_ceilings, summarise

        missing = [str(f) for f in folders if not (f / "ceilings.json").is_file()]
        if missing:
            raise FileNotFoundError(f"--table: {', '.join(missing)} not evaluated yet; run --evaluate on it first")
        reference = {"name": "rdkit:descriptors", "mean": summarise(qsar_ceilings("rdkit:descriptors"))}
        print(family_table(folders, reference))
    else:
        from w2s_hf.pretraining.ship import ship

        for folder in folders:
            print(f"shipped {ship(folder, overwrite=overwrite)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] and argv[0] in MODES:
            return run_mode(argv[0], argv[1:])
        cfg = parse_pretrain_args(argv)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    from w2s_hf.pretraining.train import OutputFolderError, PretrainDataError, pretrain

    try:
        summary = pretrain(cfg)
    except (PretrainDataError, ImportError, OutputFolderError) as err:  # raised before any training step
        if PartialState().is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 2

    if PartialState().is_main_process:
        keys = ("name", "parameters", "steps", "epochs", "train_runtime_s", "resumed_from", "final")
        print(json.dumps({k: summary[k] for k in keys}, indent=1))
        print(f"saved {Path(cfg.output_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
