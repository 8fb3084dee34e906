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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--evaluate"]:
        from w2s_hf.pretraining.evaluate import evaluate_checkpoints

        if len(argv) < 2:
            print("error: --evaluate needs one or more model folders", file=sys.stderr)
            return 2
        for folder in argv[1:]:
            print(json.dumps(evaluate_checkpoints(folder), indent=1))
        return 0
    if argv[:1] == ["--table"]:
        from w2s_hf.pretraining.evaluate import family_table, qsar_ceilings, summarise

        reference = {"name": "rdkit:descriptors", "mean": summarise(qsar_ceilings("rdkit:descriptors"))}
        print(family_table(argv[1:], reference))
        return 0
    if argv[:1] == ["--ship"]:
        from w2s_hf.pretraining.ship import ship

        overwrite = "--overwrite" in argv
        for folder in [a for a in argv[1:] if a != "--overwrite"]:
            try:
                print(f"shipped {ship(folder, overwrite=overwrite)}")
            except (ValueError, FileNotFoundError, FileExistsError) as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
        return 0
    try:
        cfg = parse_pretrain_args(argv)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    from w2s_hf.pretraining.train import PretrainDataError, pretrain

    try:
        summary = pretrain(cfg)
    except (PretrainDataError, ImportError) as err:  # raised before any training step
        if PartialState().is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 2

    if PartialState().is_main_process:
        keys = ("name", "parameters", "steps", "epochs", "train_runtime_s", "final")
        print(json.dumps({k: summary[k] for k in keys}, indent=1))
        print(f"saved {Path(cfg.output_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
