"""Benchmark inputs at scale: the SMILES data check, tokenizing a large text file, one huge essay.

Each case runs in its own process so its peak memory (ru_maxrss, minus the RSS after imports) is its
own. Reported per case: rows/s, seconds to the first useful work (SMILES: the error naming a bad row
at row 10; text: the first tokenized chunk, i.e. the first progress update), total seconds, peak
memory growth in MB.

  smiles        load_task on an N-row SMILES CSV (valid): the streaming check (canonical + scaffold strings)
  smiles_bad    the same file with row 10 unparsable: seconds until the TaskDataError
  smiles_mols   the old check's memory: every RDKit Mol of the file kept (parse_smiles), for comparison
  text          FrozenEncoder._tokenize of N essay-like rows (20-100 words) with all-MiniLM-L6-v2's tokenizer
  text_onecall  the old way: one tokenizer call over all rows, ids as Python lists (no progress until done)
  essay         one essay of --essay_mb MB: cut before tokenizing (new) and whole (--essay_whole_mb, old)

    python scripts/benchmarks/bench_inputs.py --sizes 10000 100000
    python scripts/benchmarks/bench_inputs.py --sizes 1000000 --cases smiles_bad text
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "packaged:all-MiniLM-L6-v2"
WORDS = ("the a student school learn home class because think good time work idea people help online teacher "
         "write essay reason important believe example friends family change world future choose").split()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _smiles_pool() -> list[str]:
    spec = importlib.util.find_spec("chemloader")
    if spec is not None and spec.submodule_search_locations:
        for path in Path(spec.submodule_search_locations[0]).rglob("Lipophilicity.csv"):
            with open(path, newline="") as fh:
                return [row["smiles"] for row in csv.DictReader(fh)]
    return ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CN1CCC[C@H]1c1cccnc1", "OC(=O)c1ccccc1OC(C)=O"]


def _write_smiles(path: Path, n: int, bad_row: int | None) -> None:
    pool = _smiles_pool()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "smiles", "y"])
        for i in range(n):
            writer.writerow([i, "C1CC" if bad_row == i + 1 else pool[i % len(pool)], (i % 97) / 10])


def _texts(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    return [" ".join(words[rng.integers(len(words), size=rng.integers(20, 101))]) for _ in range(n)]


def child(case: str, n: int, args: argparse.Namespace) -> dict:
    """Run one case here; return its figures."""
    import numpy as np  # noqa: F401  (imported before the baseline)

    from w2s_hf.data import TaskDataError, load_task
    from w2s_hf.data.chem import parse_smiles
    from w2s_hf.features import FrozenEncoder

    out: dict = {"case": case, "rows": n}
    with tempfile.TemporaryDirectory() as tmp:
        if case.startswith("smiles"):
            path = Path(tmp) / "mols.csv"
            _write_smiles(path, n, 10 if case == "smiles_bad" else None)
            base = _rss_mb()
            start = time.perf_counter()
            if case == "smiles_mols":
                import pandas as pd

                mols = parse_smiles(pd.read_csv(path)["smiles"].tolist())
                out["kept_mols"] = len(mols)
            else:
                try:
                    load_task("mols", path=path, input_column="smiles", target_columns=["y"], id_column="uid",
                              input_kind="smiles", split="random")
                except TaskDataError as exc:
                    out["first_useful_s"] = time.perf_counter() - start
                    out["error"] = str(exc)[:120]
        else:
            enc = FrozenEncoder(MODEL, max_length=512)
            tok = enc._load_tokenizer()
            if case == "essay":
                texts = [" ".join(_texts(1)[0] for _ in range(int(n * 1e6 / 400)))[: int(n * 1e6)]]
                out["rows"], out["essay_mb"] = 1, n
            else:
                texts = _texts(n)
            base = _rss_mb()
            start = time.perf_counter()
            if case == "text_onecall":
                enc_out = tok(texts, truncation=True, max_length=512, return_attention_mask=False)
                out["tokens"] = sum(len(x) for x in enc_out["input_ids"])
                out["first_useful_s"] = time.perf_counter() - start
            else:
                if case == "essay" and args.whole:
                    from w2s_hf.features import tokens

                    tokens.CHARS_PER_TOKEN = 10**12  # the old path: the whole essay goes through the tokenizer
                    out["case"] = "essay_whole"
                import w2s_hf.features.encoder as encoder_module

                first: list[float] = []
                real = encoder_module.tokenize_table

                def timed(*a, progress=None, **kw):
                    def hook(k: int) -> None:
                        if not first:
                            first.append(time.perf_counter() - start)
                    return real(*a, progress=hook, **kw)

                encoder_module.tokenize_table = timed
                _, _, lengths = enc._tokenize(texts)
                out["tokens"], out["first_useful_s"] = int(lengths.sum()), first[0]
        seconds = time.perf_counter() - start
    out.update(seconds=round(seconds, 2), rows_per_s=round(out["rows"] / seconds, 1),
               peak_mb=round(_rss_mb() - base, 1))
    if "first_useful_s" in out:
        out["first_useful_s"] = round(out["first_useful_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--cases", nargs="+", default=["smiles", "smiles_bad", "smiles_mols", "text",
                                                       "text_onecall", "essay"])
    parser.add_argument("--essay_mb", type=float, default=50.0)
    parser.add_argument("--essay_whole_mb", type=float, default=2.0, help="the old whole-essay path (slow)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case before it is reported as such")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], float(args.child[1]) if args.child[0] == "essay"
                               else int(args.child[1]), args)))
        return
    runs = []
    for case in args.cases:
        if case == "essay":
            runs += [(case, args.essay_mb, []), (case, args.essay_whole_mb, ["--whole"]),
                     (case, args.essay_whole_mb, [])]
        else:
            runs += [(case, n, []) for n in args.sizes]
    for case, n, extra in runs:
        cmd = [sys.executable, __file__, "--child", case, str(n), *extra]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(json.dumps({"case": case, "rows": n, "timed_out_s": args.timeout}), flush=True)
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else json.dumps({"case": case, "rows": n, "failed": done.stderr[-300:]}), flush=True)


if __name__ == "__main__":
    main()
