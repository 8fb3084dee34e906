"""The pretraining corpus at scale: MOSES as a source (a seeded subset, task molecules removed, its own
fingerprint), a clear error without molsets, and descriptors cached in blocks that a killed run resumes."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("chemloader")

from w2s_hf.pretraining import corpus as corpus_mod  # noqa: E402
from w2s_hf.pretraining import descriptors as desc_mod  # noqa: E402

needs_moses = pytest.mark.skipif(importlib.util.find_spec("moses") is None,
                                 reason="molsets is not installed (pip install --no-deps molsets==0.3.1)")
ESOL_BENZENE_OTHER_SPELLING = "C1=CC=CC=C1"  # ESOL's c1ccccc1
ESOL_ETHANOL_OTHER_SPELLING = "OCC"  # ESOL's CCO


@pytest.fixture
def fake_moses(tmp_path, monkeypatch) -> list[str]:
    """A MOSES-shaped train.csv.gz of 300 organosilicon molecules (in no task) plus two ESOL molecules."""
    rows = [f"C{'C' * (i % 40)}[Si](C)(C){'O' * (i // 40)}C" for i in range(300)]
    rows += [ESOL_BENZENE_OTHER_SPELLING, ESOL_ETHANOL_OTHER_SPELLING]
    path = tmp_path / "train.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("SMILES\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(corpus_mod, "moses_file", lambda split="train": path)
    return rows


def test_moses_subset_is_seeded_and_its_task_molecules_are_removed(fake_moses):
    assert corpus_mod.read_source("moses") == fake_moses
    a = corpus_mod.read_source("moses", moses_molecules=100, seed=0)
    assert a == corpus_mod.read_source("moses", moses_molecules=100, seed=0)  # the same rows every time
    assert a != corpus_mod.read_source("moses", moses_molecules=100, seed=1)
    assert len(a) == len(set(a)) == 100 and set(a) <= set(fake_moses)
    assert a == [s for s in fake_moses if s in set(a)]  # file order kept

    full = corpus_mod.build_corpus(("moses",))
    assert full.counts["rows_moses"] == 302 and full.counts["task_molecules_removed"] == 2
    assert "c1ccccc1" not in full.smiles and "CCO" not in full.smiles
    assert not set(full.smiles) & corpus_mod.task_canonical_smiles()


def test_moses_gives_the_corpus_a_new_fingerprint_through_the_config(fake_moses, tmp_path):
    from w2s_hf.pretraining.train import PretrainConfig, load_corpus

    def corpus(**kw):
        return load_corpus(PretrainConfig(output_dir=str(tmp_path / "m"), **kw).validate())

    nci = corpus(sources="rdkit_nci")
    mixed = corpus(sources="rdkit_nci,moses", moses_molecules=200)
    assert mixed.counts["rows_moses"] == 200 and len(mixed.smiles) > len(nci.smiles)
    assert set(nci.smiles) < set(mixed.smiles) and mixed.fingerprint != nci.fingerprint
    assert corpus(sources="rdkit_nci,moses", moses_molecules=200).fingerprint == mixed.fingerprint
    assert corpus(sources="rdkit_nci,moses", moses_molecules=200, corpus_seed=1).fingerprint != mixed.fingerprint


def test_missing_molsets_and_unknown_sources_are_one_line_errors(monkeypatch, tmp_path):
    from w2s_hf.pretraining.train import PretrainConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moses" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install --no-deps molsets==0\.3\.1"):
        corpus_mod.read_source("moses")
    with pytest.raises(ValueError, match="sources='nci,moses'.*moleculeace, rdkit_nci, moses"):
        PretrainConfig(output_dir=str(tmp_path / "m"), sources="nci,moses").validate()
    with pytest.raises(ValueError, match="moses_molecules=0"):
        PretrainConfig(output_dir=str(tmp_path / "m"), sources="moses", moses_molecules=0).validate()


@needs_moses
def test_the_installed_moses_file_is_read_without_importing_moses():
    rows = corpus_mod.read_source("moses", moses_molecules=3000, seed=0)
    assert "moses" not in sys.modules  # `import moses` fails without fcd_torch: the file is found, not imported
    assert len(rows) == 3000 and rows == corpus_mod.read_source("moses", moses_molecules=3000, seed=0)
    kept = corpus_mod.corpus_from_smiles(rows, counts={"rows_moses": len(rows)})
    assert kept.counts["unparseable"] == 0 and not set(kept.smiles) & corpus_mod.task_canonical_smiles()


def test_descriptor_blocks_are_cached_so_a_killed_computation_resumes(tmp_path, monkeypatch):
    smiles = corpus_mod.read_source("rdkit_nci")[:25]
    expected = desc_mod.compute_descriptors(smiles)
    calls = []
    original = desc_mod._compute_chunk

    def dies_on_third_block(chunk):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed during the third block
        return original(chunk)

    monkeypatch.setattr(desc_mod, "_compute_chunk", dies_on_third_block)
    with pytest.raises(KeyboardInterrupt):
        desc_mod.cached_descriptors(smiles, tmp_path, block=10)
    calls.clear()
    monkeypatch.setattr(desc_mod, "_compute_chunk", lambda chunk: calls.append(len(chunk)) or original(chunk))
    resumed = desc_mod.cached_descriptors(smiles, tmp_path, block=10)
    assert calls == [5]  # only the unfinished block is computed again
    np.testing.assert_array_equal(resumed, expected)
    # the blocks are joined into one file and removed; a third call reads that file and computes nothing
    assert not list(Path(tmp_path).rglob("blocks/*/*.npy"))
    calls.clear()
    np.testing.assert_array_equal(desc_mod.cached_descriptors(smiles, tmp_path, block=10), expected)
    assert calls == []


def test_bench_pretrain_batches_cost_descriptors_of_only_the_molecules_they_use(tmp_path, monkeypatch):
    """Issue 25: the benchmark (and its test) computed descriptors of the whole corpus for 4 batches of 16."""
    import importlib.util as iu

    spec = iu.spec_from_file_location("bench_pretrain", Path(__file__).resolve().parents[1] / "scripts" /
                                      "benchmarks" / "bench_pretrain.py")
    bench = iu.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_pretrain", bench)  # its dataclass looks its module up there
    spec.loader.exec_module(bench)
    monkeypatch.setenv("W2S_HF_CACHE", str(tmp_path))
    computed = []
    original = desc_mod.compute_descriptors
    monkeypatch.setattr(desc_mod, "compute_descriptors", lambda s, **kw: computed.append(len(s)) or original(s, **kw))
    monkeypatch.setattr(corpus_mod, "build_corpus", lambda *a, **kw: pytest.fail("the whole corpus was built"))
    args = bench.BenchArgs(batch_size=16, steps=3, warmup=1, n_descriptors=40)
    tok, n_targets, batches, smiles = bench.make_batches(args)
    assert sum(computed) == len(smiles) == 64 and len(batches) == 4
    assert all(b["input_ids"].shape[0] == 16 and b["descriptors"].shape == (16, n_targets) for b in batches)
    assert not set(smiles) & corpus_mod.task_canonical_smiles()
