"""Benchmark the LoRA student's training (`w2s_hf.heads.lora.train_lora`) against a bare peft + torch loop.

    python scripts/benchmarks/bench_lora.py                                   # ESOL SMILES, strong SMILES BERT
    python scripts/benchmarks/bench_lora.py --model packaged:all-MiniLM-L6-v2 --texts essays --n 256

Both train the same module on the same batches: the model, read at `--layer` with mean pooling, LoRA
(r 8) on the default targets of the blocks below that layer and a linear head, with the batches of
`w2s_hf.heads.lora.plan_epoch` (seed 0, `--token_budget` tokens each). The bare loop is what a user would
write: `AutoModel` + `peft.get_peft_model`, `output_hidden_states`, masked mean, MSE, `AdamW`,
`backward`, `step`. The toolkit's run also plans batches, sets the learning rate per step, splits
batches across processes (one here) and evaluates at step 0 and at the end (on 8 rows: about 7% of
the 8-step MiniLM essays run, far less of the SMILES run's many steps).

Method: each (mode, repeat) runs in a fresh subprocess that loads the model and tokenizes before the
clock starts; tokens/s = padded tokens of the training steps (rows x longest row, summed) / wall
seconds of the training call. The modes alternate (toolkit, bare, toolkit, bare, ...), so a burst of
load on the shared machine hits both; the median of `--repeats` runs per mode is reported (the lower
median for an even count) and the ratio of the two medians. Peak memory: the process's peak
resident set size (ru_maxrss) on CPU, minus its size before training; `torch.cuda.max_memory_allocated`
on GPU. Target (issue 15): toolkit >= 0.9x the bare loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class BenchArgs:
    model: str = "packaged:smiles-bert-h192-l4-mtr"
    layer: int = -1
    texts: str = "esol"  # esol (SMILES of the built-in task) or essays (synthetic essays, w2s_hf.data.fixtures)
    n: int = 1024
    max_length: int = 128
    token_budget: int = 2048
    epochs: int = 1
    repeats: int = 3
    mode: str = ""  # internal: "toolkit" or "bare" runs one measurement in this process


def _texts(args: BenchArgs) -> list[str]:
    if args.texts == "esol":
        from w2s_hf.data import load_task

        task = load_task("esol", split="random", seed=0)
        texts = [t for s in task.splits.values() for t in s["input"]]
    else:
        import tempfile

        from w2s_hf.data.fixtures import write_synthetic_ellipse

        path = write_synthetic_ellipse(os.path.join(tempfile.mkdtemp(), "essays.csv"), n=args.n, seed=0)
        import pandas as pd

        texts = list(pd.read_csv(path)["full_text"])
    return texts[: args.n]


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: BenchArgs) -> dict:
    import torch

    from w2s_hf.features.encoder import FrozenEncoder
    from w2s_hf.heads import LinearHead
    from w2s_hf.heads.lora import LoraStudent, plan_epoch, train_lora

    torch.manual_seed(0)
    texts = _texts(args)
    Y = np.random.default_rng(0).normal(size=(len(texts), 1))
    enc = FrozenEncoder(args.model, layer=args.layer, max_length=args.max_length)
    d = enc.hidden_size
    head = LinearHead(np.zeros((d, 1)), np.zeros(1))
    student = LoraStudent(enc, head, r=8, alpha=16)
    cuda = torch.cuda.is_available()
    if args.mode == "toolkit":
        base = _rss_mib()
        start = time.perf_counter()
        fit = train_lora(student, texts, Y, {"val": texts[:8]}, "val", Y[:8], lr=1e-4, epochs=args.epochs,
                         token_budget=args.token_budget, eval_every=10**9, patience=10**9)
        seconds, tokens = time.perf_counter() - start, fit.tokens
    else:
        # the bare loop: the same peft targets on a plain AutoModel, the same batches
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        # float32, as FrozenEncoder loads it (the shipped SMILES models are stored in float16)
        model = AutoModel.from_pretrained(enc.source.path, dtype=torch.float32)
        model.eval().requires_grad_(False)
        targets = [t.removeprefix("backbone.") for t in student.targets]
        wrapper = torch.nn.ModuleDict({"backbone": model, "head": torch.nn.Linear(d, 1)})
        peft_model = get_peft_model(wrapper, LoraConfig(r=8, lora_alpha=16, target_modules=targets,
                                                        modules_to_save=["head"]))
        net = peft_model.base_model.model
        tokens_ = student.tokenize(texts)
        plans = [plan_epoch(tokens_[2], args.token_budget, 0, e) for e in range(args.epochs)]
        batches = [[student.batch(tokens_, rows), torch.as_tensor(Y[rows], dtype=torch.float32)]
                   for plan in plans for rows in plan]
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
        layer = enc.layer
        base = _rss_mib()
        start = time.perf_counter()
        tokens = 0
        for batch, y in batches:
            out = net["backbone"](**batch, output_hidden_states=True).hidden_states[layer]
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pred = net["head"]((out * mask).sum(1) / mask.sum(1))
            loss = ((pred - y) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tokens += batch["input_ids"].numel()
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mib() - base
    return {"mode": args.mode, "tokens": int(tokens), "seconds": seconds, "tokens_per_s": tokens / seconds,
            "peak_mib": peak, "memory": "cuda max allocated" if cuda else "ru_maxrss growth"}


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser

    (args,) = W2SArgumentParser(BenchArgs).parse_args_and_config(argv)
    if args.mode:
        print(json.dumps(measure(args)))
        return 0
    passed = [a for a in (argv if argv is not None else sys.argv[1:])]
    runs: dict[str, list[dict]] = {"toolkit": [], "bare": []}
    for _ in range(args.repeats):
        for mode in runs:  # alternate, so drifts of a shared machine hit both
            out = subprocess.run([sys.executable, __file__, *passed, "--mode", mode], capture_output=True,
                                 text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    median = {m: sorted(r, key=lambda x: x["tokens_per_s"])[(len(r) - 1) // 2] for m, r in runs.items()}
    for mode, r in median.items():
        print(f"{mode:8s} {r['tokens_per_s']:9.0f} tokens/s  ({r['tokens']} tokens, {r['seconds']:.1f} s)  "
              f"peak {r['peak_mib']:.0f} MiB ({r['memory']})  all: "
              + ", ".join(f"{x['tokens_per_s']:.0f}" for x in runs[mode]))
    pairs = [t["tokens_per_s"] / b["tokens_per_s"] for t, b in zip(runs["toolkit"], runs["bare"])]
    print(f"toolkit / bare: {median['toolkit']['tokens_per_s'] / median['bare']['tokens_per_s']:.2f}x "
          f"(ratio of the medians; per alternated pair: {', '.join(f'{x:.2f}' for x in pairs)}; target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
