"""Benchmark the SMILES pretraining recipe: the Trainer against a bare torch loop, and descriptor throughput.

    python scripts/benchmarks/bench_pretrain.py                      # h128/4 layers, 40 batches of 256
    python scripts/benchmarks/bench_pretrain.py --hidden_size 192 --steps 20 --json runs/bench_pretrain.json

(a) Training: one set of batches is made once (masked, enumerated SMILES with descriptor targets) and
fed in the same order to `transformers.Trainer` (through `w2s_hf.pretraining`'s loss-logging Trainer)
and to a bare loop (forward, backward, AdamW step), each from the same initial weights. Tokens/s
counts real (unpadded) tokens of the timed steps, after `--warmup` untimed steps. Target: Trainer
>= 0.9x the bare loop. (b) Descriptors: all RDKit descriptors of `--n_descriptors` corpus molecules with
1 and 2 worker processes. Only `--molecules` molecules of the corpus are drawn (by default as many as
the batches use), so the benchmark never pays for descriptors of the whole corpus.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class BenchArgs:
    hidden_size: int = field(default=128, metadata={"help": "Model width."})
    num_layers: int = field(default=4, metadata={"help": "Transformer blocks."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    batch_size: int = field(default=256, metadata={"help": "Molecules per step."})
    steps: int = field(default=40, metadata={"help": "Timed steps per method."})
    warmup: int = field(default=3, metadata={"help": "Untimed steps first."})
    repeats: int = field(default=2, metadata={"help": "Timings per method (alternating); the best is reported."})
    n_descriptors: int = field(default=2000, metadata={"help": "Molecules for the descriptor benchmark."})
    molecules: int = field(default=0, metadata={"help": "Corpus molecules drawn (seeded) for the batches; 0: "
                                                "batch_size x (warmup + steps), at least n_descriptors. Only these "
                                                "are parsed and descriptorised, never the whole corpus."})
    json: str | None = field(default=None, metadata={"help": "Write the figures here too."})


def bench_molecules(args: BenchArgs) -> list[str]:
    """A seeded sample of the default corpus: canonical, unique, no task molecule (as the corpus builder does),
    of only as many molecules as the benchmark uses, so a run (and its test) costs no whole-corpus work."""
    from w2s_hf.pretraining.corpus import DEFAULT_SOURCES, corpus_from_smiles, read_source

    n = args.molecules or max(args.batch_size * (args.warmup + args.steps), args.n_descriptors, args.batch_size)
    raw = [s for name in DEFAULT_SOURCES for s in read_source(name)]
    pick = np.random.default_rng(0).permutation(len(raw))[: int(n * 1.1) + 20]  # a few are dropped as duplicates
    smiles = corpus_from_smiles([raw[i] for i in pick]).smiles
    return [smiles[i] for i in np.sort(np.random.default_rng(1).permutation(len(smiles))[:n])]


def make_batches(args: BenchArgs):
    from w2s_hf.config import default_cache_dir
    from w2s_hf.pretraining.descriptors import descriptor_targets
    from w2s_hf.pretraining.model import MLMAndMTRCollator
    from w2s_hf.pretraining.tokenizer import build_smiles_tokenizer

    smiles = bench_molecules(args)
    if len(smiles) < args.batch_size:
        raise ValueError(f"molecules={args.molecules} is fewer than batch_size={args.batch_size}.")
    workers = 2 if len(smiles) > 2000 else 1  # a pool's start-up costs more than a few hundred molecules
    targets, _ = descriptor_targets(smiles, np.arange(len(smiles)), default_cache_dir(), num_workers=workers)
    tok = build_smiles_tokenizer(smiles)
    rng = np.random.default_rng(0)
    collator = MLMAndMTRCollator(tok, enumerate_prob=0.5, seed=0)
    torch.manual_seed(0)
    batches = []
    for _ in range(args.warmup + args.steps):
        rows = rng.choice(len(smiles), args.batch_size, replace=False)
        batches.append(collator([{"smiles": smiles[i], "descriptors": targets[i]} for i in rows]))
    return tok, targets.shape[1], batches, smiles


def bare_loop(model, batches, warmup: int, lr: float) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def trainer_loop(model, batches, warmup: int, lr: float, workdir: str) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from w2s_hf.pretraining.train import _LossPartsTrainer

    class Clock(TrainerCallback):
        start = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warmup:
                Clock.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            Clock.stop = time.perf_counter()

    class Premade(torch.utils.data.Dataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return i

    args = TrainingArguments(
        output_dir=workdir, per_device_train_batch_size=1, learning_rate=lr, weight_decay=0.01, max_steps=len(batches),
        lr_scheduler_type="constant", logging_steps=50, save_strategy="no", report_to=[], use_cpu=True,
        train_sampling_strategy="sequential", remove_unused_columns=False, disable_tqdm=True,
        dataloader_num_workers=0, max_grad_norm=0.0,
    )  # fmt: skip
    trainer = type("T", (_LossPartsTrainer, Trainer), {})(
        model=model, args=args, train_dataset=Premade(), data_collator=lambda items: batches[items[0]],
        callbacks=[Clock()],
    )
    trainer.train()
    return Clock.stop - Clock.start


def main(argv: list[str] | None = None) -> dict:
    import tempfile

    from w2s_hf.config import W2SArgumentParser
    from w2s_hf.pretraining.descriptors import compute_descriptors
    from w2s_hf.pretraining.model import BertForMaskedLMAndMTR, make_config

    (args,) = W2SArgumentParser(BenchArgs).parse_args_and_config(argv)
    tok, n_targets, batches, smiles = make_batches(args)
    tokens = int(sum(int(b["attention_mask"].sum()) for b in batches[args.warmup :]))
    torch.manual_seed(0)
    model = BertForMaskedLMAndMTR(make_config(len(tok), hidden_size=args.hidden_size, num_layers=args.num_layers,
                                              num_heads=args.num_heads, max_position=256, num_mtr_targets=n_targets,
                                              mtr_weight=5.0))
    times = {"bare": [], "trainer": []}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeats):  # alternate, so a noisy neighbour hurts both alike
            times["bare"].append(bare_loop(copy.deepcopy(model), batches, args.warmup, 1e-3))
            times["trainer"].append(trainer_loop(copy.deepcopy(model), batches, args.warmup, 1e-3, work))
    rate = {k: tokens / min(v) for k, v in times.items()}
    sample = smiles[: args.n_descriptors]
    desc = {}
    for workers in (1, 2):
        start = time.perf_counter()
        compute_descriptors(sample, num_workers=workers)
        desc[workers] = len(sample) / (time.perf_counter() - start)
    out = {
        "model": {"hidden_size": args.hidden_size, "num_layers": args.num_layers,
                  "parameters": int(sum(p.numel() for p in model.bert.parameters()))},
        "batch_size": args.batch_size, "timed_steps": args.steps, "real_tokens": tokens,
        "tokens_per_s": {k: round(v, 1) for k, v in rate.items()},
        "smiles_per_s": {k: round(args.batch_size * args.steps / min(v), 1) for k, v in times.items()},
        "trainer_vs_bare": round(rate["trainer"] / rate["bare"], 3),
        "all_timings_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "descriptors_per_s": {f"{k}_process{'es' if k > 1 else ''}": round(v, 1) for k, v in desc.items()},
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    print(f"model h{args.hidden_size}/{args.num_layers} layers, {out['model']['parameters']:,} parameters, "
          f"{args.steps} steps of {args.batch_size} molecules ({tokens:,} real tokens)")
    print(f"  bare torch loop  {rate['bare']:>10,.0f} tokens/s   {out['smiles_per_s']['bare']:>7,.1f} SMILES/s")
    print(f"  Trainer          {rate['trainer']:>10,.0f} tokens/s   {out['smiles_per_s']['trainer']:>7,.1f} SMILES/s"
          f"   ({out['trainer_vs_bare']:.3f}x; target >= 0.9x: {'PASS' if out['trainer_vs_bare'] >= 0.9 else 'FAIL'})")
    print(f"  descriptors: {desc[1]:,.1f} molecules/s with 1 process, {desc[2]:,.1f} with 2 "
          f"({desc[2] / desc[1]:.2f}x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
