"""One GPU check (issue 16): extraction in bf16, exact heads, SMILES pretraining, shipped launch configs.

    bash scripts/benchmarks/gpu_check.sh                     # on the GPU machine; writes $OUT/gpu_check.json
    python scripts/benchmarks/gpu_check.py --smoke --out /tmp/g   # tiny sizes on CPU: tests the script itself

Sections (each runs on its own; a failure is recorded with its error and the rest go on):
  extract   FrozenEncoder vs a bare model(**batch) loop over the same sorted batches vs batch size 1,
            for all-mpnet-base-v2 and a randomly initialised Llama with 7B dimensions (built from its
            config, no download), bf16; tokens/s and the fraction of the GPU's bf16 dense peak
            (model FLOPs ~ 2 * params * tokens). Targets: >= 0.95x bare, >= 5x batch size 1, >= 50% peak (7B).
  heads     float32 features -> float64 statistics: fit_exact on the CPU against X^T X in float64 and
            in float32 on the GPU, with the coefficient error of each against a float64 reference.
  pretrain  the SMILES recipe in bf16 with transformers.Trainer against a bare loop (bench_pretrain).
  launch    `accelerate launch` through single_gpu.yaml and fsdp.yaml (num_processes 1) of a tiny run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


@dataclass
class GpuCheckArgs:
    out: str = field(default_factory=lambda: os.environ.get("OUT", "runs/gpu_check"),
                     metadata={"help": "Output folder."})
    smoke: bool = field(default=False, metadata={"help": "Tiny sizes (CPU allowed): checks the script runs."})
    sections: list[str] = field(default_factory=lambda: ["extract", "heads", "pretrain", "launch"],
                                metadata={"help": "Which sections to run."})
    n_texts: int = field(default=4000, metadata={"help": "Inputs per extraction benchmark."})
    n_batch1: int = field(default=200, metadata={"help": "Inputs for the batch-size-1 baseline."})


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def _texts(n: int) -> list[str]:
    words = "the a student school learn home class because think good time work idea people help".split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 300)))) for _ in range(n)]


def _tiny_llama(smoke: bool) -> str:
    """A Llama folder with 7B dimensions (smoke: tiny ones), random weights, saved in bf16."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    folder = Path(tempfile.mkdtemp(prefix="llama7b_"))
    dims = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000)
    if smoke:
        dims = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=4, vocab_size=512)
    config = LlamaConfig(**dims, max_position_embeddings=4096)
    with torch.device(_device()):
        model = LlamaModel(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    vocab = {f"w{i}": i for i in range(dims["vocab_size"] - 1)} | {"[UNK]": dims["vocab_size"] - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[UNK]").save_pretrained(folder)
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return str(folder)


def section_extract(args: GpuCheckArgs) -> dict:
    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.encoder import plan_batches

    out = {}
    models = {"all-mpnet-base-v2": "packaged:all-mpnet-base-v2", "llama-7b-shape": _tiny_llama(args.smoke)}
    if args.smoke:
        models = {"llama-7b-shape (smoke: tiny)": models["llama-7b-shape"]}
    for label, name in models.items():
        texts = _texts(args.n_texts)
        enc = FrozenEncoder(name, dtype="bfloat16" if torch.cuda.is_available() else "float32", max_length=512)
        enc.encode(texts[:8], show_progress=False)  # load the model (and warm the kernels) outside the clock
        _sync()
        start = time.perf_counter()
        enc.encode(texts, show_progress=False)
        _sync()
        t_enc = time.perf_counter() - start
        ids, type_ids, lengths = enc._tokenize(texts)
        tokens = int(lengths.sum())
        order = np.argsort(-lengths, kind="stable")
        batches = [order[s] for s in plan_batches(lengths[order], enc._budget(lengths=lengths), enc.shard_size)]
        model = enc._model
        _sync()
        start = time.perf_counter()
        with torch.inference_mode():
            for rows in batches:
                model(**enc._make_batch(ids, type_ids, rows))
        _sync()
        t_bare = time.perf_counter() - start
        n1 = min(args.n_batch1, len(texts))
        _sync()
        start = time.perf_counter()
        with torch.inference_mode():
            for r in range(n1):
                model(**enc._make_batch(ids, type_ids, np.array([r])))
        _sync()
        t_one = (time.perf_counter() - start) * len(texts) / n1
        params = sum(p.numel() for p in model.parameters())
        peak = _peak_tflops()
        achieved = 2 * params * tokens / t_enc / 1e12
        out[label] = {
            "params": params, "tokens": tokens, "dtype": str(next(model.parameters()).dtype),
            "tokens_per_s": {"frozen_encoder": tokens / t_enc, "bare_loop": tokens / t_bare,
                             "batch_size_1": tokens / t_one},
            "vs_bare": t_bare / t_enc, "vs_batch1": t_one / t_enc, "tflops": achieved,
            "fraction_of_bf16_peak": achieved / peak if peak else None,
        }  # fmt: skip
        del enc, model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def section_heads(args: GpuCheckArgs) -> dict:
    from w2s_hf.heads import fit_exact

    n, d = (20_000, 64) if args.smoke else (1_000_000, 4096)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = X[:, : min(d, 16)].sum(axis=1) + rng.standard_normal(n).astype(np.float32)
    out = {"n": n, "d": d}
    start = time.perf_counter()
    head = fit_exact(X, y)
    out["cpu_fit_exact_s"] = time.perf_counter() - start
    ref = np.asarray(head.weight, dtype=np.float64).ravel()
    dev = _device()
    for dtype in (torch.float64, torch.float32):
        _sync()
        start = time.perf_counter()
        gram = torch.zeros((d + 1, d + 1), dtype=dtype, device=dev)
        rhs = torch.zeros(d + 1, dtype=dtype, device=dev)
        for lo in range(0, n, 65536):
            xb = torch.from_numpy(X[lo : lo + 65536]).to(dev, non_blocking=True).to(dtype)
            xb = torch.cat([xb, torch.ones((len(xb), 1), dtype=dtype, device=dev)], dim=1)
            gram += xb.T @ xb
            rhs += xb.T @ torch.from_numpy(y[lo : lo + 65536]).to(dev).to(dtype)
        coef = torch.linalg.solve(gram.double(), rhs.double())
        _sync()
        key = "gpu_gram_float64" if dtype == torch.float64 else "gpu_gram_float32"
        w = coef[:d].cpu().numpy()
        out[key] = {"s": time.perf_counter() - start, "max_coef_error": float(np.max(np.abs(w - ref)))}
    return out


def section_pretrain(args: GpuCheckArgs) -> dict:
    sys.path.insert(0, str(REPO / "scripts" / "benchmarks"))
    import bench_pretrain

    argv = ["--hidden_size", "192", "--num_layers", "4", "--num_heads", "6", "--steps", "30", "--batch_size", "256",
            "--repeats", "1", "--n_descriptors", "200"]
    if args.smoke:
        argv = ["--hidden_size", "32", "--num_layers", "2", "--num_heads", "2", "--steps", "2", "--warmup", "1",
                "--batch_size", "16", "--repeats", "1", "--n_descriptors", "20"]
    return bench_pretrain.main(argv)


def section_launch(args: GpuCheckArgs) -> dict:
    out = {}
    configs = {"single_gpu.yaml": [], "fsdp.yaml": ["--num_processes", "1"]}
    for name, extra in configs.items():
        run_dir = tempfile.mkdtemp(prefix="launch_")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "accelerate_configs" / name), *extra, str(REPO / "scripts" / "train_w2s.py"),
               "--output_dir", run_dir, "--report_to", "none"]
        if args.smoke:  # the smallest shipped model in both seats: the launch path, not the numbers
            cmd += ["--strong_model", "packaged:smiles-bert-h64-l2-mtr", "--strong_layer", "1"]
        if not torch.cuda.is_available():
            cmd.insert(3 + 2, "--cpu")
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        out[name] = {"rc": done.returncode, "s": round(time.perf_counter() - start, 1),
                     "error": None if done.returncode == 0 else done.stderr[-1500:]}
    return out


SECTIONS = {"extract": section_extract, "heads": section_heads, "pretrain": section_pretrain,
            "launch": section_launch}


def main(argv: list[str] | None = None) -> dict:
    from w2s_hf.config import W2SArgumentParser

    (args,) = W2SArgumentParser(GpuCheckArgs).parse_args_and_config(argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report: dict = {"device": device, "torch": torch.__version__, "smoke": args.smoke, "sections": {}}
    for name in args.sections:
        start = time.perf_counter()
        try:
            report["sections"][name] = {"ok": True, **SECTIONS[name](args)}
        except Exception as err:  # a failing section is a finding, not the end of the check
            report["sections"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                        "traceback": traceback.format_exc()[-2000:]}
        report["sections"][name]["wall_s"] = round(time.perf_counter() - start, 1)
        print(f"[{name}] {json.dumps(report['sections'][name], default=str)[:1500]}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "gpu_check.json", "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    return report


if __name__ == "__main__":
    main()
