"""Tokenize many texts for a frozen encoder: in chunks with progress, huge texts cut before tokenizing.

Two costs used to come before the first progress line. A 1M-row file was tokenized in one silent
call (~450 s); here rows go through the tokenizer in chunks of `CHUNK_ROWS`, with a progress bar from
the first chunk, and the ids are kept as one flat int32 array (4 bytes a token instead of a Python
list's ~36). A 50 MB essay was tokenized whole and then truncated to `max_length` (348 s, 6.7 GB);
here a text longer than `char_bound(max_length)` characters is cut at a whitespace before that
bound first, and the cut is kept only when the cut text still has more tokens than truncation keeps.
Tokenizers split text into words before anything else (BERT's, byte-level BPE's and SentencePiece's
pre-tokenizers all do), so the tokens of a text cut at a word boundary are a prefix of the full
text's tokens, and truncation keeps the same ones: the features do not change (tests check it). A
cut that leaves too few tokens (few, very long words) falls back to the whole text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CHUNK_ROWS = 8192
# Characters kept per allowed token before checking: English runs ~4-5 characters a WordPiece token,
# SMILES ~1-2, so 32 leaves room for long words without tokenizing megabytes.
CHARS_PER_TOKEN = 32


def char_bound(max_length: int) -> int:
    """Characters a text is cut to before tokenizing, for at most `max_length` tokens."""
    return CHARS_PER_TOKEN * max_length + 256


def cut_text(text: str, bound: int) -> str:
    """`text` cut before the last whitespace within its first `bound` characters (unchanged if shorter,
    or if that part has no whitespace in its second half: no word boundary to cut at)."""
    if len(text) <= bound:
        return text
    head = text[:bound]
    stop = max(head.rfind(c) for c in (" ", "\n", "\t", "\r"))
    if stop < bound // 2:
        return text
    return head[:stop].rstrip()


@dataclass
class TokenTable:
    """Token ids of many rows in one flat array: row r is flat[offsets[r]:offsets[r + 1]]."""

    flat: np.ndarray
    offsets: np.ndarray
    type_flat: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.flat[self.offsets[row] : self.offsets[row + 1]]

    def types(self) -> _TypeRows | None:
        return None if self.type_flat is None else _TypeRows(self)


@dataclass
class _TypeRows:
    table: TokenTable

    def __getitem__(self, row: int) -> np.ndarray:
        t = self.table
        return t.type_flat[t.offsets[row] : t.offsets[row + 1]]


def cut_texts(tok: Any, texts: Sequence[str], max_length: int) -> list[str]:
    """`texts` with the long ones cut (see the module docstring); the others are the same objects."""
    bound = char_bound(max_length)
    cut = [cut_text(t, bound) for t in texts]
    changed = [i for i, (a, b) in enumerate(zip(texts, cut)) if a is not b]
    if changed:
        keep = max_length - tok.num_special_tokens_to_add(pair=False)
        counts = tok([cut[i] for i in changed], add_special_tokens=False, truncation=False, verbose=False,
                     return_attention_mask=False)["input_ids"]
        for i, ids in zip(changed, counts):
            if len(ids) <= keep:  # the cut might drop a token that truncation keeps: take the whole text
                cut[i] = texts[i]
    return cut


def tokenize_table(tok: Any, texts: Sequence[str], max_length: int, *, progress: Any = None) -> TokenTable:
    """Token ids (with special tokens, truncated to `max_length`) of every text, chunk by chunk.

    `progress(n)` is called after each chunk with its number of rows.
    """
    flats, types, offsets = [], [], [np.zeros(1, np.int64)]
    total = 0
    for start in range(0, len(texts), CHUNK_ROWS):
        part = cut_texts(tok, texts[start : start + CHUNK_ROWS], max_length)
        enc = tok(part, add_special_tokens=True, truncation=True, max_length=max_length, return_attention_mask=False)
        ids = enc["input_ids"]
        lengths = np.fromiter((len(seq) for seq in ids), dtype=np.int64, count=len(ids))
        flats.append(np.fromiter((t for seq in ids for t in seq), dtype=np.int32, count=int(lengths.sum())))
        if enc.get("token_type_ids") is not None:
            seqs = enc["token_type_ids"]
            types.append(np.fromiter((t for seq in seqs for t in seq), dtype=np.int8, count=int(lengths.sum())))
        offsets.append(total + np.cumsum(lengths))
        total += int(lengths.sum())
        if progress is not None:
            progress(len(part))
    flat = np.concatenate(flats) if flats else np.zeros(0, np.int32)
    type_flat = np.concatenate(types) if types else None
    return TokenTable(flat, np.concatenate(offsets), type_flat)
