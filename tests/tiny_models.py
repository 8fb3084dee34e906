"""Tiny, randomly initialised HuggingFace models saved to disk, for fast offline tests.

Each builder trains a tokenizer with the `tokenizers` library on a small local corpus (generated
here from a fixed word list and seed), creates a model with a tiny config (hidden size 32, a few
layers), and writes both with `save_pretrained`, so tests load them through the real
`AutoTokenizer` / `AutoModel.from_pretrained` code path.

    python tests/tiny_models.py /tmp/tiny     # writes /tmp/tiny/bert, /tmp/tiny/gpt2, ...
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

WORDS = (
    "the a an essay student students school teacher learn learning home class classes online "
    "write writing read reading think thinks believe because however therefore also very more "
    "most good better best bad time day days morning night work homework project idea ideas "
    "people friend friends family help helps important example reason reasons opinion agree "
    "disagree should could would can will must may might is are was were be been have has had "
    "do does did go goes went make makes made take takes took get gets got give gives gave "
    "carbon oxygen nitrogen ring bond molecule acid water solubility benzene chain atom"
).split()
PUNCT = [".", ",", "!", "?", ";"]


def corpus(n_sentences: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences of 3-30 words (with punctuation, digits and SMILES-ish strings)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 30))]
        if i % 7 == 0:
            words.append(str(rng.randint(0, 2024)))
        if i % 11 == 0:
            words.append(rng.choice(["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "ClC(Cl)Cl"]))
        lines.append(" ".join(words).capitalize() + rng.choice(PUNCT))
    return lines


def sentences(n: int, seed: int = 1) -> list[str]:
    """Test inputs of varied length (different seed from the tokenizer corpus)."""
    return corpus(n, seed)


def _wordpiece_tokenizer(model_max_length: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    # The vocabulary is built, not trained: tokenizers' WordPieceTrainer breaks frequency ties at random, so a
    # trained vocabulary (and every tiny-BERT number) differed from process to process. Every corpus word is
    # a token, plus each character alone and as a continuation (##c), in sorted order: the same in every run.
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words: set[str] = set()
    for line in corpus():
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({c for w in words for c in w})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = specials + chars + [f"##{c}" for c in chars] + sorted(words - set(chars))
    tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=model_max_length,
    )  # fmt: skip


def _bytelevel_tokenizer(model_max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    # Like GPT-2: an EOS token and no pad token (the encoder must cope).
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        model_max_length=model_max_length,
    )  # fmt: skip


def _save(model, tokenizer, path: str | Path) -> str:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def build_tiny_bert(path: str | Path, *, seed: int = 0, num_layers: int = 4) -> str:
    """A 4-layer BERT (hidden 32) with a WordPiece tokenizer; returns the folder."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = _wordpiece_tokenizer(model_max_length=128)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    return _save(BertModel(config).eval(), tokenizer, path)


def build_tiny_gpt2(path: str | Path, *, seed: int = 0, num_layers: int = 4) -> str:
    """A 4-layer GPT-2 (hidden 32) with a byte-level BPE tokenizer and no pad token; returns the folder."""
    import torch
    from transformers import GPT2Config, GPT2Model

    tokenizer = _bytelevel_tokenizer(model_max_length=128)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=num_layers, n_head=4, n_positions=128,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    return _save(GPT2Model(config).eval(), tokenizer, path)


def build_tiny(path: str | Path, model_type: str, *, seed: int = 0) -> str:
    """Other families on the WordPiece tokenizer: "t5", "llama", "roberta", "mpnet", "deberta-v2", ..."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModel

    if model_type == "bert":
        return build_tiny_bert(path, seed=seed)
    if model_type == "gpt2":
        return build_tiny_gpt2(path, seed=seed)
    tokenizer = _wordpiece_tokenizer(model_max_length=64)
    common = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    sizes = {
        "t5": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 3, "num_decoder_layers": 2, "num_heads": 4,
               "decoder_start_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id},
        "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "max_position_embeddings": 64},
    }.get(model_type, {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
                       "intermediate_size": 64, "max_position_embeddings": 70})  # fmt: skip
    config = CONFIG_MAPPING[model_type](**common, **sizes)
    torch.manual_seed(seed)
    return _save(AutoModel.from_config(config).eval(), tokenizer, path)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_models")
    print(build_tiny_bert(out / "bert"))
    print(build_tiny_gpt2(out / "gpt2"))
