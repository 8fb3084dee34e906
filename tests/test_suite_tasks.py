"""The W2S benchmark suite as built-in tasks, each on a tiny fixture in its dataset's raw Hub schema (a local
Hub-like parquet folder read through hf:), offline."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_hf.data import TaskDataError, TaskRows, load_task
from w2s_hf.data.suite import SUITE


def _write(root, splits: dict[str, dict]) -> str:
    import datasets

    (root / "data").mkdir(parents=True)
    for split, columns in splits.items():
        datasets.Dataset.from_dict(columns).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return f"hf:{root}"


def _sciq(n, s):
    return {"question": [f"{s} question {i}" for i in range(n)], "distractor1": [f"wrong1 {i}" for i in range(n)],
            "distractor2": [f"wrong2 {i}" for i in range(n)], "distractor3": [f"wrong3 {i}" for i in range(n)],
            "correct_answer": [f"right {i}" for i in range(n)],
            "support": ["" if i % 2 else f"fact {i}" for i in range(n)]}


def _boolq(n, s):
    return {"question": [f"is it {i}" for i in range(n)], "answer": [bool(i % 2) for i in range(n)],
            "passage": [f"{s} passage {i}" for i in range(n)]}


def _cosmos(n, s):
    return {"id": [f"{s}{i}" for i in range(n)], "context": [f"context {i}" for i in range(n)],
            "question": [f"why {i}" for i in range(n)], **{f"answer{k}": [f"ans{k} {i}" for i in range(n)]
                                                            for k in range(4)}, "label": [i % 4 for i in range(n)]}


def _anli(n, s):
    return {"uid": [f"{s}{i}" for i in range(n)], "premise": [f"premise {i}" for i in range(n)],
            "hypothesis": [f"hyp {i}" for i in range(n)], "label": [i % 3 for i in range(n)], "reason": [""] * n}


def _amazon(n, s):
    return {"label": [i % 2 for i in range(n)], "title": [f"title {i}" for i in range(n)],
            "content": [f"{s} review {i}" for i in range(n)]}


def _hh(n, s):
    return {"chosen": [f"\n\nHuman: {s} q{i}\n\nAssistant: kind {i}" for i in range(n)],
            "rejected": [f"\n\nHuman: {s} q{i}\n\nAssistant: rude {i}" for i in range(n)]}


FIXTURES = {"sciq": (_sciq, ("train", "validation", "test")), "boolq": (_boolq, ("train", "validation")),
            "cosmos_qa": (_cosmos, ("train", "validation")), "anli": (_anli, ("train_r2", "dev_r2", "test_r2")),
            "amazon_polarity": (_amazon, ("train", "test")), "anthropic_hh": (_hh, ("train", "test"))}


def _is_correct(name, text):
    """Whether a formatted text shows the correct answer, read back from the fixture's conventions."""
    if name == "sciq":
        return " A: right " in text
    if name == "cosmos_qa":
        i = int(text.split("why ")[1].split("\n")[0])
        return f"Answer: ans{i % 4} {i}" in text
    if name == "boolq":
        return int(text.split("is it ")[1].rstrip("?")) % 2 == 1
    if name == "anli":
        return int(text.split("premise ")[1].split("\n")[0]) % 3 == 0
    return int(text.split("title ")[1].split("\n")[0]) % 2 == 1


@pytest.mark.parametrize("name", [n for n in SUITE if SUITE[n].formatter is not None])
def test_a_suite_task_has_the_binary_form_on_its_raw_schema(tmp_path, name):
    make, splits = FIXTURES[name]
    sizes = {s: 40 if "train" in s else 12 for s in splits}
    source = _write(tmp_path / name, {s: make(sizes[s], s) for s in splits})
    task = load_task(name, path=source, seed=1)
    data = TaskRows.of(task)
    assert task.name == name and task.task_type == "classification" and task.classes == ["0", "1"]
    text_of = dict(zip(data.canonical_ids, data.canonical_texts))
    labels = []
    for split in data.ids:
        for pair_id, gold in zip(data.ids[split], data.gold[split][:, 0]):
            assert gold == float(_is_correct(name, text_of[pair_id])), (name, text_of[pair_id], gold)
            labels.append(gold)
    assert 0.2 < np.mean(labels) < 0.8  # both classes, near balance
    # the dataset's own splits: its evaluation split lands in test (and val, where it has one)
    held_out = [s for s in splits if "train" not in s]
    test_like = [i for i in data.ids["test"]]
    assert all(i.startswith("test-") for i in test_like) and len(test_like) == 12
    assert len(data.ids["val"]) == (12 if len(held_out) == 2 else 4)  # else carved from train (a tenth of 40)
    again = TaskRows.of(load_task(name, path=source, seed=1))
    assert again.canonical_texts == data.canonical_texts  # the coin is seeded


def test_anthropic_hh_is_a_preference_task(tmp_path):
    source = _write(tmp_path / "hh", {s: _hh(40 if s == "train" else 12, s) for s in ("train", "test")})
    task = load_task("anthropic_hh", path=source)
    data = TaskRows.of(task)
    assert task.task_type == "preference" and task.name == "anthropic_hh" and len(data.ids["test"]) == 12
    for k, pair_id in enumerate(data.canonical_ids):
        split = next(s for s in data.ids if pair_id in data.ids[s])
        gold = data.gold[split][data.ids[split].index(pair_id), 0]
        assert data.sides["first"][k].startswith("kind") == (gold == 1.0)


def test_the_suite_fails_offline_with_the_command_and_refuses_foreign_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(TaskDataError, match=r"hf:allenai/sciq is not in the datasets cache .*"
                                            r"load_dataset\('allenai/sciq'\)"):
        load_task("sciq")
    with pytest.raises(ValueError, match="suite task 'boolq' has a fixed form"):
        load_task("boolq", input_column="text")
    source = _write(tmp_path / "wrong", {"train": _amazon(30, "train"), "validation": _amazon(8, "v")})
    with pytest.raises(TaskDataError, match=r"suite task 'boolq' reads the raw google/boolq schema; column\(s\) "
                                            r"\['question', 'passage', 'answer'\] are missing"):
        load_task("boolq", path=source)
