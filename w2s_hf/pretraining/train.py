"""Pretrain a SMILES BERT with `transformers.Trainer` (masked LM, optionally + descriptor regression).

    cfg = PretrainConfig(output_dir="models/smiles-bert-h128", hidden_size=128, num_layers=4)
    summary = pretrain(cfg)   # under `accelerate launch` the Trainer runs DDP over the processes

Steps: build the corpus (corpus.py), hold out `val_fraction` of it (by a seeded permutation) for the
val losses, build the tokenizer on the training molecules, compute or load the cached descriptors and
fit their scaler on the training molecules, train, then save the encoder alone (`BertModel`, cast to
`save_dtype`) with the tokenizer, the scaler and a model card (card.py) into `output_dir`. The folder
is written under a temporary name and renamed into place, so a failed run never leaves half a model
and an existing folder is replaced only with `overwrite`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .corpus import PretrainDataError, parse_sources  # PretrainDataError: the script catches it from here
from .output import OutputFolder, OutputFolderError, run_identity

logger = logging.getLogger(__name__)

OBJECTIVES = ("mlm", "mlm+mtr")


def _help(text: str, **extra: Any) -> dict:
    return {"help": text, **extra}


@dataclass
class PretrainConfig:
    """Every key of a pretraining run (read from YAML by scripts/pretrain_smiles.py)."""

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


def _datasets(smiles, targets, tokenizer, splits):
    import datasets

    lengths = np.array([len(ids) for ids in tokenizer(smiles, add_special_tokens=True)["input_ids"]])
    out = {}
    for name, rows in splits.items():
        data = {"smiles": [smiles[i] for i in rows], "length": lengths[rows].tolist()}
        if targets is not None:
            data["descriptors"] = targets[rows]
        out[name] = datasets.Dataset.from_dict(data)
    return out


class _LossPartsTrainer:  # mixed into transformers.Trainer at run time (import kept lazy)
    """Logs the two losses apart (`mlm_loss`, `mtr_loss`, and `eval_` ones), averaged over processes."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None, **kwargs):
        outputs = model(**inputs)
        loss = outputs["loss"]
        masked = (inputs["labels"] != -100).sum()
        world = self.accelerator.num_processes
        if model.training and world > 1 and num_items_in_batch is not None:
            # The MLM mean must be over the masked tokens of the whole global batch (the Trainer counts
            # them across processes), times the world size that DDP's gradient average divides by;
            # the MTR mean is per row and every process holds as many rows, so it averages correctly.
            local = masked.clamp(min=1)
            loss = loss + outputs["mlm_sum"] * (world / num_items_in_batch - 1.0 / local)
        # Sums and counts, reduced over processes when logged: the logged losses are the global batch
        # means whatever the number of processes.
        bucket = "_train_parts" if model.training else "_eval_parts"
        parts = self.__dict__.setdefault(bucket, [])
        rows = torch.tensor(float(len(inputs["input_ids"])))
        parts.append(torch.stack([outputs["mlm_sum"].detach().float(), masked.float(),
                                  outputs["mtr_loss"].detach().float() * rows, rows]))
        return (loss, outputs) if return_outputs else loss

    def _drain(self, bucket: str, prefix: str = "") -> dict[str, float]:
        parts = self.__dict__.get(bucket) or []
        if not parts:
            return {}
        total = self.accelerator.reduce(torch.stack(parts).sum(dim=0).to(self.accelerator.device), "sum")
        parts.clear()
        mlm, masked, mtr, rows = (float(v) for v in total)
        return {prefix + "mlm_loss": round(mlm / max(masked, 1.0), 5),
                prefix + "mtr_loss": round(mtr / max(rows, 1.0), 5)}

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:
            logs.update(self._drain("_train_parts"))
        return super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args, **kwargs):
        self._drain("_eval_parts")
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        output.metrics.update(self._drain("_eval_parts", prefix + "_"))
        return output


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Run the recipe; returns the summary also written to `output_dir/pretraining.json`."""
    from accelerate import PartialState

    from .output import OutputFolder

    cfg.validate()
    # cpu=True is what makes `accelerate launch --multi_gpu` on a CPU machine a gloo process group; the
    # state is a singleton, so it must be set up this way before the Trainer's own accelerator reads it.
    state = PartialState(cpu=not torch.cuda.is_available())
    folder = OutputFolder(cfg.output_dir)
    with ExitStack() as stack:
        # The main process holds the lock and prepares the work folder; every process learns the outcome
        # (an error is raised by all of them, so none waits for the others at a collective).
        outcome: list[Any] = [None, None]
        if state.is_main_process:
            try:
                stack.enter_context(folder.lock())
                folder.check(cfg.overwrite)  # again under the lock: another run may have finished meanwhile
                outcome[1] = folder.resume_from(run_identity(cfg), cfg.overwrite)
            except (OSError, ValueError) as err:
                outcome[0] = f"{type(err).__name__}: {err}" if not isinstance(err, OutputFolderError) else str(err)
        if state.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(outcome)
        if outcome[0] is not None:
            raise OutputFolderError(outcome[0])
        return _pretrain_locked(cfg, state, folder, resume=outcome[1])


def _pretrain_locked(cfg: PretrainConfig, state, folder, resume: str | None) -> dict[str, Any]:
    from transformers import Trainer, set_seed

    from ..config import default_cache_dir
    from .card import write_model_card
    from .descriptors import descriptor_targets
    from .model import BertForMaskedLMAndMTR, MLMAndMTRCollator, make_config
    from .output import checkpoint_callback, epoch_callback
    from .tokenizer import build_smiles_tokenizer
    from .warm_start import load_start_encoder, start_tokenizer

    started = time.time()
    corpus = load_corpus(cfg)
    smiles = corpus.smiles
    splits = held_out_split(cfg, len(smiles))
    train_rows = splits["train"]
    if cfg.init_from:
        tokenizer = start_tokenizer(cfg)
    else:
        tokenizer = build_smiles_tokenizer([smiles[i] for i in train_rows], model_max_length=cfg.max_position)

    targets, scaler = None, None
    if cfg.objective == "mlm+mtr":
        with state.main_process_first():  # one process computes, the others read the cache
            targets, scaler = descriptor_targets(smiles, train_rows, cfg.cache_dir or default_cache_dir(),
                                                 num_workers=cfg.descriptor_workers)

    data = _datasets(smiles, targets, tokenizer, splits)
    set_seed(cfg.seed)
    config = make_config(len(tokenizer), hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                         num_heads=cfg.num_heads, max_position=cfg.max_position,
                         num_mtr_targets=0 if scaler is None else len(scaler.names), mtr_weight=cfg.mtr_weight,
                         dropout=cfg.dropout, chunk_tokens=cfg.chunk_tokens)
    model = BertForMaskedLMAndMTR(config)
    started_from = load_start_encoder(model, cfg) if cfg.init_from else None
    world = state.num_processes
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes.")
    trainer_cls = type("PretrainTrainer", (_LossPartsTrainer, Trainer), {})
    collator = MLMAndMTRCollator(tokenizer, max_length=cfg.max_length, mlm_probability=cfg.mlm_probability,
                                 enumerate_prob=cfg.enumerate_prob, seed=cfg.seed)
    trainer = trainer_cls(model=model, args=_training_args(cfg, folder.checkpoints, world),
                          train_dataset=data["train"], eval_dataset=data["val"], data_collator=collator,
                          callbacks=[epoch_callback(collator), checkpoint_callback(world)])
    if resume and state.is_main_process:
        logger.warning("resuming %s from %s", cfg.output_dir, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    history = [dict(h) for h in trainer.state.log_history]
    final_eval = trainer.evaluate()
    summary = {
        "name": cfg.name or Path(cfg.output_dir).name,
        "config": asdict(cfg),
        "corpus": {"fingerprint": corpus.fingerprint, "molecules": len(smiles), "counts": corpus.counts,
                   "train": int(len(train_rows)), "val": int(len(smiles) - len(train_rows))},
        "parameters": int(sum(p.numel() for p in model.bert.parameters())),
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "processes": world,
        "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 1),
        "resumed_from": resume and Path(resume).name,
        "init_from": started_from,
        "final": _final_losses(history, final_eval),
        "history": history,
        "wall_s": round(time.time() - started, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if state.is_main_process:
        _save(cfg, model, tokenizer, scaler, summary, folder)
        write_model_card(Path(cfg.output_dir), summary)
    state.wait_for_everyone()
    return summary


def _training_args(cfg: PretrainConfig, checkpoints: Path, world: int):
    from transformers import TrainingArguments

    gpu = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=cfg.batch_size // world,
        per_device_eval_batch_size=cfg.batch_size // world, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.scheduler, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, seed=cfg.seed, data_seed=cfg.seed, bf16=gpu, logging_steps=cfg.logging_steps,
        eval_strategy="steps", eval_steps=cfg.eval_steps, report_to=[],
        # two checkpoints kept: a kill while the newest is written leaves the one before it complete
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        train_sampling_strategy=cfg.sampling, length_column_name="length", remove_unused_columns=False,
        dataloader_num_workers=cfg.dataloader_workers, disable_tqdm=True, prediction_loss_only=True,
        ddp_find_unused_parameters=False,
        use_cpu=not gpu,
    )  # fmt: skip


def _final_losses(history: list[dict], final_eval: dict) -> dict[str, float | None]:
    train = [h for h in history if "mlm_loss" in h]
    last = train[-1] if train else {}
    return {
        "train_mlm_loss": last.get("mlm_loss"), "train_mtr_loss": last.get("mtr_loss"),
        "val_mlm_loss": final_eval.get("eval_mlm_loss"), "val_mtr_loss": final_eval.get("eval_mtr_loss"),
        "val_loss": final_eval.get("eval_loss"),
        "first_train_mlm_loss": train[0].get("mlm_loss") if train else None,
        "first_train_mtr_loss": train[0].get("mtr_loss") if train else None,
    }  # fmt: skip


def _save(cfg, model, tokenizer, scaler, summary, output) -> None:
    """Write the model into the work folder, then rename it onto `output_dir` (replacing only a model)."""
    from .output import is_pretrained_folder

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[cfg.save_dtype]
    folder = output.work / "model"
    shutil.rmtree(folder, ignore_errors=True)
    encoder = copy.deepcopy(model.bert).to("cpu").to(dtype)  # a copy: the Trainer's model stays float32
    encoder.config.architectures = ["BertModel"]
    for key in ("num_mtr_targets", "mtr_weight", "chunk_tokens"):
        if hasattr(encoder.config, key):
            delattr(encoder.config, key)
    encoder.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if scaler is not None:
        scaler.save(folder / "descriptor_scaler.json")
    (folder / "pretraining.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    out = output.out
    if out.exists():
        if not is_pretrained_folder(out):  # checked before training; checked again before anything is deleted
            raise OutputFolderError(f"{out} is no longer a pretrained model folder; the new model is kept in "
                                    f"{folder}.")
        shutil.rmtree(out)
    os.replace(folder, out)
    shutil.rmtree(output.work, ignore_errors=True)
