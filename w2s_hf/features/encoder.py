"""FrozenEncoder: one float32 vector per text from any HuggingFace model, fast and cached.

    enc = FrozenEncoder("packaged:all-MiniLM-L6-v2", layer=-1, pooling="mean")
    X = enc.encode(texts, cache_dir="outputs/features")           # (n, 384) float32, caller's order
    by_layer = enc.encode_layers(texts, [2, 4, 6], cache_dir=...)  # one forward pass, cached per layer

How it stays fast: texts are tokenized once without padding, sorted longest first, and grouped into
batches of at most `token_budget` tokens (rows x longest row), padded per batch, so little compute
goes to padding (default budget: on GPU 16384 tokens; on CPU chosen from the texts' token lengths,
`cpu_token_budget`); forward passes run under `torch.inference_mode`; for a layer below the last,
the blocks above it are never run (layers.py). The batches are planned once over all rows and dealt
whole to shards (~65k tokens each, the unit of resumption) and to the processes of an `accelerate
launch`, so the features do not depend on the number of processes, bit for bit (sharding.py, cache.py).

Numbers depend on batch-mates only in the last bits: batches are right-padded by default, so
absolute position ids of real tokens never shift; pooling reads real tokens from the attention mask (pooling.py).
With `padding_side="left"` position ids are passed explicitly, and the model is checked once to
give the same vectors as with right padding.

Encoder-decoder models (T5, BART) use their encoder only. Decoder models without a pad token
(GPT-2, Llama) pad with their EOS token; padded positions are masked, so the choice is inert.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..progress import progress, quiet_library_bars
from ..threads import torch_threads
from .cache import FeatureCache, fingerprint_texts, make_fingerprint
from .hub import pooler_kwargs
from .layers import LayerReader
from .packaged import resolve_model_source
from .pooling import check_pooling, pool
from .prompts import check_inputs, input_key, require_chat_template, tokenize_inputs
from .sharding import Processes, cached_extract
from .tokens import tokenize_table

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip
DEFAULT_TOKEN_BUDGET = {False: 2048, True: 16384}  # by "is the device a GPU"
DEFAULT_SHARD_TOKENS = {False: 65536, True: 1 << 22}
AUTO_ROWS, AUTO_MIN_BUDGET, AUTO_MAX_BUDGET = 16, 2048, 8192  # the CPU default's rule (cpu_token_budget)
_PROBE_TEXTS = ["A short probe.", "A slightly longer probe sentence, to check how batches are padded."]


def plain_config_sizes(path: str | os.PathLike) -> tuple[int, int] | None:
    """(num_hidden_layers, hidden_size) of a local model folder whose config.json names both at its top
    level with a `model_type` (BERT-like encoders); None where only transformers can say (other names,
    nested text configs, encoder-decoders, no such file), and the caller reads `AutoConfig`."""
    import json

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        return None
    layers, width = config.get("num_hidden_layers"), config.get("hidden_size")
    nested = config.get("is_encoder_decoder") or "text_config" in config
    if type(layers) is not int or type(width) is not int or nested:
        return None
    return layers, width


def cpu_token_budget(lengths: np.ndarray, hidden_size: int | None) -> int:
    """The default CPU token budget for texts of these token `lengths`: about 16 typical rows a batch.

    Each batch pays fixed costs (a Python call per module, a thread barrier per op) that a batch of a
    few long rows does not amortise: essays at 2,048 tokens (8 a batch) ran at 0.72x a bare loop on a
    loaded machine, at 8,192 tokens at 0.98x (docs/performance.md). So 16 rows of the 75th percentile
    length, at least 2,048 tokens (short SMILES already get dozens of rows), at most 8,192 tokens for a
    model of width <= 768 and proportionally fewer for a wider one (activation memory grows with it).
    """
    typical = float(np.percentile(lengths, 75)) if len(lengths) else 0.0
    cap = max(AUTO_MIN_BUDGET, AUTO_MAX_BUDGET * 768 // max(768, int(hidden_size or 768)))
    return int(min(cap, max(AUTO_MIN_BUDGET, AUTO_ROWS * math.ceil(typical))))


def plan_batches(lengths: np.ndarray, token_budget: int, max_rows: int | None = None) -> list[slice]:
    """Consecutive slices with (rows x longest row) <= token_budget (a longer row gets a batch alone)."""
    batches, start, n = [], 0, len(lengths)
    while start < n:
        width, end = int(lengths[start]), start + 1
        while (end < n and (end - start + 1) * max(width, int(lengths[end])) <= token_budget
               and (max_rows is None or end - start < max_rows)):
            width = max(width, int(lengths[end]))
            end += 1
        batches.append(slice(start, end))
        start = end
    return batches


class FrozenEncoder:
    """A frozen HuggingFace model mapping texts to pooled hidden states (see the module docstring)."""

    def __init__(
        self,
        model_name_or_path: str,
        *,
        revision: str | None = None,
        layer: int = -1,
        pooling: str = "mean",
        max_length: int = 512,
        dtype: str = "float32",
        trust_remote_code: bool = False,
        token_budget: int | None = None,
        device: str | torch.device | None = None,
        padding_side: str = "right",
        shard_size: int = 4096,
        chat_template: bool = False,
        device_map: str | None = None,
    ):
        # Argument checks first: a bad value fails before anything is loaded.
        check_pooling(pooling)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; choose float32, bfloat16 or float16.")
        for arg, value in (("max_length", max_length), ("token_budget", token_budget), ("shard_size", shard_size)):
            if arg == "token_budget" and value is None:
                continue
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{arg}={value!r} must be a positive integer.")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side={padding_side!r} must be 'right' or 'left'.")
        self.model_id = model_name_or_path
        self.source = resolve_model_source(model_name_or_path, revision=revision)
        self.pooling, self.max_length, self.token_budget = pooling, max_length, token_budget
        self.dtype = str(_DTYPES[dtype]).removeprefix("torch.")
        self.padding_side, self.shard_size = padding_side, shard_size
        self.trust_remote_code = trust_remote_code
        self.device = torch.device(device) if device is not None else None
        # chat_template: inputs go through the tokenizer's chat template (features/prompts.py);
        # device_map="auto": one model spread over every visible GPU (a model larger than one GPU)
        self.chat_template, self.device_map = bool(chat_template), device_map
        if device_map not in (None, "auto"):
            raise ValueError(f"device_map={device_map!r} must be None or 'auto'.")

        self._config = None
        # the sizes from config.json where it states them plainly: a warm rerun then never imports
        # transformers (seconds on a busy machine) for a model whose features are all cached
        sizes = None if trust_remote_code else plain_config_sizes(self.source.path)
        self.num_layers, self.hidden_size = sizes or (getattr(self.config, "num_hidden_layers", None),
                                                      getattr(self.config, "hidden_size", None))
        self.layer = self._resolve_layer(layer)
        self._tokenizer = None
        self._model = None
        self._reader: LayerReader | None = None
        self._revision_key: str | None = None
        if self.chat_template:  # a tokenizer without one fails here, before any weights load
            self._load_tokenizer()

    def __repr__(self) -> str:
        return f"FrozenEncoder({self.model_id!r}, layer={self.layer}, pooling={self.pooling!r}, dtype={self.dtype!r})"

    # ---- public API -------------------------------------------------------------------------
    def fingerprint(self, texts: Sequence[str], layer: int | None = None) -> str:
        """Cache key of `texts` encoded by this encoder (at `layer`, default the encoder's layer)."""
        texts = _check_texts(texts)
        return make_fingerprint(self._fingerprint_parts(self._resolve_layer(layer), _data_fingerprint(texts)))

    def content_key(self) -> str:
        """What identifies the model's numbers: its Hub commit, or the content hash of its files."""
        if self._revision_key is None:
            self._revision_key = self.source.revision_key()
        return self._revision_key

    def encode(
        self,
        texts: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
        *,
        accelerator: Any = None,
        overwrite: bool = False,
        no_cache: bool = False,
        show_progress: bool = True,
    ) -> np.ndarray:
        """(n, d) float32 features of `texts`, rows in the order given (memory-mapped on a cache hit)."""
        out = self.encode_layers(
            texts, [self.layer], cache_dir, accelerator=accelerator, overwrite=overwrite,
            no_cache=no_cache, show_progress=show_progress,
        )  # fmt: skip
        return out[self.layer]

    def encode_layers(
        self,
        texts: Sequence[str],
        layers: Sequence[int],
        cache_dir: str | os.PathLike | None = None,
        *,
        accelerator: Any = None,
        overwrite: bool = False,
        no_cache: bool = False,
        show_progress: bool = True,
    ) -> dict[int, np.ndarray]:
        """{layer: (n, d) float32} for several layers from one forward pass, each cached on its own.

        Keys are the layers as given (negative indices stay negative). With `accelerator` (or inside
        an initialised process group) each process encodes a disjoint shard and all get the full result.
        """
        texts = _check_texts(texts)
        if isinstance(layers, int) or not layers:
            raise ValueError(f"layers={layers!r} must be a non-empty list of layer indices.")
        resolved = {layer: self._resolve_layer(layer) for layer in layers}
        wanted = list(dict.fromkeys(resolved.values()))
        results: dict[int, np.ndarray] = {}
        caches: dict[int, FeatureCache] = {}
        procs = Processes.from_accelerator(accelerator)
        if cache_dir is not None and not no_cache:
            data_fp = _data_fingerprint(texts)
            for layer in wanted:
                parts = self._fingerprint_parts(layer, data_fp, procs)
                caches[layer] = FeatureCache(cache_dir, make_fingerprint(parts), meta=parts)
            if not overwrite:
                loaded = {layer: caches[layer].load() for layer in wanted}
                results = {layer: array for layer, array in loaded.items() if array is not None}
        missing = [layer for layer in wanted if layer not in results]
        if procs.world > 1:
            # Every process must run the same collectives: extract what any process found missing.
            union = {layer for found in procs.gather([missing]) for layer in found}
            missing = [layer for layer in wanted if layer in union]
        if missing:
            results.update(self._extract(texts, missing, caches, procs, overwrite, show_progress))
        return {layer: results[resolved[layer]] for layer in layers}

    # ---- extraction -------------------------------------------------------------------------
    def _extract(self, texts, layers, caches, procs, overwrite, show_progress) -> dict[int, np.ndarray]:
        ids, type_ids, lengths = self._tokenize(texts, show_progress and procs.is_main)
        # The batches are planned once over all rows (longest first: the first batch shows OOM early)
        # and dealt whole to shards and processes, so a row always has the same batch-mates and the
        # same padding: the features are bitwise the same for any number of processes.
        order = np.argsort(-lengths, kind="stable")
        budget = self._budget(procs, lengths)
        batches = [order[part] for part in plan_batches(lengths[order], budget, self.shard_size)]
        batch_of = np.empty(len(texts), dtype=np.int64)
        for b, rows in enumerate(batches):
            batch_of[rows] = b
        tokens = int(sum(len(rows) * int(lengths[rows[0]]) for rows in batches))
        n_shards = max(math.ceil(len(texts) / self.shard_size), math.ceil(tokens / self._shard_tokens(procs)))

        def compute(rows: np.ndarray, advance) -> list[np.ndarray]:
            self._load_model(procs)
            out = [np.empty((len(rows), 0), np.float32)] * len(layers)
            cuts = [0, *(np.flatnonzero(np.diff(batch_of[rows])) + 1).tolist(), len(rows)]
            for start, stop in zip(cuts[:-1], cuts[1:]):
                part = slice(start, stop)
                batch = self._make_batch(ids, type_ids, rows[part])
                with torch.inference_mode():
                    hidden = self._reader(batch, layers)
                    pooled = [pool(hidden[layer], batch["attention_mask"], self.pooling) for layer in layers]
                for j, vectors in enumerate(pooled):
                    if out[j].shape[1] == 0:
                        out[j] = np.empty((len(rows), vectors.shape[1]), np.float32)
                    out[j][part] = vectors.cpu().numpy()
                advance(stop - start)
            return out

        with torch_threads(self._device_type(procs)):  # intra-op threads fitted to the free cores (threads.py)
            arrays = cached_extract(
                len(texts), compute, [caches[layer] for layer in layers] if caches else None, units=batches,
                n_shards=n_shards, accelerator=procs.state, overwrite=overwrite, show_progress=show_progress,
                desc=f"encode {os.path.basename(self.model_id.rstrip('/'))}",
            )  # fmt: skip
        return dict(zip(layers, arrays))

    @property
    def config(self) -> Any:
        """The model's transformers config (`AutoConfig`), read on first use."""
        if self._config is None:
            from transformers import AutoConfig

            self._config = AutoConfig.from_pretrained(self.source.path, trust_remote_code=self.trust_remote_code)
        return self._config

    def _device_type(self, procs: Processes | None = None) -> str:
        if self.device is not None:
            return self.device.type
        if procs is not None and procs.device is not None:
            return torch.device(procs.device).type
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _budget(self, procs: Processes | None = None, lengths: np.ndarray | None = None) -> int:
        """Tokens per batch (rows x longest row): the given budget, else the default for the device (on
        CPU from the token `lengths` of the texts to run, `cpu_token_budget`; without them, 2,048)."""
        if self.token_budget is not None:
            return self.token_budget
        gpu = self._device_type(procs) == "cuda"
        if gpu or lengths is None:
            return DEFAULT_TOKEN_BUDGET[gpu]
        return cpu_token_budget(lengths, self.hidden_size)

    def _budget_key(self, procs: Processes | None = None) -> int | str:
        """The budget as the cache key names it: the number, or the CPU rule (fixed by the texts, the model
        and max_length, all in the key, so equal keys still mean equal batches)."""
        if self.token_budget is not None or self._device_type(procs) == "cuda":
            return self._budget(procs)
        return f"auto-{AUTO_ROWS}x-p75-{AUTO_MIN_BUDGET}-{AUTO_MAX_BUDGET}"

    def _shard_tokens(self, procs: Processes | None = None) -> int:
        # A shard is the unit of resumption: ~10 s of work on two CPU cores for a MiniLM-sized model.
        return DEFAULT_SHARD_TOKENS[self._device_type(procs) == "cuda"]

    def _tokenize(self, texts: list, show_progress: bool = False) -> tuple[Any, Any, np.ndarray]:
        """(ids, type ids or None, lengths): row r's ids are ids[r]. Plain texts under right truncation go in
        chunks with a progress bar, long ones cut before tokenizing (tokens.py; the ids are those of the whole
        text, truncated). Chat-formatted texts, text pairs and left truncation (last-token pooling keeps a
        text's end) go through prompts.py whole."""
        tok = self._load_tokenizer()
        plain = not self.chat_template and getattr(tok, "truncation_side", "right") == "right" and all(
            isinstance(t, str) for t in texts)
        if plain:
            # a bar on a terminal, log lines elsewhere (no \r frames in logs)
            bar = progress(len(texts), "tokenize", enabled=show_progress)
            try:
                table = tokenize_table(tok, texts, self._effective_max_length(), progress=bar.update)
            finally:
                bar.close()
            ids, type_ids, lengths = table, table.types(), table.lengths
        else:
            ids, type_ids = tokenize_inputs(tok, texts, self._effective_max_length(), chat=self.chat_template)
            lengths = np.fromiter((len(seq) for seq in ids), dtype=np.int64, count=len(ids))
        empty = np.flatnonzero(lengths == 0)
        if len(empty):
            raise ValueError(
                f"texts{empty[:5].tolist()} tokenize to zero tokens (empty strings?) with {self.model_id!r}, "
                f"so there is nothing to pool; drop or fill those rows."
            )
        return ids, type_ids, lengths

    def _make_batch(self, ids, type_ids, rows: np.ndarray, padding_side: str | None = None) -> dict[str, torch.Tensor]:
        padding_side = padding_side or self.padding_side
        width = max(len(ids[r]) for r in rows)
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.full((len(rows), width), self._pad_type_id, dtype=np.int64) if type_ids is not None else None
        for i, r in enumerate(rows):
            n = len(ids[r])
            cols = slice(0, n) if padding_side == "right" else slice(width - n, width)
            input_ids[i, cols], mask[i, cols] = ids[r], 1
            if types is not None:
                types[i, cols] = type_ids[r]
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if types is not None and "token_type_ids" in self._forward_params:
            batch["token_type_ids"] = types
        if padding_side == "left" and "position_ids" in self._forward_params:
            batch["position_ids"] = np.maximum(mask.cumsum(axis=1) - 1, 0)
        return {key: torch.from_numpy(value).to(self._device) for key, value in batch.items()}

    # ---- lazy loading -----------------------------------------------------------------------
    def _load_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.source.path, trust_remote_code=self.trust_remote_code)
            if tok.pad_token_id is None:  # GPT-2 / Llama: padded positions are masked, any id will do
                if tok.eos_token is not None:
                    tok.pad_token = tok.eos_token
            self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
            self._pad_type_id = getattr(tok, "pad_token_type_id", 0) or 0
            if self.pooling == "last":  # truncate from the left: the pooled last token must survive truncation
                tok.truncation_side = "left"
            self._chat_key = require_chat_template(tok, self.model_id) if self.chat_template else None
            self._tokenizer = tok
        return self._tokenizer

    def _effective_max_length(self) -> int:
        limit = self._load_tokenizer().model_max_length
        if not limit or limit > 1_000_000:  # "no limit" sentinel: fall back to the position table
            limit = getattr(self.config, "max_position_embeddings", None)
        return min(self.max_length, limit) if limit else self.max_length

    def _load_model(self, procs: Processes) -> None:
        if self._model is not None:
            return
        import transformers
        from transformers import AutoModel

        quiet_library_bars()  # no "Loading weights" \r frames in a log file
        device = self.device or procs.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # transformers renamed `torch_dtype` to `dtype` in 4.56; older versions would silently ignore `dtype`
        old = tuple(int(x) for x in transformers.__version__.split(".")[:2]) < (4, 56)
        placement = {"device_map": self.device_map} if self.device_map else {}
        model_class = _auto_model_class(self.config)
        model = AutoModel.from_pretrained(
            self.source.path, trust_remote_code=self.trust_remote_code,
            **{"torch_dtype" if old else "dtype": _DTYPES[self.dtype]}, **placement,
            **(pooler_kwargs(self.source.path, model_class) if model_class is not None else {}),
        )  # fmt: skip
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # T5 / BART: the encoder's states represent the input
        model.eval().requires_grad_(False)
        if self.device_map:  # accelerate placed the layers; inputs go to the first layer's device
            device = next(model.parameters()).device
        else:
            model.to(device)
        self._model, self._device = model, device
        params = inspect.signature(model.forward).parameters
        self._forward_params = set(params)
        forward_kwargs = {"return_dict": True}
        if "use_cache" in params:
            forward_kwargs["use_cache"] = False  # no KV cache: we never generate
        ids, type_ids, _ = self._tokenize(_PROBE_TEXTS)
        probe = self._make_batch(ids, type_ids, np.arange(len(ids)), "right")
        self._reader = LayerReader.probe(model, probe, forward_kwargs)
        if self.num_layers is not None and self._reader.n_layers != self.num_layers:
            raise ValueError(
                f"{self.model_id!r}: config says {self.num_layers} layers but the model returns "
                f"{self._reader.n_layers + 1} hidden states; pass a non-negative layer index."
            )
        self.num_layers = self._reader.n_layers
        self.hidden_size = self._reader.hidden_size
        if self.padding_side == "left":
            self._check_left_padding(probe, self._make_batch(ids, type_ids, np.arange(len(ids)), "left"))

    def _check_left_padding(self, probe_right: dict[str, torch.Tensor], probe_left: dict[str, torch.Tensor]) -> None:
        with torch.inference_mode():
            layer = self._reader.n_layers
            right = pool(self._reader(probe_right, [layer])[layer], probe_right["attention_mask"], "mean")
            left = pool(self._reader(probe_left, [layer])[layer], probe_left["attention_mask"], "mean")
        tolerance = 1e-4 if self.dtype == "float32" else 3e-2  # half precision rounds differently per mask
        if not torch.allclose(left, right, rtol=tolerance, atol=tolerance):
            raise ValueError(
                f"padding_side='left' changes the outputs of {self.model_id!r} (its position ids cannot be "
                f"set per row); use padding_side='right'."
            )

    # ---- keys -------------------------------------------------------------------------------
    def _resolve_layer(self, layer: int | None) -> int:
        if layer is None:
            return self.layer
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
            raise ValueError(f"layer={layer!r} must be an integer hidden-state index.")
        layer = int(layer)
        if self.num_layers is None:
            if layer < 0:
                raise ValueError(f"{self.model_id!r} does not say how many layers it has; pass layer >= 0.")
            return layer
        if not -(self.num_layers + 1) <= layer <= self.num_layers:
            raise ValueError(
                f"layer={layer} is out of range for {self.model_id!r}, which has hidden states "
                f"0..{self.num_layers} (0 = embeddings, {self.num_layers} = last; negative counts from the end)."
            )
        return layer % (self.num_layers + 1)

    def _fingerprint_parts(self, layer: int, data_fingerprint: str, procs: Processes | None = None) -> dict[str, Any]:
        return {
            "featurizer": "frozen-encoder",
            "model": self.source.model_id,
            "revision": self.content_key(),
            "layer": layer,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dtype": self.dtype,
            "padding_side": self.padding_side,
            # batch-mates change the last bits (padding, summation order); the world size and the
            # shard layout do not, since whole batches are dealt to processes
            "token_budget": self._budget_key(procs),
            "max_batch_rows": self.shard_size,
            "data": data_fingerprint,
            # new keys only when set, so the features cached before they existed keep their keys
            **({"chat_template": self._chat_template_key()} if self.chat_template else {}),
            **({"truncation_side": "left"} if self.pooling == "last" else {}),
        }

    def _chat_template_key(self) -> str:
        import hashlib

        self._load_tokenizer()
        return hashlib.sha256(self._chat_key.encode()).hexdigest()[:16]


def _check_texts(texts: Sequence) -> list:
    return check_inputs(texts)


def _data_fingerprint(texts: list) -> str:
    """The texts' fingerprint; a pair is keyed apart from any text (plain texts keep their old keys)."""
    return fingerprint_texts([input_key(t) for t in texts])


def _auto_model_class(config: Any) -> type | None:
    """The class `AutoModel` builds for `config` (None for remote code or an unknown model type)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except (KeyError, ValueError):
        return None
