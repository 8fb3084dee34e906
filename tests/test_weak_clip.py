"""weak_clip: the teacher clipped to the range of the gold labels it was fitted on, the same function when
reloaded from disk, part of the run's identity, and refused where it has no meaning."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from test_knobs import TARGETS, _config

from w2s_hf.heads import LinearHead
from w2s_hf.heads.bounded import BoundedHead, label_range


@pytest.fixture(scope="module")
def essays(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return str(write_synthetic_ellipse(tmp_path_factory.mktemp("clip") / "essays.csv", n=120, seed=3))


def test_bounded_head_clips_each_column_to_its_training_range():
    y = np.array([[1.0, -2.0], [3.0, 0.5], [2.0, 4.0]])
    bounds = label_range(y)
    assert bounds == {"low": [1.0, -2.0], "high": [3.0, 4.0]}
    inner = LinearHead(np.array([[10.0, 0.0], [0.0, -10.0]]), np.zeros(2))
    X = np.array([[0.2, 0.1], [-1.0, 1.0], [0.05, -0.3]])
    head = BoundedHead.from_record(inner, bounds)
    raw = inner.predict(X)
    expected = np.column_stack([np.clip(raw[:, 0], 1.0, 3.0), np.clip(raw[:, 1], -2.0, 4.0)])
    np.testing.assert_array_equal(head.predict(X), expected)
    assert head.clipped_share(X) == pytest.approx(np.mean((raw < [1.0, -2.0]) | (raw > [3.0, 4.0])))
    assert head.weight is inner.weight  # everything else is the inner head's
    one = BoundedHead(LinearHead(np.array([[5.0]]), np.zeros(1), output_1d=True), [0.0], [1.0])
    np.testing.assert_array_equal(one.predict(np.array([[-1.0], [0.1], [3.0]])), [0.0, 0.5, 1.0])
    # a value on the bound up to rounding (a minimum-norm teacher on a copy of its extreme row) is not "moved"
    assert one.clipped_share(np.array([[0.2 + 1e-15], [0.1], [-1e-15], [3.0]])) == 0.25
    with pytest.raises(ValueError, match="finite"):
        label_range(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="low <= high"):
        BoundedHead(inner, [2.0, 0.0], [1.0, 1.0])


def test_pipeline_clips_the_teacher_to_its_budget_labels(essays, tiny_bert, tiny_gpt2, tmp_path):
    """A minimum-norm teacher on 10 labels extrapolates outside their range; with weak_clip every weak label
    lies inside the range of exactly those 10 labels, the record says so, and a reloaded head agrees."""
    from w2s_hf.data import load_task
    from w2s_hf.pipeline import W2SPipeline

    task = load_task(essays, split="random", seed=0, targets=TARGETS)
    runs = {}
    for clip in (False, True):
        config = _config(essays, tiny_bert, tiny_gpt2, tmp_path / f"clip{clip}", weak_budget=10, ridge="theorem",
                         weak_ridge=0, weak_clip=clip)
        pipeline = W2SPipeline(config, task=task)
        pipeline.run()
        runs[clip] = pipeline
    budget = runs[True].train_subset("weak_train")
    gold = runs[True].gold["weak_train"][budget]
    low, high = gold.min(axis=0), gold.max(axis=0)
    raw = np.concatenate(list(runs[False].load_predictions("weak").values()))
    clipped = np.concatenate(list(runs[True].load_predictions("weak").values()))
    outside = (raw < low) | (raw > high)
    assert outside.any()  # the unclipped teacher does leave the range: the check below can fail
    assert ((clipped >= low) & (clipped <= high)).all()
    np.testing.assert_allclose(clipped[~outside], raw[~outside], rtol=0, atol=1e-12)  # inside: untouched
    record = json.loads((tmp_path / "clipTrue" / "heads" / "weak.json").read_text())["clip"]
    np.testing.assert_array_equal(record["low"], low)
    np.testing.assert_array_equal(record["high"], high)
    assert 0 < record["clipped_share_w2s_train"] <= 1
    # the student learned from the clipped labels; the ceiling never sees them
    assert not np.allclose(runs[True].load_predictions("w2s")["test"], runs[False].load_predictions("w2s")["test"])
    np.testing.assert_array_equal(runs[True].load_predictions("ceiling")["test"],
                                  runs[False].load_predictions("ceiling")["test"])
    # a fresh pipeline on the finished folder reuses every stage and reloads the same clipped function
    again = W2SPipeline(runs[True].config, task=task)
    X = again.rows("weak", "test")
    np.testing.assert_array_equal(again._head("weak").predict(X).reshape(len(X), -1),
                                  runs[True].load_predictions("weak")["test"])
    # weak_clip is part of the run's identity: the unclipped folder is not silently reused
    assert runs[True].identity_hash != runs[False].identity_hash
    assert "weak_clip" not in runs[False].identity  # at its default: older run folders keep their identity


def test_weak_clip_is_refused_where_it_has_no_meaning():
    from w2s_hf.config import ConfigError
    from w2s_hf.pipeline.protocol import HEADS
    from w2s_hf.pipeline.run import _check_weak_clip

    config = types.SimpleNamespace(head=types.SimpleNamespace(weak_clip=True))
    _check_weak_clip(config, types.SimpleNamespace(name="regression"), HEADS["weak"])
    with pytest.raises(ConfigError, match="classification"):
        _check_weak_clip(config, types.SimpleNamespace(name="classification"), HEADS["weak"])
    with pytest.raises(ConfigError, match="weak_lora"):
        _check_weak_clip(config, types.SimpleNamespace(name="regression"), HEADS["weak_lora"])
    # weak_clip off: nothing is checked
    _check_weak_clip(types.SimpleNamespace(head=types.SimpleNamespace(weak_clip=False)),
                     types.SimpleNamespace(name="classification"), HEADS["weak_lora"])
