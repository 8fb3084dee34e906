"""Extract frozen features for a list of texts into the feature cache (one or many processes).

Texts come from a .txt file (one per line), a table (.csv/.tsv/.jsonl/.json/.parquet, --column), or
a built-in task (--task: every row, in the id-sorted order that w2s run reads, so its
runs hit this cache whatever their split). The features
land in <cache_dir>/<fingerprint>/features.npy; the script prints the folder and the fingerprint,
and later runs (or `FrozenEncoder.encode(texts, cache_dir=...)` with the same settings) load it
without any forward pass. An interrupted run resumes from its finished shards.

    w2s extract --model packaged:all-MiniLM-L6-v2 \
        --input ../shared/data/ellipse/train.csv --column full_text --cache_dir outputs/features

    accelerate launch --multi_gpu --num_processes 2 w2s extract \
        --model packaged:all-MiniLM-L6-v2 --input ../shared/data/ellipse/train.csv \
        --column full_text --layer 3 --cache_dir outputs/features

(`--multi_gpu` also works on a CPU-only machine: processes then talk over gloo.) Options may also
come from `--config file.yaml` (keys = option names); the command line overrides the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2s_hf.errors import DiskFullError


@dataclass
class ExtractArgs:
    model: str = field(
        default="packaged:all-MiniLM-L6-v2",
        metadata={"help": "Hub id, local folder, or packaged:all-MiniLM-L6-v2 / packaged:all-mpnet-base-v2."},
    )
    input: str | None = field(
        default=None, metadata={"help": "Texts: .txt (one per line) or .csv/.tsv/.jsonl/.json/.parquet."}
    )
    column: str | None = field(
        default=None, metadata={"help": "Table column with the texts (default: 'input', else 'text')."}
    )
    task: str | None = field(default=None, metadata={"help": "Built-in task name instead of --input."})
    task_split: str = field(default="random", metadata={"help": "Split scheme of --task (random/scaffold)."})
    seed: int = field(default=0, metadata={"help": "Seed of the --task split."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N texts."})
    layer: int = field(default=-1, metadata={"help": "Hidden-state index (0 = embeddings, -1 = last)."})
    layers: list[int] | None = field(
        default=None, metadata={"help": "Several layers from one forward pass (overrides --layer)."}
    )
    pooling: str = field(default="mean", metadata={"help": "mean, cls or last."})
    max_length: int = field(default=512, metadata={"help": "Truncate inputs to this many tokens."})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})
    token_budget: int | None = field(
        default=None, metadata={"help": "Max tokens (rows x longest row) per batch (default: 2048 CPU, 16384 GPU)."}
    )
    shard_size: int = field(default=4096, metadata={"help": "Rows per cached shard (resume granularity)."})
    padding_side: str = field(default="right", metadata={"help": "right (default) or left."})
    cache_dir: str = field(default="outputs/features", metadata={"help": "Feature cache folder."})
    overwrite: bool = field(default=False, metadata={"help": "Recompute even if cached."})
    no_cache: bool = field(default=False, metadata={"help": "Neither read nor write the cache."})
    output: str | None = field(default=None, metadata={"help": "Also save the features to this .npy file."})


def parse_args(argv: list[str]) -> ExtractArgs:
    from w2s_hf.config import W2SArgumentParser

    (args,) = W2SArgumentParser(ExtractArgs).parse_args_and_config(argv)
    if (args.input is None) == (args.task is None):
        raise ValueError("pass exactly one of --input FILE or --task NAME.")
    return args


def read_texts(path: str, column: str | None) -> list[str]:
    """Texts from a .txt file (non-blank lines) or one column of a table; bad rows raise ValueError."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--input {path}: no such file.")
    if file.suffix == ".txt":
        return [line for line in file.read_text().splitlines() if line.strip()]
    from w2s_hf.data.sources import read_table

    table = read_table(file, "--input file")
    if column is None:
        column = next((c for c in ("input", "text") if c in table.columns), None)
        if column is None:
            raise ValueError(f"--input {path}: pass --column; columns are {list(table.columns)}.")
    if column not in table.columns:
        raise ValueError(f"--input {path}: no column {column!r}; columns are {list(table.columns)}.")
    values = table[column].tolist()
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(
            f"--input {path}, column {column!r}: rows {bad[:5]} (0-based data rows) are empty or not text; "
            f"drop or fill them first."
        )
    return values


def task_texts(name: str, split: str, seed: int) -> list[str]:
    from w2s_hf.data import canonical_inputs, load_task

    return canonical_inputs(load_task(name, split=split, seed=seed))[1]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    texts = read_texts(args.input, args.column) if args.input else task_texts(args.task, args.task_split, args.seed)
    if args.limit is not None:
        texts = texts[: args.limit]

    import torch
    from accelerate import PartialState

    from w2s_hf.features import FrozenEncoder

    # cpu=True without CUDA: otherwise `accelerate launch --multi_gpu` on a CPU machine would start
    # independent single processes instead of one gloo process group.
    state = PartialState(cpu=not torch.cuda.is_available())
    encoder = FrozenEncoder(
        args.model, revision=args.revision, layer=args.layer, pooling=args.pooling, max_length=args.max_length,
        dtype=args.dtype, trust_remote_code=args.trust_remote_code, token_budget=args.token_budget,
        shard_size=args.shard_size, padding_side=args.padding_side,
    )  # fmt: skip
    layers = args.layers or [args.layer]
    cache_dir = None if args.no_cache else args.cache_dir
    features = encoder.encode_layers(texts, layers, cache_dir, accelerator=state, overwrite=args.overwrite)
    if state.is_main_process:
        print(f"encoded {len(texts)} texts with {args.model} on {state.num_processes} process(es)")
        for layer, array in features.items():
            where = ""
            if cache_dir is not None:
                fingerprint = encoder.fingerprint(texts, layer)
                where = f" fingerprint={fingerprint} cache={Path(cache_dir).resolve() / fingerprint}"
            print(f"layer {layer}: shape={tuple(array.shape)}{where}")
        if args.output:
            _save_output(args.output, features, layers)
    state.wait_for_everyone()
    if state.num_processes > 1:
        state.destroy_process_group()


def _save_output(path: str, features: dict[int, np.ndarray], layers: list[int]) -> None:
    from w2s_hf.atomic import atomic_path

    out = Path(path)
    # One layer -> the array itself; several -> a stacked (layers, n, d) array.
    array = features[layers[0]] if len(layers) == 1 else np.stack([features[layer] for layer in layers])
    with atomic_path(out, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array, dtype=np.float32))
    print(f"saved {out}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, DiskFullError) as err:  # bad input, unavailable model, full disk: the message says what to do
        sys.exit(f"extract_features.py: error: {err}")
