"""The `evaluate` metric module loads offline from its folder and agrees with w2s_hf.decompose."""

import os

import numpy as np
import pytest

from w2s_hf.decomposition.core import decompose
from w2s_hf.hooks.evaluation import metric_path

QUANTITIES = ("weak_error", "w2s_error", "misfit", "gain", "residual", "predicted_w2s_error", "ceiling_error", "pgr")


@pytest.fixture(scope="module")
def metric():
    import evaluate

    # conftest sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE and a throwaway HF_HOME
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return evaluate.load(metric_path())


def arrays(k=None, n=50, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if k is None else (n, k)
    y = rng.normal(size=shape)
    return y, y + rng.normal(size=shape), y + 0.5 * rng.normal(size=shape), y + 0.2 * rng.normal(size=shape)


def test_metric_loads_offline_from_the_folder_named_like_its_script(metric):
    assert type(metric).__name__ == "MisfitDecomposition"
    assert "misfit" in metric.description.lower()
    assert sorted(metric._feature_names()) == ["predictions", "references", "weak_predictions"]


def test_metric_agrees_with_decompose_on_one_target(metric):
    y, weak, w2s, ceiling = arrays()
    out = metric.compute(predictions=w2s.tolist(), weak_predictions=weak.tolist(), references=y.tolist(),
                         ceiling_predictions=ceiling.tolist(), n_boot=200, seed=3)
    want = decompose(y, weak, w2s, ceiling, n_boot=200, seed=3)
    for q in QUANTITIES:
        assert out[q] == pytest.approx(getattr(want, q), rel=1e-12), q
    assert out["n"] == 50
    assert out["misfit_ci"] == pytest.approx(want.ci["misfit"], rel=1e-12)
    # without a ceiling, ceiling quantities are None
    out = metric.compute(predictions=w2s, weak_predictions=weak, references=y, n_boot=0)
    assert out["ceiling_error"] is None and out["pgr"] is None and "misfit_ci" not in out


def test_metric_batches_and_several_targets(metric):
    y, weak, w2s, ceiling = arrays(k=3, seed=1)
    for start in range(0, 50, 16):  # add_batch in pieces, like an evaluation loop
        rows = slice(start, start + 16)
        metric.add_batch(
            predictions=w2s[rows].tolist(), weak_predictions=weak[rows].tolist(), references=y[rows].tolist()
        )
    out = metric.compute(ceiling_predictions=ceiling.tolist(), target_names=["a", "b", "c"], n_boot=0)
    want = decompose(y, weak, w2s, ceiling, target_names=["a", "b", "c"], n_boot=0)
    for q in QUANTITIES:
        assert out[q] == pytest.approx(getattr(want, q), rel=1e-12), q
        for t in "abc":
            assert out[f"{t}/{q}"] == pytest.approx(want.per_target[t][q], rel=1e-12)


def test_metric_docstring_example(metric):
    out = metric.compute(
        predictions=[1.0, 2.0, 2.5], weak_predictions=[1.5, 1.0, 3.0], references=[1.0, 2.0, 3.0], n_boot=0
    )
    assert (round(out["misfit"], 4), round(out["gain"], 4)) == (0.5, 0.3333)
    with pytest.raises(ValueError, match="shape"):
        metric.compute(
            predictions=[1.0, 2.0],
            weak_predictions=[1.0, 2.0],
            references=[1.0, 2.0],
            ceiling_predictions=[1.0],
            n_boot=0,
        )
