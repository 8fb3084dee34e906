"""The pretraining recipe's keys (`PretrainConfig`, read from YAML by `w2s pretrain`) and its data.

`load_corpus` gives the corpus a config asks for (the shipped sources, or a SMILES file, optionally a
seeded `limit`), and `held_out_split` the molecules held out for the val losses. Every check that
can fail on the user's input runs in `PretrainConfig.validate`, before any work.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import PretrainDataError, parse_sources
from .output import OutputFolder

OBJECTIVES = ("mlm", "mlm+mtr")


def _help(text: str, **extra: Any) -> dict:
    return {"help": text, **extra}


@dataclass
class PretrainConfig:
    """Every key of a pretraining run (read from YAML by `w2s pretrain`)."""

    output_dir: str | None = field(default=None, metadata=_help("Folder of the saved model (a plain HF folder)."))
    objective: str = field(default="mlm+mtr", metadata=_help("mlm, or mlm+mtr (MolBERT / ChemBERTa-2).",
                                                             choices=list(OBJECTIVES)))
    hidden_size: int = field(default=128, metadata=_help("Hidden width."))
    num_layers: int = field(default=4, metadata=_help("Transformer blocks."))
    num_heads: int = field(default=4, metadata=_help("Attention heads."))
    max_length: int = field(default=128, metadata=_help("Token truncation length in pretraining."))
    max_position: int = field(default=256, metadata=_help("Position table size (task SMILES run longer)."))
    dropout: float = field(default=0.1, metadata=_help("Hidden and attention dropout."))
    mtr_weight: float = field(default=1.0, metadata=_help("Weight of the descriptor loss against the MLM loss."))
    enumerate_prob: float = field(default=0.5, metadata=_help("Probability of a random SMILES spelling per row."))
    mlm_probability: float = field(default=0.15, metadata=_help("Fraction of tokens masked (80/10/10 rule)."))
    epochs: float = field(default=10.0, metadata=_help("Passes over the training molecules."))
    max_steps: int = field(default=-1, metadata=_help("Optimiser steps; overrides epochs when > 0."))
    batch_size: int = field(default=256, metadata=_help("Molecules per step, summed over processes."))
    lr: float = field(default=2e-3, metadata=_help("Peak learning rate (AdamW)."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay."))
    warmup_ratio: float = field(default=0.05, metadata=_help("Fraction of steps of linear warmup."))
    scheduler: str = field(default="cosine", metadata=_help("Learning-rate schedule after warmup.",
                                                            choices=["cosine", "linear", "constant_with_warmup"]))
    sampling: str = field(default="random", metadata=_help(
        "Which molecules share a batch: random (default), or group_by_length, which saves padding but "
        "makes a batch's descriptors alike and stalls the MTR loss; padding is saved anyway by the "
        "length-grouped chunks of chunk_tokens.", choices=["random", "group_by_length"]))
    chunk_tokens: int = field(default=2048, metadata=_help(
        "Each batch runs as length-sorted chunks of at most this many tokens (rows x longest row); 0: one chunk."))
    seed: int = field(default=0, metadata=_help("Seed of the model init, the held-out split, masking and data order."))
    val_fraction: float = field(default=0.05, metadata=_help("Corpus molecules held out for val losses."))
    max_chars: int = field(default=120, metadata=_help("Corpus SMILES longer than this are dropped."))
    limit: int | None = field(default=None, metadata=_help("Use only this many corpus molecules (tests, trials)."))
    corpus_file: str | None = field(default=None, metadata=_help("A text file of SMILES (one a line) instead of "
                                                                 "the shipped sources; task molecules are removed."))
    sources: str = field(default="moleculeace,rdkit_nci", metadata=_help(
        "Comma-separated corpus sources: moleculeace, rdkit_nci, moses (MOSES needs "
        "pip install --no-deps molsets==0.3.1)."))
    moses_molecules: int | None = field(default=None, metadata=_help(
        "Rows of MOSES train drawn (by corpus_seed) before parsing; default all 1,584,663."))
    corpus_seed: int = field(default=0, metadata=_help("Seed of the MOSES subset (apart from seed, so a new "
                                                       "training seed keeps the corpus)."))
    init_from: str | None = field(default=None, metadata=_help(
        "Continue from this pretrained folder or packaged:<name> (its encoder and tokenizer; fresh heads); "
        "the architecture keys must be its own."))
    descriptor_workers: int = field(default=2, metadata=_help("Processes computing descriptors on a cache miss."))
    dataloader_workers: int = field(default=0, metadata=_help(
        "DataLoader worker processes making batches (masking, SMILES enumeration); a GPU needs several."))
    cache_dir: str | None = field(default=None, metadata=_help("Descriptor cache (default: the feature cache)."))
    save_dtype: str = field(default="float16", metadata=_help("dtype of the saved weights.",
                                                              choices=["float16", "bfloat16", "float32"]))
    logging_steps: int = field(default=50, metadata=_help("Steps between logged losses."))
    eval_steps: int = field(default=500, metadata=_help("Steps between val losses."))
    save_steps: int = field(default=200, metadata=_help(
        "Steps between checkpoints (in .<output_dir name>.partial/); a rerun of the same recipe resumes from "
        "the newest, so a kill loses at most this many steps."))
    name: str | None = field(default=None, metadata=_help("Model name for the card (default: the folder name)."))
    overwrite: bool = field(default=False, metadata=_help(
        "Replace an existing output_dir that holds a model pretrained by this script (nothing else is "
        "replaced), and discard checkpoints of another recipe."))
    # the YAML file read, recorded for the model card; set by the script, not a flag (hidden from --help)
    config_file: str | None = field(default=None, metadata=_help(argparse.SUPPRESS))

    def validate(self) -> "PretrainConfig":
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: choose one of {', '.join(OBJECTIVES)}.")
        for key in ("hidden_size", "num_layers", "num_heads", "max_length", "batch_size", "max_position"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"{key}={getattr(self, key)!r} must be a positive integer.")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction={self.val_fraction} must lie in (0, 0.5).")
        if self.corpus_file is not None:
            if not Path(self.corpus_file).is_file():
                raise FileNotFoundError(f"corpus_file={self.corpus_file!r} does not exist or is not a file.")
            read_corpus_file(self.corpus_file)  # a binary file is refused here, before any work
        parse_sources(self.sources)
        if self.moses_molecules is not None and self.moses_molecules <= 0:
            raise ValueError(f"moses_molecules={self.moses_molecules} must be a positive number of rows.")
        if self.save_steps <= 0:
            raise ValueError(f"save_steps={self.save_steps} must be a positive number of steps.")
        if self.cache_dir is not None and Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            raise NotADirectoryError(f"cache_dir={self.cache_dir!r} is a file, not a folder.")
        OutputFolder(self.output_dir).check(self.overwrite)
        if self.init_from is not None:
            from .warm_start import check_architecture

            check_architecture(self)
        return self


def load_corpus(cfg: PretrainConfig):
    from .corpus import Corpus, build_corpus, corpus_from_smiles

    if cfg.corpus_file is None:
        corpus = build_corpus(parse_sources(cfg.sources), max_chars=cfg.max_chars,
                              moses_molecules=cfg.moses_molecules, seed=cfg.corpus_seed)
    else:
        lines = read_corpus_file(cfg.corpus_file)
        corpus = corpus_from_smiles(lines, max_chars=cfg.max_chars, counts={"rows_file": len(lines)},
                                    source=cfg.corpus_file)
    smiles = corpus.smiles
    if cfg.limit is not None:
        smiles = sorted(np.random.default_rng(cfg.seed).permutation(smiles)[: cfg.limit].tolist())
    if len(smiles) < 20:
        raise PretrainDataError(f"the corpus has {len(smiles)} molecules after filtering; at least 20 are needed.")
    return Corpus(smiles, corpus.counts)


def read_corpus_file(path: str) -> list[str]:
    """Non-empty lines of a text file of SMILES (or its .gz); a binary file is a one-line error naming its first
    bad byte."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip: a prepared corpus travels compressed (gpu_pretrain.py --prepare)
        import gzip

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise PretrainDataError(f"corpus_file={path!r} is a damaged gzip file ({err}).") from None
    try:
        text = raw.decode("utf-8")
        bad = text.find("\x00")
    except UnicodeDecodeError as err:
        bad = err.start
    if bad >= 0:
        line = raw[:bad].count(b"\n") + 1
        raise PretrainDataError(f"corpus_file={path!r} is not a text file of SMILES (byte {raw[bad:bad + 1]!r} at "
                                f"offset {bad}, line {line}); give one SMILES a line, UTF-8.")
    return [s.strip() for s in text.splitlines() if s.strip()]


def held_out_split(cfg: PretrainConfig, n: int) -> dict[str, np.ndarray]:
    """{"train", "val"} sorted corpus rows: `val_fraction` of them held out by a permutation of `seed`."""
    perm = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, int(round(cfg.val_fraction * n)))
    return {"train": np.sort(perm[n_val:]), "val": np.sort(perm[:n_val])}
