"""The weak-to-strong benchmark suite as built-in tasks: sciq, boolq, cosmos_qa, anli, amazon_polarity, anthropic_hh.

Each task reads the dataset's raw Hub schema through the front door (`w2s_hf.data.hub`) and turns every
row into the form the OpenAI (Burns et al. 2023) and EleutherAI w2s code train on: one text and a binary
label, the correct answer or a distractor chosen by a seeded coin per row (so the classes are balanced
and a row's form does not depend on the others). anthropic_hh stays a pair, as a reward model sees it:
a preference task (`task_type: preference`, chosen vs rejected). Sources, licences and forms: `SUITE`
and docs/field.md. Offline, a dataset not in the cache fails at once with the command that caches it;
`path` points a task at a local copy in the same schema (a `hf:` folder or a save_to_disk folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import TaskDataError
from .splits import rng_for

_STREAM_FORM = 11  # the per-row coin that picks the correct answer or a distractor


@dataclass(frozen=True)
class SuiteTask:
    name: str
    hub: str  # the Hub dataset
    licence: str
    form: str  # what a row becomes
    split_map: dict[str, str]
    formatter: Callable[[dict, np.random.Generator], tuple[str, int]] | None = None  # None: a preference task
    config_name: str | None = None
    columns: tuple[str, ...] = field(default_factory=tuple)  # raw columns the formatter reads


def _answer_or_distractor(correct: str, wrong: list[str], rng: np.random.Generator) -> tuple[str, int]:
    wrong = [w for w in wrong if str(w).strip() and w != correct]
    if not wrong or rng.random() < 0.5:
        return correct, 1
    return wrong[int(rng.integers(len(wrong)))], 0


def _sciq(row: dict, rng: np.random.Generator) -> tuple[str, int]:
    answer, label = _answer_or_distractor(row["correct_answer"], [row[f"distractor{i}"] for i in (1, 2, 3)], rng)
    support = f"{row['support'].strip()}\n" if str(row.get("support") or "").strip() else ""
    return f"{support}Q: {row['question']} A: {answer}", label


def _boolq(row: dict, rng: np.random.Generator) -> tuple[str, int]:
    return f"Passage: {row['passage']}\n\nQuestion: {row['question']}?", int(bool(row["answer"]))


def _cosmos_qa(row: dict, rng: np.random.Generator) -> tuple[str, int]:
    answers = [row[f"answer{i}"] for i in range(4)]
    answer, label = _answer_or_distractor(answers[int(row["label"])], answers, rng)
    return f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {answer}", label


def _anli(row: dict, rng: np.random.Generator) -> tuple[str, int]:
    text = f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\n\nDoes the premise entail the hypothesis?"
    return text, int(int(row["label"]) == 0)  # 0 = entailment; neutral and contradiction are "no"


def _amazon_polarity(row: dict, rng: np.random.Generator) -> tuple[str, int]:
    return f"Title: {row['title']}\nReview: {row['content']}", int(row["label"])


SUITE: dict[str, SuiteTask] = {t.name: t for t in (
    SuiteTask("sciq", "allenai/sciq", "CC BY-NC 3.0",
              "binary: support + 'Q: question A: answer', the correct answer or one of 3 distractors (coin)",
              {"train": "train", "validation": "val", "test": "test"}, _sciq,
              columns=("question", "correct_answer", "distractor1", "distractor2", "distractor3", "support")),
    SuiteTask("boolq", "google/boolq", "CC BY-SA 3.0", "binary: passage + question, label = the yes/no answer",
              {"train": "train", "validation": "test"}, _boolq, columns=("question", "passage", "answer")),
    SuiteTask("cosmos_qa", "allenai/cosmos_qa", "CC BY 4.0",
              "binary: context + question + an answer, the correct one or one of the 3 others (coin)",
              {"train": "train", "validation": "test"}, _cosmos_qa,
              columns=("context", "question", "answer0", "answer1", "answer2", "answer3", "label")),
    SuiteTask("anli", "facebook/anli", "CC BY-NC 4.0",
              "binary (round 2): premise + hypothesis, label = entailment (neutral, contradiction = 0)",
              {"train_r2": "train", "dev_r2": "val", "test_r2": "test"}, _anli,
              columns=("premise", "hypothesis", "label")),
    SuiteTask("amazon_polarity", "fancyzhx/amazon_polarity", "Apache 2.0",
              "binary: title + review, label = positive", {"train": "train", "test": "test"}, _amazon_polarity,
              columns=("title", "content", "label")),
    SuiteTask("anthropic_hh", "Anthropic/hh-rlhf", "MIT",
              "preference: the dialogue up to the last 'Assistant:' as prompt, chosen vs rejected reply "
              "(order by a seeded coin)", {"train": "train", "test": "test"}),
)}


def suite_frame(task: SuiteTask, source: str | None, seed: int, **hub: Any) -> tuple[Any, str]:
    """(table with columns id, text, label and the split column, where) of a classification suite task."""
    from .hub import SPLIT_COLUMN, read_dataset

    frame, where = read_dataset(source or f"hf:{task.hub}", config_name=hub.get("config_name") or task.config_name,
                                revision=hub.get("revision"), data_files=hub.get("data_files"),
                                split_map=hub.get("split_map") or task.split_map)
    missing = [c for c in task.columns if c not in frame.columns]
    if missing:
        raise TaskDataError(f"{where}: suite task {task.name!r} reads the raw {task.hub} schema; column(s) {missing} "
                            f"are missing (the table has {sorted(frame.columns)})", path=where, column=missing[0])
    rng = rng_for(seed, _STREAM_FORM)
    texts, labels = [], []
    for row in frame[list(task.columns)].to_dict("records"):
        text, label = task.formatter(row, rng)
        texts.append(text)
        labels.append(str(label))
    import pandas as pd

    out = pd.DataFrame({"id": [f"{s}-{i}" for i, s in enumerate(frame[SPLIT_COLUMN])], "text": texts,
                        "label": labels, SPLIT_COLUMN: frame[SPLIT_COLUMN]})
    return out, f"{where} as suite task {task.name!r}"
