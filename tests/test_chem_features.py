"""RDKit featurizers (`rdkit:morgan`, `rdkit:descriptors`) as representations: values, cache, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN(CC)CC", "OC1CCCCC1", "c1ccncc1", "CCCCCCCC", "O=C(O)c1ccccc1"]


def test_morgan_bits_match_rdkit_directly(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    from w2s_hf.features import build_representation

    enc = build_representation("rdkit:morgan", layer=-1, pooling="mean")
    X = enc.encode(SMILES, cache_dir=tmp_path)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    expected = np.stack([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in SMILES]).astype(np.float32)
    assert X.shape == (len(SMILES), 1024) and X.dtype == np.float32
    np.testing.assert_array_equal(X, expected)


def test_descriptors_are_standardised_and_finite(tmp_path):
    from w2s_hf.features.chem import RDKitFeaturizer

    X = RDKitFeaturizer("descriptors").encode(SMILES, cache_dir=tmp_path)
    assert np.isfinite(X).all()
    varying = X.std(axis=0) > 0
    assert varying.sum() > 50
    np.testing.assert_allclose(X[:, varying].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(X[:, varying].std(axis=0), 1, atol=1e-4)


def test_cache_hit_does_not_recompute_and_new_data_misses(tmp_path, monkeypatch):
    from w2s_hf.features.chem import RDKitFeaturizer

    enc = RDKitFeaturizer("morgan")
    first = np.array(enc.encode(SMILES, cache_dir=tmp_path))
    calls = []
    original = RDKitFeaturizer._compute
    monkeypatch.setattr(RDKitFeaturizer, "_compute", lambda self, s: calls.append(len(s)) or original(self, s))
    np.testing.assert_array_equal(enc.encode(SMILES, cache_dir=tmp_path), first)
    assert calls == []
    enc.encode(SMILES[::-1], cache_dir=tmp_path)
    assert calls, "a different input order must miss the cache"
    assert RDKitFeaturizer("morgan", n_bits=512).fingerprint(SMILES) != enc.fingerprint(SMILES)


def test_bad_inputs_are_named():
    from w2s_hf.features.chem import RDKitFeaturizer

    with pytest.raises(ValueError, match="rdkit:fingerprints"):
        RDKitFeaturizer("fingerprints")
    with pytest.raises(ValueError, match="not_a_smiles"):
        RDKitFeaturizer("morgan").encode(["CCO", "not_a_smiles"])


def test_rdkit_representation_on_a_text_task_is_refused(tmp_path):
    from w2s_hf.config import ConfigError, parse_config
    from w2s_hf.data.fixtures import write_synthetic_ellipse
    from w2s_hf.pipeline import W2SPipeline

    data = write_synthetic_ellipse(tmp_path / "e.csv", n=60, seed=0)
    config = parse_config(["--task", str(data), "--split", "random", "--weak_model", "rdkit:morgan",
                           "--strong_model", "rdkit:descriptors", "--output_dir", str(tmp_path / "run")])
    with pytest.raises(ConfigError, match="weak_model='rdkit:morgan'"):
        W2SPipeline(config)


def test_descriptor_scaler_is_fitted_on_the_given_training_rows_only(tmp_path):
    """Issue 12.3: the cache keeps raw descriptors; the scaler (median fill, mean, std, clip) is fitted
    on `fit_rows`, so changing the held-out rows changes none of the training rows' features."""
    from w2s_hf.features.chem import RDKitFeaturizer, standardise

    enc = RDKitFeaturizer("descriptors")
    fit = np.arange(len(SMILES) - 2)
    X = enc.encode(SMILES, cache_dir=tmp_path, fit_rows=fit)
    varying = X[fit].std(axis=0) > 0
    np.testing.assert_allclose(X[fit][:, varying].mean(axis=0), 0, atol=1e-5)
    # the held-out rows did not enter the statistics: replacing them leaves the fit rows unchanged
    other = [*SMILES[:-2], "c1ccccc1O", "CCCCCCCCCCCCCCCC(=O)O"]
    Y = enc.encode(other, cache_dir=tmp_path, fit_rows=fit)
    np.testing.assert_array_equal(X[fit], Y[fit])
    # the cached array is raw: a hit returns the same raw values, scaled anew per call
    raw = enc._compute(SMILES)
    np.testing.assert_allclose(X, standardise(raw, fit_rows=fit), atol=1e-6)
    assert not np.allclose(X, enc.encode(SMILES, cache_dir=tmp_path))  # all rows: other statistics


def test_pipeline_scales_descriptors_on_weak_train_and_w2s_train(tmp_path, monkeypatch):
    from w2s_hf.config import parse_config
    from w2s_hf.data import load_task
    from w2s_hf.features import chem
    from w2s_hf.pipeline import W2SPipeline

    seen = []
    original = chem.standardise
    monkeypatch.setattr(chem, "standardise", lambda x, **kw: seen.append(kw.get("fit_rows")) or original(x, **kw))
    config = parse_config(["--task", "esol", "--split", "random", "--weak_model", "rdkit:morgan",
                           "--strong_model", "rdkit:descriptors", "--output_dir", str(tmp_path / "run"),
                           "--cache_dir", str(tmp_path / "cache")])
    pipeline = W2SPipeline(config, task=load_task("esol", split="random", seed=0))
    pipeline.features("strong")
    index = pipeline.data.index
    assert len(seen) == 1 and set(seen[0]) == set(index["weak_train"]) | set(index["w2s_train"])
    assert not set(seen[0]) & (set(index["val"]) | set(index["test"]))
