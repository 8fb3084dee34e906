"""Synthetic task files for tests and demos: ELLIPSE-format essays and small QSAR sets.

The essays are composed from sentence templates; a hidden writer "ability" sets the essay length, the
share of polished versus error-laden sentences and the use of connectives, and the six rubric scores
follow that ability plus rubric-specific text properties, so a linear head on text features has
something to learn. The molecules are built from ring and substituent fragments (valid SMILES by
construction) with targets computed from atom counts. Both are reproducible from `seed` and written
atomically (temporary file in the same folder, then `os.replace`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from w2s_hf.atomic import atomic_path
from w2s_hf.data.sources import ELLIPSE_RUBRICS

_TOPICS = [
    ("online classes", "learning from home"),
    ("cell phones at school", "using phones in class"),
    ("community service", "helping people in our town"),
    ("a four-day school week", "having a longer weekend"),
    ("summer projects", "working on a project over the summer"),
    ("extracurricular activities", "joining a club or a team"),
]
_CONNECTIVES = ["Furthermore, ", "However, ", "For example, ", "In addition, ", "As a result, ", "On the other hand, "]
_STRONG = [
    "{t} gives students the opportunity to develop responsibility and independence.",
    "many students discover that {a} strengthens their confidence and their communication skills.",
    "teachers have observed that {a} can improve concentration when it is organised carefully.",
    "a thoughtful approach to {t} would benefit both students and their families.",
    "critics argue that {t} distracts students, but the evidence suggests otherwise.",
    "when students take part in {a}, they learn to manage their time more effectively.",
    "the experience of {a} prepares young people for the responsibilities of adulthood.",
    "schools should consider the long-term consequences of {t} before making a decision.",
]
_WEAK = [
    "i think {t} is good becuase it help alot of student",
    "some people dont like {t} but i like it",
    "{a} is fun and is good for we",
    "my freind say {t} is bad but i dont agree with him",
    "in my opinion {t} it make student more happy",
    "student can do {a} and they learn thing",
    "{t} is very very important for the life of the student",
    "when i was in {a} i learn many thing and is good",
]


def _write_atomic(path: Path, header: list[str], rows: list[list]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _half_steps(x: np.ndarray) -> np.ndarray:
    """Round to the nearest 0.5 inside [1, 5], the ELLIPSE score scale."""
    return np.clip(np.round(x * 2.0) / 2.0, 1.0, 5.0)


def _essay(rng: np.random.Generator, ability: float) -> tuple[str, dict[str, float]]:
    topic, activity = _TOPICS[rng.integers(len(_TOPICS))]
    n_sentences = int(np.clip(round(4 + 14 * ability + rng.normal(0, 2)), 2, 24))
    sentences, n_strong, n_conn = [], 0, 0
    for _ in range(n_sentences):
        if rng.random() < 0.15 + 0.75 * ability:
            text = _STRONG[rng.integers(len(_STRONG))].format(t=topic, a=activity)
            if rng.random() < ability:
                text = _CONNECTIVES[rng.integers(len(_CONNECTIVES))] + text
                n_conn += 1
            sentences.append(text[0].upper() + text[1:])
            n_strong += 1
        else:
            # Learner sentences: lower-case start, a missing full stop half of the time.
            text = _WEAK[rng.integers(len(_WEAK))].format(t=topic, a=activity)
            sentences.append(text + ("." if rng.random() < 0.5 else ""))
    per_paragraph = int(rng.integers(2, 6))
    paragraphs = [" ".join(sentences[i : i + per_paragraph]) for i in range(0, len(sentences), per_paragraph)]
    words = " ".join(sentences).split()
    props = {
        "strong": n_strong / n_sentences,
        "connectives": n_conn / n_sentences,
        "length": min(len(words) / 250.0, 1.0),
        "word_length": float(np.mean([len(w) for w in words])),
    }
    return "\n\n".join(paragraphs), props


def write_synthetic_ellipse(path: str | os.PathLike, n: int = 200, seed: int = 0) -> Path:
    """Write `n` synthetic essays as an ELLIPSE/Kaggle `train.csv` (text_id, full_text, six rubrics).

    Scores are 1.0-5.0 in steps of 0.5, correlated with essay length, the share of error-free
    sentences, connectives (cohesion) and word length (vocabulary). Same `seed`, same file.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        ability = float(rng.beta(2.0, 2.0))
        text, p = _essay(rng, ability)
        base = 1.0 + 2.0 * p["strong"] + 1.2 * p["length"]
        specific = {
            "cohesion": 1.5 * p["connectives"],
            "syntax": 0.6 * p["strong"],
            "vocabulary": 0.5 * (p["word_length"] - 4.5),
            "phraseology": 0.4 * p["strong"] + 0.3 * p["length"],
            "grammar": 0.8 * p["strong"] - 0.2,
            "conventions": 0.7 * p["strong"],
        }
        scores = [float(_half_steps(np.array(base + specific[r] + rng.normal(0, 0.25)))) for r in ELLIPSE_RUBRICS]
        text_id = "".join(rng.choice(list("0123456789ABCDEF"), 12))
        rows.append([text_id, text, *scores])
    return _write_atomic(Path(path), ["text_id", "full_text", *ELLIPSE_RUBRICS], rows)


# (ring without a substituent, ring with one substituent slot); {d} is the ring-closure digit and {e}
# the second one a fused ring needs, so an outer and an inner ring never share a digit.
_RINGS = [
    ("c{d}ccccc{d}", "c{d}ccc({x})cc{d}"),
    ("c{d}ccncc{d}", "c{d}cc({x})ncc{d}"),
    ("c{d}ccsc{d}", "c{d}cc({x})sc{d}"),
    ("c{d}ccoc{d}", "c{d}cc({x})oc{d}"),
    ("C{d}CCCCC{d}", "C{d}CCC({x})CC{d}"),
    ("C{d}CCNCC{d}", "C{d}CCN({x})CC{d}"),
    ("C{d}CCCC{d}", "C{d}CCC({x})C{d}"),
    ("c{d}ccc{e}ccccc{e}c{d}", "c{d}ccc{e}cc({x})ccc{e}c{d}"),
]
_SUBSTITUENTS = ["", "C", "CC", "CCC", "O", "OC", "N", "Cl", "F", "Br", "C(=O)O", "C(=O)N", "C#N", "CO"]
_LINKERS = ["", "C", "CC", "O", "C(=O)N", "S"]


def _molecule(rng: np.random.Generator) -> str:
    # Written before the ring, so the atom that bonds to it must come last: nitrile as N#C.
    prefix = _SUBSTITUENTS[rng.integers(len(_SUBSTITUENTS))].replace("C#N", "N#C")
    plain, slotted = _RINGS[rng.integers(len(_RINGS))]
    if rng.random() < 0.5:
        inner = _SUBSTITUENTS[rng.integers(1, len(_SUBSTITUENTS))]
    else:
        second = _RINGS[rng.integers(len(_RINGS))][0].format(d=2, e=4)
        inner = _LINKERS[rng.integers(len(_LINKERS))] + second
    if rng.random() < 0.1:
        return prefix + "C" * int(rng.integers(2, 8)) + "O"  # acyclic: the empty scaffold
    return prefix + slotted.format(d=1, e=3, x=inner)


def write_synthetic_qsar(path: str | os.PathLike, n: int = 150, seed: int = 0) -> Path:
    """Write `n` distinct fragment-built molecules as CSV: mol_id, smiles, target_a, target_b.

    target_a grows with carbon and halogen count and falls with N/O count (a logP-like quantity);
    target_b tracks ring count and size. Both carry a little noise. Same `seed`, same file.
    """
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    for _ in range(200 * n):
        if len(seen) == n:
            break
        seen.setdefault(_molecule(rng), None)
    if len(seen) < n:
        raise ValueError(f"could only build {len(seen)} distinct molecules; ask for fewer than {n}")
    rows = []
    for i, smi in enumerate(seen):
        upper = smi.upper()
        carbons = upper.count("C") - upper.count("CL")
        hetero = upper.count("N") + upper.count("O")
        halogens = upper.count("CL") + upper.count("F") + upper.count("BR")
        rings = sum(ch.isdigit() for ch in smi) / 2.0
        target_a = 0.3 * carbons - 0.6 * hetero + 0.5 * halogens + rng.normal(0, 0.2)
        target_b = 1.0 * rings + 0.05 * len(smi) + rng.normal(0, 0.1)
        rows.append([f"mol-{i:04d}", smi, round(float(target_a), 4), round(float(target_b), 4)])
    return _write_atomic(Path(path), ["mol_id", "smiles", "target_a", "target_b"], rows)
