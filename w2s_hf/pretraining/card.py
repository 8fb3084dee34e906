"""The model card (README.md in Hugging Face's format) written into every pretrained folder.

It gives what re-creates the model (the command and the config), what it was trained on (the corpus
fingerprint and counts), how far it got (steps, final losses) and, once `w2s pretrain
--evaluate` has run, its QSAR ceilings (a ridge head on gold labels, per task and split, val and test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_path

_SOURCE_NAMES = {"moleculeace": "MoleculeACE 3.0.0", "rdkit_nci": "RDKit's NCI first_5k",
                 "moses": "MOSES train (molsets 0.3.1)"}


def _sources(cfg: dict[str, Any]) -> str:
    if cfg.get("corpus_file"):
        return f"the file `{cfg['corpus_file']}`"
    names = [n.strip() for n in cfg.get("sources", "moleculeace,rdkit_nci").split(",")]
    text = [_SOURCE_NAMES.get(n, n) for n in names]
    if "moses" in names and cfg.get("moses_molecules"):
        text[names.index("moses")] += f" ({cfg['moses_molecules']:,} rows drawn with seed {cfg.get('corpus_seed', 0)})"
    return ", ".join(text)


def _start_line(start: dict[str, Any] | None) -> list[str]:
    if not start:
        return []
    earlier = (f" ({start['steps']} steps, {start['epochs']:.2f} passes over {start['corpus_molecules']:,} molecules, "
               f"{start['train_runtime_s']} s)" if start.get("steps") else "")
    return [f"- continued from `{start['name']}`{earlier}: its encoder and tokenizer, fresh MLM and descriptor heads; "
            "the steps and time below are this run's alone"]


def write_model_card(folder: Path, summary: dict[str, Any], ceilings: dict[str, Any] | None = None) -> Path:
    cfg = summary["config"]
    name = summary["name"]
    config_name = cfg.get("config_file") or f"scripts/configs/pretrain/{name}.yaml"
    final = summary["final"]
    lines = [
        "---",
        "library_name: transformers",
        "license: mit",
        "pipeline_tag: feature-extraction",
        "tags: [chemistry, smiles, bert, molbert, w2s_hf]",
        "---",
        "",
        f"# {name}",
        "",
        f"A SMILES BERT ({summary['parameters']:,} parameters, hidden {cfg['hidden_size']}, "
        f"{cfg['num_layers']} layers) pretrained by w2s_hf with the objective `{cfg['objective']}` (masked LM"
        + (" plus regression of standardised RDKit descriptors from the mean-pooled last layer" if cfg["objective"] ==
           "mlm+mtr" else "") + "). Load it with `AutoModel.from_pretrained` / `AutoTokenizer.from_pretrained`,"
        f" or in w2s_hf as `packaged:{name}` when it ships with the package.",
        "",
        "## Recipe",
        "",
        "```bash",
        f"accelerate launch w2s pretrain --config {config_name}",
        "```",
        "",
        f"- seed: {cfg['seed']}; processes: {summary['processes']}; device: {summary['device']}",
        *_start_line(summary.get("init_from")),
        f"- steps: {summary['steps']} ({summary['epochs']:.2f} passes); train time {summary['train_runtime_s']} s",
        f"- corpus: {summary['corpus']['molecules']:,} molecules (fingerprint `{summary['corpus']['fingerprint']}`; "
        f"{summary['corpus']['train']:,} train, {summary['corpus']['val']:,} held out), from "
        f"{_sources(cfg)}, every molecule of ESOL, FreeSolv and Lipophilicity removed",
        "- final losses: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items() if v is not None),
        "",
        "## Config",
        "",
        "```json",
        json.dumps({k: v for k, v in cfg.items() if k not in ("overwrite",)}, indent=1),
        "```",
    ]
    if ceilings:
        lines += ["", "## QSAR ceilings", "",
                  "Mean squared error of a ridge head (ridge chosen on val) fitted on gold labels of `w2s_train`, "
                  "final layer, mean pooling; val was used for the ridge, test was not.", "",
                  "| task | split | seed | val | test |", "|---|---|---|---|---|"]
        for row in ceilings["rows"]:
            lines.append(f"| {row['task']} | {row['split']} | {row['seed']} | {row['val']:.3f} | {row['test']:.3f} |")
    path = folder / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
