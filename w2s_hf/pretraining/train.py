"""Pretrain a SMILES BERT with `transformers.Trainer` (masked LM, optionally + descriptor regression).

    cfg = PretrainConfig(output_dir="models/smiles-bert-h128", hidden_size=128, num_layers=4)
    summary = pretrain(cfg)   # under `accelerate launch` the Trainer runs DDP over the processes

The keys and the corpus loading are in recipe.py, the output folder (lock, checkpoints, resume) in
output.py. Steps: build the corpus (corpus.py), hold out `val_fraction` of it (by a seeded permutation) for the
val losses, build the tokenizer on the training molecules, compute or load the cached descriptors and
fit their scaler on the training molecules, train, then save the encoder alone (`BertModel`, cast to
`save_dtype`) with the tokenizer, the scaler and a model card (card.py) into `output_dir`. The folder
is written under a temporary name and renamed into place, so a failed run never leaves half a model,
and an existing folder is replaced only with `overwrite` and only when it holds a model of this recipe.
Checkpoints every `save_steps`; a rerun of the same recipe resumes from the newest (`init_from`
continues from an earlier model instead: warm_start.py).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .corpus import PretrainDataError  # noqa: F401 - re-exported: the script catches it from here
from .output import OutputFolder, OutputFolderError, run_identity
from .recipe import OBJECTIVES, PretrainConfig, held_out_split, load_corpus, read_corpus_file  # noqa: F401

logger = logging.getLogger(__name__)


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

    from ..features.cache import default_cache_dir
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
