"""Pretrain the largest SMILES BERT one GPU call allows, evaluate it, and pack it for the trip back (issue 24.3).

    python scripts/benchmarks/gpu_pretrain.py --prepare runs/gpu_corpus.smi.gz     # here: the corpus, one .gz file
    bash scripts/benchmarks/gpu_pretrain.sh                 # on the device: run(..., carry=["runs/gpu_corpus.smi.gz"])
    python scripts/benchmarks/gpu_pretrain.py --smoke --out /tmp/g                 # tiny, on the CPU: tests the script

The device has no network and no molsets, so the corpus travels as the canonical SMILES of the config's
sources (`--prepare`, a few MB gzipped; its fingerprint is the corpus's). On the device:

1. descriptors of the whole corpus with every CPU core (cached under `$OUT/cache`);
2. a probe: `--probe_steps` steps of the config on a seeded sample, which gives steps/s;
3. the run: max_steps = steps/s x the seconds left of `--budget_min`, transformers.Trainer in bf16;
4. its QSAR ceilings (`--eval_seeds`), and the model folder packed as tar parts of at most
   `--part_mib` MiB (the trip back allows 8 files of 16 MiB), with gpu_pretrain.json: device, minutes,
   steps/s, parameters, ceilings. Unpack here with `cat model.tar.part* | tar x -C runs/pretrain`.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--hidden_size", "32", "--num_layers", "2", "--num_heads", "2", "--batch_size", "16", "--eval_steps", "5",
         "--save_steps", "5", "--dataloader_workers", "0", "--descriptor_workers", "1", "--save_dtype", "float32"]


@dataclass
class GpuPretrainArgs:
    config: str = field(default=str(REPO / "scripts/configs/pretrain/smiles-bert-h512-l8-gpu.yaml"),
                        metadata={"help": "The recipe (its max_steps is replaced by the budget's)."})
    corpus: str = field(default="runs/gpu_corpus.smi.gz", metadata={"help": "The prepared corpus file."})
    prepare: str | None = field(default=None, metadata={"help": "Write the config's corpus to this .gz and stop."})
    out: str = field(default_factory=lambda: os.environ.get("OUT", "runs/gpu_pretrain"),
                     metadata={"help": "Output folder (the device brings back what is here)."})
    budget_min: float = field(default=4.5, metadata={"help": "Minutes of training (the probe and the run)."})
    probe_steps: int = field(default=20, metadata={"help": "Steps of the speed probe."})
    probe_molecules: int = field(default=20000, metadata={"help": "Corpus sample of the probe (>= its batches)."})
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Split seeds of the ceilings."})
    part_mib: int = field(default=15, metadata={"help": "Size of each packed part."})
    smoke: bool = field(default=False, metadata={"help": "Tiny model and corpus on the CPU: checks the script."})


def prepare_corpus(config: str, path: str, smoke: bool) -> dict:
    from w2s_hf.pretraining.cli import parse_pretrain_args
    from w2s_hf.pretraining.train import load_corpus

    extra = ["--sources", "rdkit_nci", "--limit", "300"] if smoke else []
    cfg = parse_pretrain_args(["--config", config, "--output_dir", str(Path(path).with_suffix(".unused")), *extra])
    corpus = load_corpus(cfg)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(corpus.smiles) + "\n")
    return {"molecules": len(corpus.smiles), "fingerprint": corpus.fingerprint, "bytes": Path(path).stat().st_size}


def _pretrain(args: GpuPretrainArgs, output_dir: Path, corpus: str, extra: list[str]) -> dict:
    from w2s_hf.pretraining.cli import parse_pretrain_args
    from w2s_hf.pretraining.train import pretrain

    argv = ["--config", args.config, "--output_dir", str(output_dir), "--corpus_file", corpus, "--cache_dir",
            str(Path(args.out) / "cache"), "--overwrite", "true", *(SMOKE if args.smoke else []), *extra]
    if not args.smoke:
        argv += ["--descriptor_workers", str(os.cpu_count() or 1)]
    return pretrain(parse_pretrain_args(argv))


def probe(args: GpuPretrainArgs, work: Path) -> float:
    """Steps/s of the recipe, measured on a seeded sample of the corpus (its descriptors are computed apart)."""
    lines = gzip.open(args.corpus, "rt").read().split()
    sample = [lines[i] for i in np.sort(np.random.default_rng(0).permutation(len(lines))[: args.probe_molecules])]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "probe.smi"
    path.write_text("\n".join(sample) + "\n")
    summary = _pretrain(args, work / "probe", str(path), ["--max_steps", str(args.probe_steps), "--eval_steps",
                                                            str(10 * args.probe_steps), "--val_fraction", "0.05"])
    return summary["steps"] / max(summary["train_runtime_s"], 1e-3)


def pack(folder: Path, out: Path, part_mib: int) -> list[str]:
    """tar the model folder into parts of at most `part_mib` MiB (no compression: bf16 weights do not shrink)."""
    for old in out.glob("model.tar.part*"):
        old.unlink()
    subprocess.run(f"tar cf - -C {folder.parent} {folder.name} | split -b {part_mib}m -d - {out}/model.tar.part",
                   shell=True, check=True)
    return sorted(p.name for p in out.glob("model.tar.part*"))


def main(argv: list[str] | None = None) -> dict:
    import torch

    from w2s_hf.cli import W2SArgumentParser
    from w2s_hf.pretraining.evaluate import evaluate_checkpoints

    (args,) = W2SArgumentParser(GpuPretrainArgs).parse_args_and_config(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.prepare or args.smoke:
        prepared = prepare_corpus(args.config, args.prepare or str(out / "corpus.smi.gz"), args.smoke)
        print(f"prepared {prepared}", flush=True)
        if args.prepare:
            return prepared
        args.corpus = str(out / "corpus.smi.gz")
    started = time.time()
    report: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                    "cpu_cores": os.cpu_count(), "torch": torch.__version__, "smoke": args.smoke}
    # 1. descriptors of the whole corpus with every core: the probe and the run then read the cache
    from w2s_hf.pretraining.descriptors import cached_descriptors

    smiles = gzip.open(args.corpus, "rt").read().split()
    t0 = time.time()
    cached_descriptors(sorted(set(smiles)), out / "cache", num_workers=1 if args.smoke else (os.cpu_count() or 1))
    report["descriptors_s"] = round(time.time() - t0, 1)
    # 2. the probe, 3. the run sized by it
    rate = probe(args, out / "work")
    left_s = args.budget_min * 60 - (time.time() - started - report["descriptors_s"])
    steps = max(args.probe_steps, int(rate * max(left_s, 0.0) * 0.9))  # 10% for the evaluations and the save
    report.update(probe_steps_per_s=round(rate, 3), max_steps=steps)
    print(f"probe: {rate:.2f} steps/s -> max_steps {steps}", flush=True)
    folder = out / "work" / Path(args.config).stem
    summary = _pretrain(args, folder, args.corpus, ["--max_steps", str(steps), "--name", Path(args.config).stem])
    report.update({k: summary[k] for k in ("parameters", "steps", "epochs", "train_runtime_s", "final", "corpus")})
    # 4. ceilings, then the trip back
    t0 = time.time()
    report["ceilings"] = evaluate_checkpoints(folder, seeds=args.eval_seeds, **({"tasks": ["esol"]} if args.smoke
                                                                               else {}))
    report["evaluate_s"] = round(time.time() - t0, 1)
    report["parts"] = pack(folder, out, args.part_mib)
    report["wall_s"] = round(time.time() - started, 1)
    (out / "gpu_pretrain.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "corpus"}, indent=1, default=str), flush=True)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
