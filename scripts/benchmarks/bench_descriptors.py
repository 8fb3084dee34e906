"""Benchmark the MTR descriptor targets: molecules/s of all RDKit descriptors, by worker count, and their costs.

    python scripts/benchmarks/bench_descriptors.py                          # 4,000 MOSES molecules, 1 and 2 workers
    python scripts/benchmarks/bench_descriptors.py --n 2000 --workers 1 --json runs/bench_descriptors.json

The molecules are a seeded sample of the corpus source `--source` (MOSES by default, the bulk of a large
corpus; `moleculeace` for the larger ChEMBL molecules). Each worker count runs `compute_descriptors`
(parsing included, as in pretraining) `--repeats` times, alternating, and the median is reported, so
a busy machine slows every setting alike. `--profile` molecules are also timed descriptor by descriptor
(one process), which says what a cheaper subset of the descriptors would save.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BenchArgs:
    n: int = field(default=4000, metadata={"help": "Molecules timed per setting."})
    source: str = field(default="moses", metadata={"help": "Corpus source of the molecules.",
                                                   "choices": ["moses", "moleculeace", "rdkit_nci"]})
    workers: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "Worker counts to time."})
    repeats: int = field(default=3, metadata={"help": "Timings per setting (alternating); the median is reported."})
    profile: int = field(default=300, metadata={"help": "Molecules timed descriptor by descriptor (0: skip)."})
    json: str | None = field(default=None, metadata={"help": "Write the figures here too."})


def sample(args: BenchArgs) -> list[str]:
    from w2s_hf.pretraining.corpus import read_source

    rows = read_source(args.source, moses_molecules=args.n, seed=0)
    if len(rows) > args.n:
        rows = [rows[i] for i in np.sort(np.random.default_rng(0).permutation(len(rows))[: args.n])]
    return rows


def throughput(smiles: list[str], workers: list[int], repeats: int) -> dict[str, float]:
    from w2s_hf.pretraining.descriptors import _pool, compute_descriptors

    pools = {w: _pool(w) for w in workers if w > 1}  # started before timing: spawn start-up is paid once per run
    try:
        for w, pool in pools.items():
            compute_descriptors(smiles[: 256 * w], pool=pool)  # workers import RDKit once, untimed
        times: dict[int, list[float]] = {w: [] for w in workers}
        for _ in range(repeats):
            for w in workers:
                start = time.perf_counter()
                compute_descriptors(smiles, num_workers=w, pool=pools.get(w))
                times[w].append(time.perf_counter() - start)
    finally:
        for pool in pools.values():
            pool.close()
            pool.join()
    return {f"{w}_workers": round(len(smiles) / statistics.median(t), 1) for w, t in times.items()}


def profile(smiles: list[str]) -> dict[str, float]:
    """Milliseconds a molecule of each descriptor (RDKit caches some shared work on the molecule)."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    out = {}
    for name, fn in Descriptors._descList:
        start = time.perf_counter()
        for mol in mols:
            try:
                fn(mol)
            except Exception:  # noqa: BLE001 - a failing descriptor is timed as it fails in pretraining
                pass
        out[name] = 1e3 * (time.perf_counter() - start) / len(mols)
    return out


def main(argv: list[str] | None = None) -> dict:
    from w2s_hf.cli import W2SArgumentParser

    (args,) = W2SArgumentParser(BenchArgs).parse_args_and_config(argv)
    smiles = sample(args)
    result = {"source": args.source, "molecules": len(smiles), "repeats": args.repeats,
              "mean_smiles_chars": round(float(np.mean([len(s) for s in smiles])), 1),
              "molecules_per_s": throughput(smiles, args.workers, args.repeats)}
    print(f"descriptors of {len(smiles)} {args.source} molecules (median of {args.repeats}):")
    for key, rate in result["molecules_per_s"].items():
        print(f"  {key:>10}: {rate:8.1f} molecules/s")
    if args.profile:
        costs = profile(smiles[: args.profile])
        total = sum(costs.values())
        top = dict(sorted(costs.items(), key=lambda kv: -kv[1])[:10])
        fragments = sum(v for k, v in costs.items() if k.startswith("fr_"))
        result["profile_ms_per_molecule"] = {"total": round(total, 3), "n_descriptors": len(costs),
                                             "fr_total": round(fragments, 3),
                                             "top10": {k: round(v, 3) for k, v in top.items()}}
        print(f"  one process, descriptor by descriptor: {total:.2f} ms a molecule for {len(costs)} descriptors; "
              "costliest: " + ", ".join(f"{k} {v:.2f}" for k, v in list(top.items())[:5]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
