"""The GPU scripts of issue 24 point 3, in their CPU smoke mode: they must run end to end before a device call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("chemloader")

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "W2S_HF_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_gpu_pretrain_smoke_probes_trains_evaluates_and_packs_a_loadable_model(tmp_path):
    out = tmp_path / "out"
    _run([str(BENCH / "gpu_pretrain.py"), "--smoke", "--out", str(out), "--budget_min", "0.05", "--probe_steps", "3",
          "--probe_molecules", "120", "--eval_seeds", "0", "--part_mib", "1"], tmp_path)
    report = json.loads((out / "gpu_pretrain.json").read_text())
    assert report["smoke"] and report["probe_steps_per_s"] > 0 and report["steps"] == report["max_steps"] >= 3
    assert set(report["ceilings"]) == {"esol/scaffold", "esol/random"}
    assert all(np.isfinite(v["test"]) for v in report["ceilings"].values())
    assert report["parts"] and all((out / p).stat().st_size <= 1 << 20 for p in report["parts"])
    # the parts are what comes back from the device: joined and unpacked, they are the model folder
    back = tmp_path / "back"
    back.mkdir()
    subprocess.run(f"cat {out}/model.tar.part* | tar xf - -C {back}", shell=True, check=True)
    from w2s_hf.features import FrozenEncoder

    folder = back / "smiles-bert-h512-l8-gpu"
    assert json.loads((folder / "pretraining.json").read_text())["steps"] == report["steps"]
    x = FrozenEncoder(str(folder)).encode(["CCO", "c1ccccc1O"], show_progress=False)
    assert x.shape == (2, 32) and np.isfinite(x).all()


@pytest.mark.slow
def test_gpu_check_pretrain_section_runs_in_smoke_mode(tmp_path):
    _run([str(BENCH / "gpu_check.py"), "--smoke", "--out", str(tmp_path), "--sections", "pretrain"], tmp_path)
    section = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]["pretrain"]
    assert section["ok"], section
    assert set(section["tokens_per_s"]) == {"bare", "trainer"} and section["real_tokens"] > 0
