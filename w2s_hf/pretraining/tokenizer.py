"""An atom-level SMILES tokenizer built with `tokenizers`, saved as a `PreTrainedTokenizerFast`.

SMILES are split by the regular expression of Schwaller et al. (2019): bracket atoms (`[C@@H]`,
`[nH+]`), two-letter elements (`Cl`, `Br`), organic-subset atoms, bonds, branches, ring-bond digits and
`%nn`. Every token of the corpus is one vocabulary entry. A bracket atom the corpus never showed is
not mapped to `[UNK]`: the model is WordPiece with every printable character (and its `##`
continuation) in the vocabulary, so it splits into characters, and decoding gives back the SMILES.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable

SMILES_REGEX = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|\%[0-9]{2}|[0-9])"
)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = [c for c in string.printable if not c.isspace()]


def split_smiles(smiles: str) -> list[str]:
    """The atom-level tokens of one SMILES: the pre-tokenizer's split, where characters outside the
    grammar stay, one token each."""
    import re

    out, pos = [], 0
    for match in re.finditer(SMILES_REGEX, smiles):
        out.extend(smiles[pos : match.start()])
        out.append(match.group(0))
        pos = match.end()
    out.extend(smiles[pos:])
    return out


def build_smiles_tokenizer(corpus: Iterable[str], *, model_max_length: int = 256, min_frequency: int = 1):
    """A `PreTrainedTokenizerFast` whose vocabulary is every atom-level token of `corpus` (see module doc)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    counts: Counter[str] = Counter()
    for smiles in corpus:
        counts.update(split_smiles(smiles))
    vocab_list = list(SPECIAL_TOKENS)
    vocab_list += sorted(t for t, c in counts.items() if c >= min_frequency and t not in vocab_list)
    vocab_list += [f"%{i}" for i in range(10, 100) if f"%{i}" not in vocab_list]
    vocab_list += [c for c in _CHARS if c not in vocab_list]
    vocab_list += ["##" + c for c in _CHARS]
    vocab = {token: i for i, token in enumerate(vocab_list)}

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=200))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SMILES_REGEX), behavior="isolated")
    # No spaces between tokens: a SMILES has none, so fusing the pieces is the exact inverse.
    tok.decoder = decoders.Sequence([decoders.Replace("##", ""), decoders.Fuse()])
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model_max_length, pad_token="[PAD]", unk_token="[UNK]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", clean_up_tokenization_spaces=False,
    )  # fmt: skip
