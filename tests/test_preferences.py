"""Pairwise preferences (task_type: preference): importers, checks, sides extracted once, Bradley–Terry heads
(1 = 2 processes), the binary-KL decomposition and a pipeline run on tiny models."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import fresh_fork_state

from w2s_hf.data import TaskDataError, TaskRows, load_task
from w2s_hf.data.preferences import TARGET
from w2s_hf.decomposition.core import decompose

WORDS = "good bad essay reason idea example because however school friend".split()


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ab_rows(n=120, seed=0):
    """Comparison rows whose label is decided by the texts: more 'good' than 'bad' wins."""
    rng = np.random.default_rng(seed)

    def text():
        return " ".join(rng.choice(WORDS, size=rng.integers(4, 12)))

    rows = []
    while len(rows) < n:
        a, b = text(), text()
        score = lambda t: t.split().count("good") - t.split().count("bad")  # noqa: E731
        if score(a) != score(b):
            rows.append({"prompt": "Which answer is better?", "first": a, "second": b,
                         "label": "A" if score(a) > score(b) else "B"})
    return rows


def _gold(data, pair_id):
    split = next(s for s in data.ids if pair_id in data.ids[s])
    return data.gold[split][data.ids[split].index(pair_id), 0]


# ---------------------------------------------------------------------- importers and checks
def test_ab_rows_load_as_a_preference_task(tmp_path):
    rows = ab_rows(60)
    task = load_task(_write_jsonl(tmp_path / "pairs.jsonl", rows), task_type="preference", seed=3)
    data = TaskRows.of(task)
    assert task.task_type == "preference" and task.targets == [TARGET] and sum(task.sizes().values()) == 60
    by_id = {f"pair-{i + 1}": r for i, r in enumerate(rows)}
    for split in data.ids:
        for pair_id, gold in zip(data.ids[split], data.gold[split][:, 0]):
            assert gold == (1.0 if by_id[pair_id]["label"] == "A" else 0.0)
    # the canonical sides are the rows' texts, in the canonical (id) order
    k = data.canonical_ids.index("pair-7")
    assert (data.sides["prompt"][k], data.sides["first"][k], data.sides["second"][k]) == (
        rows[6]["prompt"], rows[6]["first"], rows[6]["second"])


@pytest.mark.parametrize("label, match", [("C", "row 2 \\('C'\\)"), (1, "row 2 \\(1\\)"), (None, "row 2")])
def test_a_label_outside_a_b_is_one_line_naming_the_row(tmp_path, label, match):
    rows = ab_rows(30)
    rows[1]["label"] = label
    with pytest.raises(TaskDataError, match=f"column 'label' must be 'A'.*{match}") as err:
        load_task(_write_jsonl(tmp_path / "p.jsonl", rows), task_type="preference")
    assert "\n" not in str(err.value) and err.value.rows == [2]


def test_a_pair_with_an_empty_side_is_refused(tmp_path):
    rows = ab_rows(30)
    rows[4]["second"] = "   "
    with pytest.raises(TaskDataError, match="empty second side \\(column 'second'\\) in 1 row: row 5"):
        load_task(_write_jsonl(tmp_path / "p.jsonl", rows), task_type="preference")
    hh = [{"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant:"}] * 30
    with pytest.raises(TaskDataError, match="column 'chosen/rejected'"):
        load_task(_write_jsonl(tmp_path / "hh.jsonl", hh), task_type="preference")


def test_binary_rows_pair_each_wrong_choice_with_a_right_one(tmp_path):
    rows = []
    for q in range(30):
        rows += [{"question": f"question {q}?", "choice": f"right {q}", "label": True},
                 {"question": f"question {q}?", "choice": f"wrong {q} a", "label": False},
                 {"question": f"question {q}?", "choice": f"wrong {q} b", "label": "false"}]
    rows.append({"question": "lonely?", "choice": "only wrong", "label": False})  # no right answer: no pair
    task = load_task(_write_jsonl(tmp_path / "binary.jsonl", rows), task_type="preference")
    data = TaskRows.of(task)
    assert len(data.canonical_ids) == 60
    for k, pair_id in enumerate(data.canonical_ids):
        first, second = data.sides["first"][k], data.sides["second"][k]
        right_first = first.startswith("right")
        assert right_first != second.startswith("right") and data.sides["prompt"][k].startswith("question")
        assert _gold(data, pair_id) == float(right_first)
    labels = np.concatenate([data.gold[s][:, 0] for s in data.gold])
    assert 0.3 < labels.mean() < 0.7  # the coin orders the pairs: position carries no signal
    rows[0]["label"] = "maybe"
    with pytest.raises(TaskDataError, match="column 'label' must be true/false; 1 row: row 1"):
        load_task(_write_jsonl(tmp_path / "bad.jsonl", rows), task_type="preference")


def test_chosen_rejected_pairs_hh_transcripts_and_message_lists(tmp_path):
    hh = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: fine {i}\n\nHuman: more?\n\nAssistant: good answer {i}",
           "rejected": f"\n\nHuman: q{i}\n\nAssistant: fine {i}\n\nHuman: more?\n\nAssistant: bad {i}"}
          for i in range(40)]
    task = load_task(_write_jsonl(tmp_path / "hh.jsonl", hh), task_type="preference", seed=1)
    data = TaskRows.of(task)
    for k, pair_id in enumerate(data.canonical_ids):
        i = int(pair_id.split("-")[1]) - 1
        assert data.sides["prompt"][k] == f"\n\nHuman: q{i}\n\nAssistant: fine {i}\n\nHuman: more?\n\nAssistant:"
        assert {data.sides["first"][k], data.sides["second"][k]} == {f"good answer {i}", f"bad {i}"}
        assert data.sides["first"][k].startswith("good") == (_gold(data, pair_id) == 1.0)
    turn = lambda role, text: {"role": role, "content": text}  # noqa: E731
    uf = [{"prompt": f"p{i}", "chosen": [turn("user", f"p{i}"), turn("assistant", "yes")],
           "rejected": [turn("user", f"p{i}"), turn("assistant", f"no {i}")]} for i in range(40)]
    data = TaskRows.of(load_task(_write_jsonl(tmp_path / "uf.jsonl", uf), task_type="preference"))
    assert {data.sides["prompt"][0]} <= {f"p{i}" for i in range(40)}
    assert all({f, s} & {"yes"} for f, s in zip(data.sides["first"], data.sides["second"]))


def test_preference_tasks_refuse_the_options_of_other_kinds(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", ab_rows(30))
    with pytest.raises(ValueError, match="template do not apply to task_type='preference'"):
        load_task(path, task_type="preference", template="{first}")
    with pytest.raises(TaskDataError, match="not a preference table"):
        load_task(_write_jsonl(tmp_path / "x.jsonl", [{"text": "a", "y": 1}] * 30), task_type="preference")


# ---------------------------------------------------------------------- features: each side once
class CountingEncoder:
    """Features = a hash of each input; remembers every list it was asked to encode."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, **kwargs):
        self.calls.append(list(texts))
        return np.array([[hash(json.dumps(t)) % 997, len(json.dumps(t))] for t in texts], dtype=np.float32)


def test_each_distinct_side_is_encoded_once_and_the_features_are_differences():
    from w2s_hf.features.pairs import pair_difference

    essays = [f"essay {i}" for i in range(5)]
    firsts = [essays[i % 5] for i in range(20)]
    seconds = [essays[(i + 1 + i // 5) % 5] for i in range(20)]
    enc = CountingEncoder()
    X = pair_difference(enc, [""] * 20, firsts, seconds)
    assert len(enc.calls) == 1 and sorted(enc.calls[0]) == essays  # 20 pairs, 5 forward inputs
    one = lambda t: enc.encode([t])[0]  # noqa: E731
    for k in range(20):
        assert np.array_equal(X[k], one(firsts[k]) - one(seconds[k]))
    X2 = pair_difference(CountingEncoder(), ["Which?"] * 20, firsts, seconds)  # with a prompt: (prompt, side) pairs
    assert not np.array_equal(X, X2)


def test_a_real_encoder_caches_the_sides_by_text(tiny_bert, tmp_path):
    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.pairs import pair_difference, unique_sides

    prompts, firsts, seconds = ["Which is better?"] * 6, ["a good essay"] * 3 + ["bad"] * 3, ["bad", "so so", "x"] * 2
    enc = FrozenEncoder(tiny_bert, max_length=32)
    X = pair_difference(enc, prompts, firsts, seconds, cache_dir=tmp_path, show_progress=False)
    inputs, i, j = unique_sides(prompts, firsts, seconds)
    assert len(inputs) == 4
    direct = FrozenEncoder(tiny_bert, max_length=32).encode(inputs, show_progress=False)
    assert np.allclose(X, direct[i] - direct[j], atol=1e-6)
    again = FrozenEncoder(tiny_bert, max_length=32)
    again._extract = None  # a cache hit runs no extraction at all
    assert np.array_equal(pair_difference(again, prompts, firsts, seconds, cache_dir=tmp_path,
                                          show_progress=False), X)


# ---------------------------------------------------------------------- Bradley–Terry heads
def _bt_data(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    t = (rng.random(n) < 1 / (1 + np.exp(-X @ w))).astype(float)
    return X, t, w


def test_the_bradley_terry_head_is_the_penalised_logistic_optimum_and_antisymmetric():
    from w2s_hf.heads.bradley_terry import fit_bradley_terry

    X, t, w_true = _bt_data()
    head, record = fit_bradley_terry(X, t, X, t, loss="binary_xent", ridge=1e-3)
    s = head.predict(X)[:, 0]
    lam = 1e-3 * np.mean(X * X)
    assert np.abs(X.T @ (s - t) / len(t) + lam * head.weight).max() < 1e-9  # the stationarity condition
    assert np.allclose(head.predict(-X)[:, 0], 1 - s)  # swapping the sides gives 1 - p
    assert np.corrcoef(head.weight, w_true)[0, 1] > 0.9
    auto, record = fit_bradley_terry(X[:300], t[:300], X[300:], t[300:], loss="binary_xent")
    assert record["ridge"] in [r["ridge"] for r in record["ridge_path"]]
    assert record["val_loss"] == min(r["val_loss"] for r in record["ridge_path"])


def test_a_reverse_kl_student_matches_its_teacher_where_it_can():
    """A teacher inside the class (p = sigmoid(X w)): the reverse-KL projection is the teacher itself."""
    from w2s_hf.heads.bradley_terry import fit_bradley_terry

    X, _, w = _bt_data(seed=1)
    p = 1 / (1 + np.exp(-X @ w))
    for loss in ("reverse_binary_kl", "binary_xent"):
        head, _ = fit_bradley_terry(X, p, X, p, loss=loss, ridge=1e-9)
        assert np.abs(head.weight - w).max() < 1e-4, loss


def _bt_worker(out_path, X, t, halves):
    fresh_fork_state()
    from accelerate import Accelerator

    from w2s_hf.heads.bradley_terry import fit_bradley_terry

    acc = Accelerator(cpu=True)
    rows = np.arange(acc.process_index, len(X), acc.num_processes) if halves else np.arange(len(X))
    head, record = fit_bradley_terry(X[rows], t[rows], X[rows], t[rows], loss="binary_xent", accelerator=acc)
    if acc.is_main_process:
        np.save(out_path, np.concatenate([head.weight, [record["ridge"]]]))


def test_two_processes_fit_the_head_of_one(tmp_path):
    from accelerate import debug_launcher

    X, t, _ = _bt_data(n=300, seed=2)
    one = tmp_path / "one.npy"
    _bt_worker(one, X, t, False)
    two = tmp_path / "two.npy"
    debug_launcher(lambda: _bt_worker(two, X, t, True), num_processes=2)
    assert np.allclose(np.load(one), np.load(two), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- the decomposition
def test_binary_kl_is_cross_entropy_against_labels_and_kl_between_models():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.5).astype(float)[:, None]
    weak, w2s, ceil = (np.clip(rng.random((200, 1)), 0.01, 0.99) for _ in range(3))
    dec = decompose(y, weak, w2s, ceil, divergence="binary_kl", n_boot=0)
    bce = lambda p: float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))  # noqa: E731
    assert dec.weak_error == pytest.approx(bce(weak)) and dec.w2s_error == pytest.approx(bce(w2s))
    kl = np.mean(w2s * np.log(w2s / weak) + (1 - w2s) * np.log((1 - w2s) / (1 - weak)))
    assert dec.misfit == pytest.approx(kl)
    assert dec.extras["w2s_accuracy"] == pytest.approx(np.mean((w2s > 0.5) == (y > 0.5)))
    with pytest.raises(ValueError, match="binary KL takes one probability per row"):
        decompose(y, np.hstack([weak, 1 - weak]), np.hstack([w2s, 1 - w2s]), divergence="binary_kl")


# ---------------------------------------------------------------------- the pipeline
def test_a_preference_run_fits_bradley_terry_heads_and_reports_the_binary_kl(tiny_bert, tiny_gpt2, tmp_path):
    from w2s_hf.config import parse_config
    from w2s_hf.pipeline.run import W2SPipeline

    path = _write_jsonl(tmp_path / "pairs.jsonl", ab_rows(160, seed=4))
    config = parse_config([
        "--task", str(path), "--task_type", "preference", "--split", "random",
        "--weak_model", tiny_bert, "--weak_max_length", "32", "--strong_model", tiny_gpt2, "--strong_pooling",
        "last", "--strong_max_length", "32", "--report_to", "none", "--n_boot", "20", "--plot", "false",
        "--output_dir", str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache")])
    pipe = W2SPipeline(config)
    results = pipe.run()
    test = results["splits"]["test"]
    assert test["divergence"] == "binary_kl" and results["task"]["task_type"] == "preference"
    assert results["heads"]["w2s"]["loss"] == "reverse_binary_kl" and results["heads"]["weak"]["loss"] == "binary_xent"
    with open(tmp_path / "run" / "predictions" / "w2s.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert TARGET in rows[0]
    preds = {}
    for name in ("weak", "w2s"):
        with open(tmp_path / "run" / "predictions" / f"{name}.csv", newline="") as fh:
            preds[name] = {r["id"]: float(r[TARGET]) for r in csv.DictReader(fh) if r["split"] == "test"}
    ids = pipe.data.ids["test"]
    # probabilities are clipped to [1e-12, 1 - 1e-12] by the divergence (a saturated head writes 0 or 1)
    w, s = (np.clip([preds[n][i] for i in ids], 1e-12, 1 - 1e-12) for n in ("weak", "w2s"))
    y = pipe.gold["test"][:, 0]
    assert test["misfit"] == pytest.approx(np.mean(s * np.log(s / w) + (1 - s) * np.log((1 - s) / (1 - w))), rel=1e-9)
    assert test["w2s_error"] == pytest.approx(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)), rel=1e-9)
    assert "pgr" in test and "weak_accuracy" in test["extras"]
