"""Where a warm rerun of the main job spends its time: the README's command, run again on a finished run folder.

    python scripts/benchmarks/bench_warm_rerun.py                 # accelerate launch, cpu_2proc.yaml (README)
    python scripts/benchmarks/bench_warm_rerun.py --nproc 1       # python scripts/train_w2s.py, one process
    python scripts/benchmarks/bench_warm_rerun.py --runs 5 -- --task lipophilicity --split random

The job is the README's main job (`HF_HUB_OFFLINE=1 accelerate launch --config_file
accelerate_configs/cpu_2proc.yaml scripts/train_w2s.py`, offline defaults: ESOL and the packaged SMILES
models), with its --output_dir and feature cache in a fresh temporary folder. It runs once cold (which
fills the folder and the cache), then --runs times again on the finished folder: the warm reruns. The
script is started in place of scripts/train_w2s.py, as its own worker: it stamps the clock when the
interpreter reaches it, imports what `w2s run` imports, wraps (from outside, the code is unchanged) the
accelerator's start, the pipeline's set-up, each stage and the hooks of the evaluate stage, then calls
`w2s_hf.commands.run.main` with the same arguments. Per warm rerun, on the main process:

- python start: a bare `python -c` to its first line (measured apart, median of 3);
- launcher: the rest of the time from the command's start to the worker's first line (accelerate's
  own imports and process spawning; 0 without a launcher);
- imports: `w2s_hf.commands.run` and what its `main` imports before it starts (accelerate, the pipeline);
- accelerator: `start_accelerator` (process group, logging);
- set-up: `W2SPipeline(config)` (the run's identity: data, config and model fingerprints);
- one figure per stage, the table/plot hooks, and the rest of `main`;
- exit: from `main`'s return to the command's end (interpreter shutdown, the launcher's wait and its
  own shutdown); the worker ends as scripts/train_w2s.py does (`w2s_hf.commands.exiting`).

It also lists the heavy libraries a warm rerun had imported by its end (what it paid for without
needing). Medians over the warm reruns; each rerun's whole wall time is printed too.
"""

from __future__ import annotations

import time

T_FIRST_LINE = time.time()  # noqa: E402  (before any other import: the worker's first line)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "matplotlib", "pandas", "scipy", "sklearn", "peft", "datasets", "rdkit",
         "safetensors", "accelerate", "tokenizers")


def _timed(owner: object, name: str, label: str, parts: dict[str, float], key=None) -> None:
    """Wrap owner.name so that each call adds its wall time to parts[label or key(args)]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            part = key(*args, **kwargs) if key else label
            parts[part] = parts.get(part, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def worker(argv: list[str], out: Path) -> int:
    """The main job in this process, its parts timed (see the module docstring)."""
    marks = {"first_line": T_FIRST_LINE}
    start = time.perf_counter()
    import accelerate.utils  # noqa: F401  (what main imports, in its order)

    import w2s_hf.commands as commands
    from w2s_hf.commands import run as run_command
    from w2s_hf.hooks import evaluation
    from w2s_hf.pipeline import W2SPipeline

    parts: dict[str, float] = {"imports": time.perf_counter() - start}
    _timed(commands, "start_accelerator", "accelerator", parts)
    _timed(W2SPipeline, "__init__", "set-up", parts)
    _timed(W2SPipeline, "_stage", "", parts, key=lambda self, name: f"stage {name}")
    for hook in ("PlotHook", "TableHook", "JsonResultsHook"):
        _timed(getattr(evaluation, hook), "on_end", f"hook {hook}", parts)
    start = time.perf_counter()
    rc = run_command.main(argv)
    parts["main"] = time.perf_counter() - start
    marks["main_end"] = time.time()
    rank = os.environ.get("RANK", "0")
    loaded = [m for m in HEAVY if m in sys.modules]
    (out / f"parts_{rank}.json").write_text(json.dumps({"parts": parts, "marks": marks, "loaded": loaded, "rc": rc}))
    # as scripts/train_w2s.py ends (a checkout from before `exiting` existed ends without it)
    return getattr(commands, "exiting", lambda status: status)(rc)


def _python_start(env: dict) -> float:
    """Seconds from starting a bare `python -c` to its first line (median of 3)."""
    times = []
    for _ in range(3):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env, capture_output=True,
                             text=True, check=True)
        times.append(float(out.stdout) - start)
    return sorted(times)[1]


def _run_job(args: argparse.Namespace, folder: Path, env: dict, job_args: list[str]) -> dict:
    """One run of the job; its parts, as the main process measured them, and the parent's clock."""
    out = folder / "parts"
    out.mkdir(exist_ok=True)
    for f in out.glob("*.json"):
        f.unlink()
    me = [str(Path(__file__).resolve()), "--worker", str(out), "--", "--output_dir", str(folder / "run"), *job_args]
    if args.nproc > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(args.accelerate_config),
               "--num_processes", str(args.nproc), *me]
    else:
        cmd = [sys.executable, *me]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"the job failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    report = json.loads((out / "parts_0.json").read_text())
    report.update(start=start, end=end, wall=end - start)
    return report


def _breakdown(report: dict, python_start: float) -> dict[str, float]:
    parts, marks = report["parts"], report["marks"]
    to_first_line = marks["first_line"] - report["start"]
    inside = sum(v for k, v in parts.items() if k not in ("imports", "main"))
    out = {"python start": min(python_start, to_first_line),
           "launcher": max(0.0, to_first_line - python_start), "imports": parts["imports"]}
    out.update({k: v for k, v in parts.items() if k not in ("imports", "main")})
    out["rest of main"] = parts["main"] - inside
    out["exit"] = report["end"] - marks["main_end"]
    out["whole command"] = report["wall"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="warm reruns after the cold run (medians over them)")
    p.add_argument("--nproc", type=int, default=2, help="processes (1: plain python, no launcher)")
    p.add_argument("--accelerate_config", type=Path, default=ROOT / "accelerate_configs" / "cpu_2proc.yaml")
    p.add_argument("--keep", type=Path, default=None, help="use (and keep) this folder instead of a temporary one")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("job_args", nargs="*", help="after --: flags for the job (w2s run's)")
    args = p.parse_args()
    if args.worker is not None:
        return worker(args.job_args, args.worker)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_warm_rerun_"))
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", W2S_HF_CACHE=str(folder / "cache"))
    python_start = _python_start(env)
    cold = _run_job(args, folder, env, args.job_args)
    print(f"first run: {cold['wall']:.1f} s (cold in an empty folder: it fills {folder / 'run'} and the feature "
          "cache; with --keep on a finished folder it is a warm rerun too)", flush=True)
    warm = [_breakdown(_run_job(args, folder, env, args.job_args), python_start) for _ in range(args.runs)]
    last = json.loads((folder / "parts" / "parts_0.json").read_text())
    print(f"warm reruns ({args.runs}, nproc={args.nproc}), seconds on the main process; median (each run):")
    for key in warm[0]:
        values = [w.get(key, 0.0) for w in warm]
        print(f"  {key:28s} {sorted(values)[len(values) // 2]:7.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"heavy libraries imported by the warm rerun: {', '.join(last['loaded']) or 'none'}")
    print(json.dumps({"cold_s": cold["wall"], "warm": warm, "loaded": last["loaded"], "nproc": args.nproc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
