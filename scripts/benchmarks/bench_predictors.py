"""What the gain predictors add to a sweep's time (issue 23: at most 10%).

    python scripts/benchmarks/bench_predictors.py --sweeps runs/sweeps/esol_scaffold_smiles
    python scripts/benchmarks/bench_predictors.py --sizes 446,64,192 20000,384,768 --repeats 3
    python scripts/benchmarks/bench_predictors.py --sweep_at 20000,384,768 --weak_models 3 --seeds 2

`--sweeps`: finished sweep folders (made by w2s sweep with the predictors). Every run's
results.json records the seconds of each stage and, inside evaluate, of the predictors; sweep.json
records the sweep's wall time (`seconds`). Printed: the predictors' seconds summed over the runs as
a share of the sweep's wall time (`share_of_sweep`, the issue's measure) and of the runs' stage
seconds (`share_of_stages`: leaves out loading tasks and models, warming the cache, the sweep's
own summary; an upper bound).

`--sizes n,d_weak,d_strong`: the predictors of one run on random float32 features of that shape
(w2s_train rows), against the exact ridge student (`fit_ridge` with its ridge path, chosen on a
fifth as many validation rows) on the same strong features: the median of `--repeats` timings of
each, in one process, after one warm-up call. `predictors_s`: with nothing in the in-process cache of
the features' components (`w2s_hf.decomposition.spans.SPAN_CACHE`), as a sweep's first run;
`predictors_strong_cached_s`: with the strong side cached (another weak model of the same seed);
`predictors_all_cached_s`: everything cached (another weak label budget). `share_of_heads_and_predictors`:
the uncached predictors' share of (predictors + a run's three exact heads: weak, student, ceiling), an
upper bound on their share of a run made from cached features (it leaves out predicting, evaluating,
loading, and extracting features).

`--sweep_at n,d_weak,d_strong`: a real `w2s sweep` (exact heads, ridge chosen on val, the default
n_boot) on a synthetic regression task of 2.5 n rows (the default 80/10/10 split and weak_fraction
0.5 give n w2s_train rows), `--weak_models` weak models x `--seeds` seeds, in a temporary folder,
with every feature already in the cache (what is timed is a sweep over cached features: the packaged
MiniLM's layers name the representations, and their cache entries hold synthetic float32 arrays of
the given widths, low-rank signal plus noise; nothing is extracted). Printed: `--sweeps`'s line for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def sweep_share(folder: Path) -> dict:
    runs = sorted((folder / "runs").glob("*/results.json"))
    if not runs:
        raise SystemExit(f"error: {folder} has no runs/*/results.json (run w2s sweep first)")
    predictors = stages = 0.0
    missing = 0
    for path in runs:
        timings = json.loads(path.read_text()).get("timings", {})
        if "predictors" not in timings:
            missing += 1
            continue
        predictors += timings["predictors"]
        # evaluate's seconds already contain the predictors' seconds
        stages += sum(v for k, v in timings.items() if k != "predictors")
    wall = json.loads((folder / "sweep.json").read_text()).get("seconds") if (folder / "sweep.json").exists() else None
    return {"sweep": str(folder), "runs": len(runs) - missing, "runs_without_predictors": missing,
            "predictors_s": round(predictors, 3), "stages_s": round(stages, 3), "sweep_s": wall,
            "share_of_sweep": round(predictors / wall, 4) if wall else None,
            "share_of_stages": round(predictors / stages, 4) if stages else None}


def _median_time(fn, repeats: int, setup=None) -> float:
    """Median seconds of fn() over `repeats` calls after one warm-up; setup() runs untimed before each."""
    times = []
    for _ in range(repeats + 1):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first is the warm-up: imports, first touch of memory


def synthetic(n: int, dw: int, ds: int, repeats: int, seed: int = 0) -> dict:
    from w2s_hf.decomposition.predictors import predictor_block, principal_components
    from w2s_hf.decomposition.spans import SPAN_CACHE
    from w2s_hf.heads import fit_ridge

    rng = np.random.default_rng(seed)
    Xw = (rng.normal(size=(n, 8)) @ rng.normal(size=(8, dw)) + 0.3 * rng.normal(size=(n, dw))).astype(np.float32)
    Xs = (rng.normal(size=(n, 8)) @ rng.normal(size=(8, ds)) + 0.3 * rng.normal(size=(n, ds))).astype(np.float32)
    y = rng.normal(size=(n, 1))
    nv = max(n // 5, 2)
    Xv, yv = Xs[:nv] + 0.1, y[:nv]
    preds = {s: rng.normal(size=(nv, 1)) for s in ("val", "test")}

    def predictors():
        predictor_block(weak_features=Xw, strong_features=Xs, weak_labels=y, weak_pred=preds,
                        ceiling_pred={s: p + 0.1 for s, p in preds.items()}, gold=preds,
                        misfit={"y": 0.1}, targets=["y"])

    def strong_seen():  # another weak model of the same seed: the strong side is in the cache
        SPAN_CACHE.clear()
        principal_components(Xs)

    t_pred = _median_time(predictors, repeats, setup=SPAN_CACHE.clear)  # nothing cached: a sweep's first run
    t_strong_seen = _median_time(predictors, repeats, setup=strong_seen)
    t_all_seen = _median_time(predictors, repeats)  # the same features again: another weak label budget
    t_ridge = _median_time(lambda: fit_ridge(Xs, y, Xv, yv), repeats)
    t_weak = _median_time(lambda: fit_ridge(Xw, y, Xw[:nv] + 0.1, yv), repeats)
    heads = t_weak + 2 * t_ridge  # a run's three exact heads: weak (weak features), student and ceiling (strong)
    return {"n": n, "d_weak": dw, "d_strong": ds, "predictors_s": round(t_pred, 4),
            "predictors_strong_cached_s": round(t_strong_seen, 4), "predictors_all_cached_s": round(t_all_seen, 4),
            "ridge_student_s": round(t_ridge, 4), "ratio_to_one_head": round(t_pred / t_ridge, 3),
            "run_heads_s": round(heads, 4), "share_of_heads_and_predictors": round(t_pred / (t_pred + heads), 4)}


def synthetic_sweep(n: int, dw: int, ds: int, weak_models: int, seeds: int, seed: int = 0) -> dict:
    """A real sweep over cached synthetic features (see the module docstring); its `sweep_share`."""
    import tempfile

    from accelerate import Accelerator

    from w2s_hf.config.representation import RepresentationConfig
    from w2s_hf.config.sweep import SweepConfig
    from w2s_hf.data.tasks import load_task
    from w2s_hf.experiments.sweep import encoded_inputs, run_sweep
    from w2s_hf.features import build_representation
    from w2s_hf.features.cache import FeatureCache

    rng = np.random.default_rng(seed)
    rows = int(round(2.5 * n))
    latent = rng.normal(size=(rows, 16))
    y = latent @ rng.normal(size=16) + 0.5 * rng.normal(size=rows)
    model = "packaged:all-MiniLM-L6-v2"
    with tempfile.TemporaryDirectory(prefix="bench_predictors_") as tmp:
        data = Path(tmp) / "task.csv"
        data.write_text("id,text,y\n" + "".join(f"r{i},row {i} of the benchmark,{v:.6f}\n" for i, v in enumerate(y)))
        cache = Path(tmp) / "cache"
        weak = [{"model": model, "layer": layer, "name": f"w{layer}"} for layer in range(weak_models)]
        strong = {"model": model, "layer": 6, "name": "strong"}
        config = SweepConfig.from_dict({
            "task": str(data), "input_column": "text", "target_columns": ["y"], "input_kind": "text",
            "split": "random", "seeds": list(range(seeds)), "strong": strong, "weak_models": weak,
            "head": {"solver": "exact", "ridge": "auto"}, "output_dir": str(Path(tmp) / "sweep"),
            "cache_dir": str(cache)})
        texts = encoded_inputs(load_task(str(data), split="random", seed=0, input_column="text",
                                         target_columns=["y"], input_kind="text"))
        for rep, width, signal in [(strong, ds, 16), *((w, dw, 4 + 2 * i) for i, w in enumerate(weak))]:
            mix = np.zeros((16, width))
            mix[:signal] = rng.normal(size=(signal, width))
            features = latent @ mix + rng.normal(size=(rows, width))
            key = build_representation(**RepresentationConfig.from_value(rep).encoder_kwargs()).fingerprint(texts)
            FeatureCache(cache / "features", key).save(features.astype(np.float32))
        run_sweep(config, Accelerator(cpu=True))
        share = sweep_share(Path(tmp) / "sweep")
        return {"n": n, "d_weak": dw, "d_strong": ds, "weak_models": weak_models, "seeds": seeds,
                **{k: v for k, v in share.items() if k != "sweep"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="*", default=[], help="finished sweep folders")
    parser.add_argument("--sizes", nargs="*", default=[], help="n,d_weak,d_strong shapes to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep_at", nargs="*", default=[], help="n,d_weak,d_strong of a real sweep to run and time")
    parser.add_argument("--weak_models", type=int, default=3, help="--sweep_at: weak models (at most 6)")
    parser.add_argument("--seeds", type=int, default=2, help="--sweep_at: split seeds")
    args = parser.parse_args(argv)
    if not args.sweeps and not args.sizes and not args.sweep_at:
        parser.error("give --sweeps, --sizes and/or --sweep_at")
    if not 1 <= args.weak_models <= 6:
        parser.error(f"--weak_models must be 1 to 6 (the packaged MiniLM's layers 0-5), got {args.weak_models}")
    for folder in args.sweeps:
        print(json.dumps(sweep_share(Path(folder))))
    for size in args.sizes:
        n, dw, ds = _shape(parser, "--sizes", size)
        print(json.dumps(synthetic(n, dw, ds, args.repeats)))
    for size in args.sweep_at:
        n, dw, ds = _shape(parser, "--sweep_at", size)
        print(json.dumps(synthetic_sweep(n, dw, ds, args.weak_models, args.seeds)))
    return 0


def _shape(parser: argparse.ArgumentParser, flag: str, value: str) -> tuple[int, int, int]:
    try:
        n, dw, ds = (int(v) for v in value.split(","))
    except ValueError:
        parser.error(f"{flag} takes n,d_weak,d_strong (three integers), got {value!r}")
    return n, dw, ds


if __name__ == "__main__":
    sys.exit(main())
