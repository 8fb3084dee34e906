"""Continued pretraining: start a run from an earlier pretrained folder's encoder and tokenizer (`init_from`).

On a CPU budget the cheapest stronger model is rarely a fresh one: the family's strongest model has
already paid an hour for its first 300k molecule-passes, so a run on the 40x corpus can continue from
it and spend its budget on molecules the start model never saw. The start folder must be a plain
`BertModel` folder of this recipe (what `pretrain` saves, or `packaged:<name>`): its tokenizer is
kept (its vocabulary must cover the new corpus; an atom it never saw is split into characters, never
[UNK]), its encoder weights are loaded in float32, and the MLM and descriptor heads start fresh (the
saved folder holds no heads; the descriptor scaler is refitted on the new corpus anyway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_ARCHITECTURE = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers",
                 "num_attention_heads": "num_heads", "max_position_embeddings": "max_position"}


def start_folder(name: str) -> Path:
    """The local folder of `init_from` (a folder or packaged:<name>); one-line errors if it is not a model."""
    from ..features.packaged import resolve_model_source

    folder = Path(resolve_model_source(name).path)
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"init_from={name!r}: {folder} has no tokenizer.json; give a folder that this "
                                "recipe saved.")
    return folder


def check_architecture(cfg: Any) -> None:
    """The config's architecture keys must be the start model's (checked before any work)."""
    folder = start_folder(cfg.init_from)
    config = json.loads((folder / "config.json").read_text())
    wrong = [f"{key}={getattr(cfg, key)} (start model: {config.get(theirs)})" for theirs, key in _ARCHITECTURE.items()
             if config.get(theirs) != getattr(cfg, key)]
    if wrong:
        raise ValueError(f"init_from={cfg.init_from!r} has another architecture: " + "; ".join(wrong)
                         + ". Set these keys to the start model's.")


def start_tokenizer(cfg: Any):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(start_folder(cfg.init_from)), model_max_length=cfg.max_position)


def load_start_encoder(model: Any, cfg: Any) -> dict[str, Any]:
    """Copy the start folder's encoder into `model.bert`; returns what the card records about the start."""
    import torch
    from transformers import BertModel

    folder = start_folder(cfg.init_from)
    start = BertModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=torch.float32)
    model.bert.load_state_dict(start.state_dict(), strict=True)
    summary_path = folder / "pretraining.json"
    record: dict[str, Any] = {"name": cfg.init_from}
    if summary_path.is_file():
        earlier = json.loads(summary_path.read_text())
        record.update({"steps": earlier.get("steps"), "epochs": earlier.get("epochs"),
                       "train_runtime_s": earlier.get("train_runtime_s"),
                       "corpus_fingerprint": (earlier.get("corpus") or {}).get("fingerprint"),
                       "corpus_molecules": (earlier.get("corpus") or {}).get("molecules")})
    return record
