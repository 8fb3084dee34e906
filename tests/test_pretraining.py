"""The SMILES pretraining recipe: corpus, tokenizer, a tiny Trainer run under 1 and 2 processes, shipped models."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("chemloader")

from helpers import free_port  # noqa: E402

from w2s_hf.pretraining.corpus import QSAR_TASKS, build_corpus, task_canonical_smiles  # noqa: E402
from w2s_hf.pretraining.tokenizer import build_smiles_tokenizer, split_smiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the `w2s pretrain` command, as `python -m w2s_hf pretrain` (also under accelerate launch -m)
PRETRAIN = ["-m", "w2s_hf", "pretrain"]
needs_moleculeace = pytest.mark.skipif(
    importlib.util.find_spec("MoleculeACE") is None,
    reason="MoleculeACE is not installed (pip install --no-deps MoleculeACE==3.0.0)",
)


def _task_smiles() -> list[str]:
    from w2s_hf.data.sources import BUILTIN_TASKS, builtin_file, read_table

    out = []
    for task in QSAR_TASKS:
        spec = BUILTIN_TASKS[task]
        out += [str(s) for s in read_table(builtin_file(spec, None))[spec.input_column]]
    return out


def _round_trip_failures(tokenizer, smiles: list[str]) -> list[tuple[str, str]]:
    ids = tokenizer(smiles, add_special_tokens=False)["input_ids"]
    return [(s, tokenizer.decode(i)) for s, i in zip(smiles, ids)
            if tokenizer.unk_token_id in i or tokenizer.decode(i) != s]


def test_split_smiles_is_atom_level():
    assert split_smiles("C[C@@H](Cl)c1ccc(Br)cc1%10") == [
        "C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1", "%10"]  # fmt: skip
    assert "".join(split_smiles("CC(=O)O.[Na+]")) == "CC(=O)O.[Na+]"


def test_tokenizer_saves_as_a_fast_tokenizer_that_autotokenizer_loads(tmp_path):
    from transformers import AutoTokenizer

    tok = build_smiles_tokenizer(["CCO", "c1ccccc1Cl", "C[C@@H](N)C(=O)O"])
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    enc = loaded("CC[C@@H](Cl)Br")
    assert loaded.convert_ids_to_tokens(enc["input_ids"])[:3] == ["[CLS]", "C", "C"]
    # A bracket atom never seen splits into characters instead of becoming [UNK], and decodes back.
    assert _round_trip_failures(loaded, ["[Se]CC[Te]", "C%12CC%12", "[2H]C([2H])[2H]"]) == []


@needs_moleculeace
def test_corpus_has_no_task_molecule_and_the_tokenizer_round_trips_everything():
    corpus = build_corpus()
    assert corpus.counts["task_molecules_removed"] > 0  # the three tasks do overlap ChEMBL: the filter works
    assert not set(corpus.smiles) & task_canonical_smiles()
    assert len(corpus.smiles) == len(set(corpus.smiles)) > 30_000
    tok = build_smiles_tokenizer(corpus.smiles)
    assert _round_trip_failures(tok, corpus.smiles + _task_smiles()) == []


def _nci_corpus(path: Path, n: int) -> Path:
    from w2s_hf.pretraining.corpus import read_source

    path.write_text("\n".join(read_source("rdkit_nci")[:n]) + "\n")
    return path


def test_a_task_molecule_in_a_corpus_file_is_removed_whatever_its_spelling(tmp_path):
    from w2s_hf.pretraining.train import PretrainConfig, load_corpus

    # ESOL's "c1ccccc1" (benzene) written the other way round, and ethanol (also in ESOL)
    corpus_file = tmp_path / "c.txt"
    others = [f"C{'C' * i}[Si](C)(C)C" for i in range(30)]  # no organosilicon in the three tasks
    assert not set(others) & task_canonical_smiles()
    corpus_file.write_text("C1=CC=CC=C1\nOCC\n" + "\n".join(others) + "\n")
    corpus = load_corpus(PretrainConfig(output_dir=str(tmp_path / "m"), corpus_file=str(corpus_file)))
    assert "c1ccccc1" not in corpus.smiles and "CCO" not in corpus.smiles
    assert sorted(corpus.smiles) == sorted(others)


def test_bad_corpus_line_and_bad_config_are_clear_errors_before_training(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("CCO\nC1CC\nCCN\n")
    env = {**os.environ, "W2S_HF_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, *PRETRAIN, "--output_dir", str(tmp_path / "m"), "--corpus_file", str(bad)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "line 2" in out.stderr and "'C1CC'" in out.stderr
    out = subprocess.run([sys.executable, *PRETRAIN, "--output_dir", str(tmp_path / "m"), "--hidden_size", "30",
                          "--num_heads", "4"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "hidden_size=30" in out.stderr
    assert not (tmp_path / "m").exists()


TINY = ["--hidden_size", "32", "--num_layers", "2", "--num_heads", "2", "--max_steps", "40", "--batch_size", "32",
        "--lr", "5e-3", "--logging_steps", "5", "--eval_steps", "20", "--descriptor_workers", "1", "--warmup_ratio",
        "0.0", "--mtr_weight", "1.0", "--scheduler", "constant_with_warmup"]


def _pretrain(tmp_path: Path, name: str, nproc: int, extra: tuple[str, ...] = ()) -> dict:
    corpus = _nci_corpus(tmp_path / "corpus.txt", 400)
    out = tmp_path / name
    args = [*PRETRAIN, "--output_dir", str(out), "--corpus_file", str(corpus), *TINY, *extra]
    env = {**os.environ, "W2S_HF_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "pretraining.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [1, 2])
def test_tiny_pretraining_lowers_both_losses_and_writes_a_loadable_folder(tmp_path, nproc):
    summary = _pretrain(tmp_path, f"m{nproc}", nproc)
    assert summary["processes"] == nproc and summary["steps"] == 40
    train = [h for h in summary["history"] if "mlm_loss" in h]
    first, last = train[0], train[-1]
    assert last["mlm_loss"] < 0.8 * first["mlm_loss"]
    assert last["mtr_loss"] < first["mtr_loss"]
    folder = tmp_path / f"m{nproc}"
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "descriptor_scaler.json"} <= {
        p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and summary["corpus"]["fingerprint"] in card

    from w2s_hf.features import FrozenEncoder

    enc = FrozenEncoder(str(folder), layer=-1, pooling="mean")
    x = enc.encode(["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"])
    assert x.shape == (3, 32) and np.isfinite(x).all() and np.ptp(x, axis=0).max() > 0


@pytest.mark.slow
def test_the_pipeline_runs_on_a_pretrained_folder(tmp_path):
    from accelerate import Accelerator

    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig
    from w2s_hf.pipeline import run_w2s

    _pretrain(tmp_path, "m", 1)
    folder = str(tmp_path / "m")
    config = W2SConfig(
        model=ModelArguments(weak_model=folder, weak_layer=1, strong_model=folder, strong_layer=2),
        task=TaskArguments(task="esol", split="scaffold"), head=HeadArguments(),
        run=RunArguments(output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), report_to="none",
                         plot=False),
    ).validate()
    results = run_w2s(config, accelerator=Accelerator(cpu=True))
    test = results["splits"]["test"]
    assert np.isfinite([test["weak_error"], test["w2s_error"], test["misfit"]]).all()


def test_length_chunks_give_the_losses_of_the_whole_batch():
    import torch

    from w2s_hf.pretraining.corpus import read_source
    from w2s_hf.pretraining.model import BertForMaskedLMAndMTR, MLMAndMTRCollator, make_config

    smiles = read_source("rdkit_nci")[:64]
    tok = build_smiles_tokenizer(smiles)
    torch.manual_seed(0)
    rows = [{"smiles": s, "descriptors": np.random.default_rng(i).normal(size=7).astype(np.float32)}
            for i, s in enumerate(smiles)]
    batch = MLMAndMTRCollator(tok)(rows)
    model = BertForMaskedLMAndMTR(make_config(len(tok), hidden_size=32, num_layers=2, num_heads=2, max_position=256,
                                              num_mtr_targets=7, mtr_weight=1.0, dropout=0.0)).eval()
    losses = {}
    for budget in (0, 200, 700):
        model.config.chunk_tokens = budget
        with torch.no_grad():
            out = model(**batch)
        losses[budget] = (float(out.mlm_loss), float(out.mtr_loss))
    assert np.allclose(losses[200], losses[0], rtol=1e-5) and np.allclose(losses[700], losses[0], rtol=1e-5)


@pytest.mark.slow
def test_two_processes_train_the_model_that_one_process_trains(tmp_path):
    """Same seed, no dropout: the 2-process run sees the same global batches with the same masks and
    spellings (per-molecule randomness), and its loss is normalised over the global batch, so the
    weights agree with the 1-process run's up to float32 summation order."""
    from safetensors.numpy import load_file

    extra = ("--dropout", "0.0", "--max_steps", "9", "--batch_size", "38", "--save_dtype", "float32",
             "--enumerate_prob", "0.5")
    runs = {n: _pretrain(tmp_path, f"eq{n}", n, extra) for n in (1, 2)}
    assert [h.get("mlm_loss") for h in runs[1]["history"] if "mlm_loss" in h] == pytest.approx(
        [h.get("mlm_loss") for h in runs[2]["history"] if "mlm_loss" in h], rel=1e-4)
    one, two = (load_file(str(tmp_path / f"eq{n}" / "model.safetensors")) for n in (1, 2))
    assert one.keys() == two.keys()
    worst = max(float(np.max(np.abs(one[k] - two[k]))) for k in one)
    assert worst < 1e-4, worst


def _shipped() -> dict:
    from w2s_hf.features.packaged import shipped_models

    return shipped_models()


def test_the_family_ships_inside_the_package_within_the_size_limits():
    from w2s_hf.pretraining.ship import MAX_MODEL_BYTES, MAX_TOTAL_BYTES, models_dir

    shipped = _shipped()
    assert len(shipped) >= 4, sorted(shipped)
    sizes = {name: sum(f.stat().st_size for f in folder.iterdir()) for name, folder in shipped.items()}
    assert max(sizes.values()) <= MAX_MODEL_BYTES and sum(sizes.values()) <= MAX_TOTAL_BYTES, sizes
    manifest = json.loads((models_dir() / "MANIFEST.json").read_text())
    assert set(manifest) == {folder.name for folder in shipped.values()}
    for folder in shipped.values():
        config = (ROOT / "scripts" / "configs" / "pretrain" / f"{folder.name}.yaml")
        assert config.is_file(), f"no recipe re-creates {folder.name}"
        card = (folder / "README.md").read_text()
        assert f"--config scripts/configs/pretrain/{folder.name}.yaml" in card and "## QSAR ceilings" in card


@pytest.mark.parametrize("name", sorted(_shipped()) or ["(none shipped)"])
def test_every_shipped_model_loads_offline_with_a_stable_fingerprint(name):
    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.cache import hash_model_files
    from w2s_hf.pretraining.ship import models_dir

    assert name in _shipped()
    folder = _shipped()[name]
    manifest = json.loads((models_dir() / "MANIFEST.json").read_text())[folder.name]
    assert hash_model_files(folder) == manifest["revision"]  # the files are the ones shipped
    texts = _task_smiles()[:50]
    enc = FrozenEncoder(f"packaged:{folder.name}")
    assert enc.source.kind == "packaged" and Path(enc.source.path) == folder
    assert enc.fingerprint(texts) == FrozenEncoder(f"packaged:{folder.name.upper()}").fingerprint(texts)
    x = enc.encode(texts, show_progress=False)
    assert x.shape == (50, enc.hidden_size) and np.isfinite(x).all()
    assert _round_trip_failures(enc._load_tokenizer(), _task_smiles()) == []


def test_qsar_ceilings_scale_descriptors_on_the_training_rows_as_the_pipeline_does(tmp_path, monkeypatch):
    from w2s_hf.features.chem import RDKitFeaturizer
    from w2s_hf.pretraining.evaluate import qsar_ceilings

    seen = []
    original = RDKitFeaturizer.encode

    def spy(self, texts, *args, **kwargs):
        seen.append((len(texts), kwargs.get("fit_rows")))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(RDKitFeaturizer, "encode", spy)
    qsar_ceilings("rdkit:descriptors", tasks=["esol"], splits=["random"], seeds=[0], cache_dir=tmp_path)
    (n, fit_rows), = seen
    assert fit_rows is not None and 0.7 * n < len(fit_rows) < 0.9 * n  # weak_train + w2s_train: 80% of rows
