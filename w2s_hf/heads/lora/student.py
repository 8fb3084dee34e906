"""`LoraStudent`: a transformer with a LoRA adapter, read like `FrozenEncoder` reads it, and a linear head.

The module is the `AutoModel` of a `FrozenEncoder`, run up to the encoder's layer by the same
`LayerReader` (blocks above it never run), pooled over the attention mask by the same `pool`, then
a head named `head`: a `torch.nn.Linear` for regression, or for classification the k-head mixture
`w2s_hf.heads.mixture.KHeadMixture` in float64, loaded from a `MixtureHead` (original coordinates), whose
outputs are the mixture's log-probabilities (`predict` returns probabilities). It is wrapped with
`peft.get_peft_model(module, LoraConfig(target_modules=..., modules_to_save=["head"]))`. The head
starts at the linear student's head (exact ridge, or the fitted k-head mixture) and LoRA's B matrices
start at zero, so before any step the student predicts what the linear student predicts on the cached
features (Kumar et al. 2022: linear probe, then finetune). With the adapter disabled the module gives
the frozen features again.

Only blocks below the read layer are adapted (an adapter above it would get no gradient, which DDP
refuses). Target modules are inferred from the model type (peft's table, plus MPNet and DistilBERT)
or given as name suffixes (`lora_target_modules`); a name that matches no module, or a read layer
of 0 (the embeddings: no block to adapt), is a `ConfigError` before anything is trained.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...atomic import follow_umask
from ...errors import ConfigError
from ...features.encoder import FrozenEncoder, plan_batches
from ...features.layers import find_blocks
from ...features.pooling import pool
from ...threads import torch_threads
from ..linear import LinearHead
from ..mixture import KHeadMixture, MixtureHead

# model_type -> attention projections adapted by default (peft's table covers BERT, RoBERTa, GPT-2,
# Llama-style and T5 models; these fill the gaps it leaves for encoders the toolkit reads).
_EXTRA_TARGETS = {"mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}
RECORD = "w2s_student.json"


def default_targets(model_type: str) -> list[str] | None:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    found = _EXTRA_TARGETS.get(model_type) or PEFT_TARGETS.get(model_type)
    return list(found) if found else None


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def lora_target_names(backbone: nn.Module, model_type: str, layer: int, n_layers: int,
                      targets: list[str] | None, model_id: str = "") -> list[str]:
    """Full names (under `backbone.`) of the modules to adapt: `targets` (suffixes) in blocks below `layer`."""
    wanted = list(targets) if targets else default_targets(model_type)
    if not wanted:
        raise ConfigError(f"lora_target_modules is not set and no default is known for model type {model_type!r} "
                          f"({model_id}); name its attention projections, e.g. --lora_target_modules q_proj v_proj.")
    if layer == 0:
        raise ConfigError(f"layer 0 of {model_id} is the embedding output: a LoRA student needs a layer >= 1 "
                          "(blocks below it are adapted).")
    names = [name for name, _ in backbone.named_modules() if name]
    unknown = [t for t in wanted if not any(_matches(n, t) for n in names)]
    if unknown:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.named_modules()
                         if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"})
        raise ConfigError(f"lora_target_modules={wanted!r}: {unknown} name no module of {model_id} "
                          f"({model_type}); its linear layers are named {leaves}.")
    blocks = find_blocks(backbone, n_layers)
    if blocks is None:
        raise ConfigError(f"{model_id}: its transformer blocks cannot be found, so the blocks below layer {layer} "
                          "cannot be chosen for LoRA.")
    prefix = next(name for name, module in backbone.named_modules() if module is blocks)
    below = tuple(f"{prefix}.{i}." for i in range(layer))
    chosen = [n for n in names if any(_matches(n, t) for t in wanted) and n.startswith(below)]
    if not chosen:
        raise ConfigError(f"lora_target_modules={wanted!r} match no module in the blocks below layer {layer} "
                          f"of {model_id}.")
    return ["backbone." + n for n in chosen]


def check_lora_targets(encoder: Any, targets: list[str] | None) -> list[str]:
    """Resolve the target modules of `encoder`'s model on the meta device (no weights): errors come first."""
    if not isinstance(encoder, FrozenEncoder):
        raise ConfigError(f"a LoRA student needs a transformer, not {type(encoder).__name__} ({encoder!r}).")
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(encoder.config, trust_remote_code=encoder.trust_remote_code)
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    return lora_target_names(model, encoder.config.model_type, encoder.layer, encoder.num_layers, targets,
                             encoder.model_id)


def head_module(d: int, k: int, n_classes: int | None = None) -> nn.Module:
    """The student's head: `nn.Linear(d, k)` (regression), or (classification) a float64 mixture of k
    softmax heads over `n_classes` classes."""
    if n_classes is None:
        return nn.Linear(d, k)
    return KHeadMixture(d, n_classes, k).to(torch.float64)


class PooledHead(nn.Module):
    """backbone up to `layer` -> pooling over the attention mask -> `head` (its input cast to the head's dtype)."""

    def __init__(self, backbone: nn.Module, reader: Any, layer: int, pooling: str, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.reader, self.layer, self.pooling = reader, layer, pooling
        self.head_dtype = next(head.parameters()).dtype

    def pooled(self, **batch: torch.Tensor) -> torch.Tensor:
        return pool(self.reader(batch, [self.layer])[self.layer], batch["attention_mask"], self.pooling)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        features = self.pooled(**batch)
        return self.head(features.to(self.head_dtype))


class LoraStudent:
    """A peft-wrapped `PooledHead` over a fresh `FrozenEncoder`'s model (see the module docstring).

    `init_head`: a `LinearHead` (regression) or a `MixtureHead` (classification: `n_classes` is set).
    """

    def __init__(self, encoder: FrozenEncoder, init_head: LinearHead | MixtureHead, *, r: int = 8,
                 alpha: float = 16.0, dropout: float = 0.0, target_modules: list[str] | None = None, seed: int = 0,
                 accelerator: Any = None, predict_token_budget: int | None = None):
        from peft import LoraConfig, get_peft_model

        if r < 1:
            raise ConfigError(f"lora_r={r} must be >= 1.")
        targets = check_lora_targets(encoder, target_modules)
        if isinstance(init_head, MixtureHead):
            self.n_classes, self.output_1d = init_head.n_classes, False
            head = KHeadMixture.from_head(init_head)
            d, k = init_head.in_features, init_head.k
        else:
            self.n_classes, self.output_1d = None, init_head.output_1d
            d, k = init_head.in_features, init_head.out_features
            head = head_module(d, k)
            with torch.no_grad():
                head.weight.copy_(torch.as_tensor(init_head.weight.T))
                head.bias.copy_(torch.as_tensor(init_head.bias))
        self.in_features, self.k, self.predict_token_budget = d, k, predict_token_budget
        module = self._attach(encoder, accelerator, head)
        # GPT-2's Conv1D stores its weight transposed (peft would fix it with a warning)
        conv1d = any(type(m).__name__ == "Conv1D" for n, m in module.named_modules() if n in targets)
        self.lora_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                                      modules_to_save=["head"], bias="none", fan_in_fan_out=conv1d)
        torch.manual_seed(seed)  # LoRA's A matrices: the same draw on every process and every run
        self.model = get_peft_model(module, self.lora_config)
        self.targets = targets
        self.train_mode(False)

    def _attach(self, encoder: FrozenEncoder, accelerator: Any, head: nn.Module) -> PooledHead:
        """Load `encoder`'s model (it becomes this student's: the encoder reloads its own if asked again)."""
        from ...distributed import Processes

        self.procs = Processes.from_accelerator(accelerator)
        # with no accelerator inside a running process group, gather through the group's state
        self.encoder, self.accelerator = encoder, accelerator if accelerator is not None else self.procs.state
        encoder._load_model(self.procs)
        backbone, reader = encoder._model, encoder._reader
        encoder._model = encoder._reader = None
        d = self.in_features
        if d != reader.hidden_size:
            raise ValueError(f"the head reads {d} features but {encoder.model_id} has hidden size "
                             f"{reader.hidden_size}.")
        self.device = next(backbone.parameters()).device
        module = PooledHead(backbone, reader, encoder.layer, encoder.pooling, head).to(self.device)
        self.head_dtype = module.head_dtype
        return module

    @property
    def n_outputs(self) -> int:
        """Columns of `outputs` and `predict`: the targets (regression) or the classes."""
        return self.k if self.n_classes is None else self.n_classes

    # ------------------------------------------------------------------ modes and batches
    def train_mode(self, on: bool) -> None:
        """The base model always runs in eval mode (no dropout: 1 and N processes draw no masks);
        only LoRA's own dropout (`lora_dropout`, 0 by default) is switched on for training steps."""
        self.model.eval()
        if on:
            for name, module in self.model.named_modules():
                if name.endswith("lora_dropout") or ".lora_dropout." in name:
                    module.train()

    def tokenize(self, texts: list[str]) -> tuple[list, list | None, np.ndarray]:
        return self.encoder._tokenize(texts)

    def batch(self, tokens: tuple, rows: np.ndarray) -> dict[str, torch.Tensor]:
        ids, type_ids, _ = tokens
        return self.encoder._make_batch(ids, type_ids, rows)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    # ------------------------------------------------------------------ predictions
    def _run(self, texts: list[str], fn, tokens: tuple | None = None, width: int | None = None) -> np.ndarray:
        """fn(batch) on every row of `texts`, batches dealt to processes, gathered per example."""
        from ...distributed import gather_predictions

        tokens = tokens or self.tokenize(texts)
        lengths = tokens[2]
        order = np.argsort(-lengths, kind="stable")
        budget = self.predict_token_budget or self.encoder._budget(self.procs, lengths)
        batches = [order[s] for s in plan_batches(lengths[order], budget)]
        mine = batches[self.procs.rank::self.procs.world]
        pos, out = [], []
        with torch.inference_mode(), torch_threads(self.device):  # threads fitted to the free cores (threads.py)
            for rows in mine:
                out.append(fn(self.batch(tokens, rows)).double().cpu().numpy())
                pos.append(rows)
        local_pos = np.concatenate(pos) if pos else np.zeros(0, np.int64)
        local = np.concatenate(out) if out else np.zeros((0, width or self.n_outputs))
        got_pos, got = gather_predictions(self.accelerator, local_pos, local)
        got = np.asarray(got)[np.argsort(np.asarray(got_pos), kind="stable")]
        if len(got) != len(texts):
            raise RuntimeError(f"gathered {len(got)} rows for {len(texts)} texts")
        return got

    def outputs(self, texts: list[str], tokens: tuple | None = None) -> np.ndarray:
        """(n, k) module outputs of every text, what the losses read: predictions (regression) or
        log-probabilities (classification). All processes call it; every process gets all rows."""
        self.train_mode(False)
        return self._run(texts, lambda batch: self.model(**batch), tokens)

    def as_predictions(self, outputs: np.ndarray) -> np.ndarray:
        """`outputs` as the pipeline's predictions: unchanged (regression) or class probabilities."""
        return outputs if self.n_classes is None else np.exp(outputs)

    def predict(self, texts: list[str], tokens: tuple | None = None) -> np.ndarray:
        """(n, k) predictions of every text: values (regression) or (n, c) class probabilities."""
        return self.as_predictions(self.outputs(texts, tokens))

    predict_texts = predict  # the pipeline's name for "predict from inputs, not from cached features"

    def frozen_features(self, texts: list[str]) -> np.ndarray:
        """(n, d) pooled features with the adapter disabled: the linear student's features."""
        self.train_mode(False)
        inner = self.model.base_model.model
        with self.model.disable_adapter():
            return self._run(texts, lambda batch: inner.pooled(**batch), width=self.in_features)

    # ------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike, record: dict[str, Any] | None = None) -> None:
        """`save_pretrained` into a temporary folder beside `folder`, then renamed into place."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.model.save_pretrained(str(tmp))
            meta = {"format": "w2s_hf.LoraStudent", "model": self.encoder.model_id, "layer": self.encoder.layer,
                    "pooling": self.encoder.pooling, "max_length": self.encoder.max_length,
                    "dtype": self.encoder.dtype, "in_features": self.in_features, "out_features": self.n_outputs,
                    "n_classes": self.n_classes, "k_heads": self.k if self.n_classes else None,
                    "output_1d": self.output_1d, "target_modules": self.targets, **(record or {})}
            (tmp / RECORD).write_text(json.dumps(meta, indent=1, default=str))
            follow_umask(tmp)  # mkdtemp and safetensors make them owner-only
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def load(cls, folder: str | os.PathLike, encoder: FrozenEncoder, accelerator: Any = None) -> LoraStudent:
        """A student saved by `save`, on `encoder` (the same model, layer and pooling it was trained on)."""
        from peft import PeftModel

        folder = Path(folder)
        meta_path = folder / RECORD
        if not meta_path.is_file():
            raise ValueError(f"{folder} is not a saved LoRA student (no {RECORD}).")
        meta = json.loads(meta_path.read_text())
        for key in ("layer", "pooling"):
            if meta[key] != getattr(encoder, key):
                raise ValueError(f"{folder} was trained at {key}={meta[key]!r}, the encoder has "
                                 f"{getattr(encoder, key)!r}.")
        student = cls.__new__(cls)
        student.n_classes = meta.get("n_classes")  # absent in folders saved before classification students
        student.in_features = meta["in_features"]
        student.k = meta["k_heads"] if student.n_classes else meta["out_features"]
        module = student._attach(encoder, accelerator, head_module(student.in_features, student.k, student.n_classes))
        student.output_1d, student.targets = meta["output_1d"], meta["target_modules"]
        student.predict_token_budget = None
        student.model = PeftModel.from_pretrained(module, str(folder))
        student.lora_config = student.model.peft_config["default"]
        student.train_mode(False)
        return student
