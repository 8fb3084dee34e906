"""FrozenEncoder numbers: pooling, layers, padding and batching, checked against HuggingFace's own
`output_hidden_states` on tiny models saved to disk (tests/tiny_models.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from tiny_models import build_tiny, sentences
from transformers import AutoModel, AutoTokenizer

from w2s_hf.features import FrozenEncoder, build_representation, pool
from w2s_hf.features.encoder import plan_batches

TEXTS = sentences(24)


@functools.lru_cache(maxsize=16)
def hidden_states(path: str, texts: tuple[str, ...], max_length: int) -> list[tuple[torch.Tensor, ...]]:
    """Each text alone through the full model: its output_hidden_states (no padding anywhere)."""
    model = AutoModel.from_pretrained(path).eval()
    if model.config.is_encoder_decoder:
        model = model.get_encoder()
    tok = AutoTokenizer.from_pretrained(path)
    states = []
    for text in texts:
        enc = tok(text, return_tensors="pt", truncation=True, max_length=max_length, return_token_type_ids=False)
        with torch.no_grad():
            states.append(model(**enc, output_hidden_states=True).hidden_states)
    return states


def manual(path: str, texts: list[str], layer: int, pooling: str, max_length: int = 512) -> np.ndarray:
    """Reference features: output_hidden_states[layer] of each text alone, pooled by hand."""
    rows = []
    for states in hidden_states(path, tuple(texts), max_length):
        hidden = states[layer][0]
        rows.append({"mean": hidden.mean(0), "cls": hidden[0], "last": hidden[-1]}[pooling].numpy())
    return np.stack(rows)


def test_pool_reads_real_tokens_from_the_mask_for_both_padding_sides():
    torch.manual_seed(0)
    lengths = [5, 2, 7, 1]
    hidden = torch.randn(4, 7, 3)
    for side in ("right", "left"):
        mask = torch.zeros(4, 7, dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1 if side == "right" else 0
            if side == "left":
                mask[i, 7 - n :] = 1
        # garbage (even NaN) in padded positions must not leak into any pooled vector
        padded = hidden.masked_fill(mask.unsqueeze(-1) == 0, float("nan"))
        for i, n in enumerate(lengths):
            real = hidden[i, :n] if side == "right" else hidden[i, 7 - n :]
            expected = {"mean": real.mean(0), "cls": real[0], "last": real[-1]}
            for method, vec in expected.items():
                torch.testing.assert_close(pool(padded, mask, method)[i], vec)
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, torch.ones(4, 7), "max")


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_every_layer_and_pooling_matches_output_hidden_states(tiny_bert, tiny_gpt2, pooling):
    for path in (tiny_bert, tiny_gpt2):
        enc = FrozenEncoder(path, pooling=pooling, token_budget=300)
        got = enc.encode_layers(TEXTS, list(range(enc.num_layers + 1)), show_progress=False)
        for layer, features in got.items():
            assert features.dtype == np.float32 and features.shape == (len(TEXTS), 32)
            np.testing.assert_allclose(features, manual(path, TEXTS, layer, pooling), atol=1e-5, rtol=1e-4)


def test_last_token_pooling_same_under_left_and_right_padding(tiny_gpt2):
    right = FrozenEncoder(tiny_gpt2, pooling="last", token_budget=400, padding_side="right")
    left = FrozenEncoder(tiny_gpt2, pooling="last", token_budget=400, padding_side="left")
    assert len(plan_batches(np.array(sorted(map(len, TEXTS), reverse=True)), 400)) < len(TEXTS)  # real padding
    x_right, x_left = right.encode(TEXTS, show_progress=False), left.encode(TEXTS, show_progress=False)
    reference = manual(tiny_gpt2, TEXTS, -1, "last")
    np.testing.assert_allclose(x_right, reference, atol=1e-5)
    np.testing.assert_allclose(x_left, reference, atol=1e-5)


def test_a_row_does_not_depend_on_its_batch_mates(tiny_bert, tiny_gpt2):
    for path in (tiny_bert, tiny_gpt2):
        for pooling in ("mean", "last"):
            big = FrozenEncoder(path, pooling=pooling, token_budget=4096).encode(TEXTS, show_progress=False)
            small = FrozenEncoder(path, pooling=pooling, token_budget=64)
            np.testing.assert_allclose(small.encode(TEXTS, show_progress=False), big, atol=1e-5)
            # other companions and another order: each row must still be the same vector, in caller order
            picked = [7, 3, 19, 0, 11]
            np.testing.assert_allclose(
                small.encode([TEXTS[i] for i in picked], show_progress=False), big[picked], atol=1e-5
            )


def test_layers_above_the_requested_one_are_not_run(tiny_bert, tiny_gpt2):
    for path in (tiny_bert, tiny_gpt2):
        enc = FrozenEncoder(path, layer=1, pooling="mean")
        enc.encode(TEXTS[:2], show_progress=False)  # loads the model
        ran = []  # index of every block with any submodule (attention, MLP, norm) that started running
        hooks = [
            sub.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
            for i, block in enumerate(enc._reader.blocks)
            for sub in list(block.modules())[1:]
        ]
        try:
            got = enc.encode(TEXTS, show_progress=False)
        finally:
            for h in hooks:
                h.remove()
        assert ran and set(ran) == {0}, f"blocks {sorted(set(ran))} ran for layer 1"
        # same numbers as the full model's output_hidden_states[1] (GPT-2's ln_f must not be applied)
        np.testing.assert_allclose(got, manual(path, TEXTS, 1, "mean"), atol=1e-5)


def test_encode_layers_equals_separate_encode_calls(tiny_gpt2):
    joint = FrozenEncoder(tiny_gpt2, pooling="mean").encode_layers(TEXTS, [-1, 0, 2], show_progress=False)
    assert list(joint) == [-1, 0, 2]
    for layer in (-1, 0, 2):
        alone = FrozenEncoder(tiny_gpt2, pooling="mean", layer=layer).encode(TEXTS, show_progress=False)
        np.testing.assert_allclose(joint[layer], alone, atol=1e-6)


@pytest.mark.parametrize("model_type", ["t5", "llama", "roberta", "mpnet", "deberta-v2"])
def test_other_families_match_output_hidden_states(tmp_path, model_type):
    path = build_tiny(tmp_path / model_type, model_type)
    enc = FrozenEncoder(path, pooling="mean", token_budget=200)
    got = enc.encode_layers(TEXTS[:10], list(range(enc.num_layers + 1)), show_progress=False)
    assert enc._reader.fast  # the early-stopping path, not the fallback, was validated
    for layer, features in got.items():
        np.testing.assert_allclose(features, manual(path, TEXTS[:10], layer, "mean"), atol=1e-5, rtol=1e-4)


def test_max_length_truncates(tiny_bert):
    long_text = [" ".join(TEXTS)]
    got = FrozenEncoder(tiny_bert, max_length=8).encode(long_text, show_progress=False)
    np.testing.assert_allclose(got, manual(tiny_bert, long_text, -1, "mean", max_length=8), atol=1e-5)
    full = FrozenEncoder(tiny_bert, max_length=128).encode(long_text, show_progress=False)
    assert not np.allclose(got, full, atol=1e-3)


def test_bfloat16_is_close_to_float32_and_returns_float32(tiny_bert):
    fp32 = FrozenEncoder(tiny_bert).encode(TEXTS, show_progress=False)
    bf16 = FrozenEncoder(tiny_bert, dtype="bfloat16").encode(TEXTS, show_progress=False)
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - fp32).max() < 0.1 * np.abs(fp32).max()


def test_factory_builds_a_frozen_encoder(tiny_bert):
    rep = build_representation(tiny_bert, layer=2, pooling="cls")
    assert isinstance(rep, FrozenEncoder) and rep.layer == 2 and rep.hidden_size == 32


def test_bad_arguments_fail_before_loading(tiny_bert, tiny_gpt2):
    with pytest.raises(ValueError, match="pooling"):
        FrozenEncoder(tiny_bert, pooling="max")
    with pytest.raises(ValueError, match="dtype"):
        FrozenEncoder(tiny_bert, dtype="int8")
    with pytest.raises(ValueError, match=r"layer=5 is out of range .* 0\.\.4"):
        FrozenEncoder(tiny_bert, layer=5)
    with pytest.raises(ValueError, match="max_length"):
        FrozenEncoder(tiny_bert, max_length=0)
    enc = FrozenEncoder(tiny_gpt2)
    with pytest.raises(ValueError, match="single string"):
        enc.encode("one text")
    with pytest.raises(ValueError, match="empty"):
        enc.encode([])
    with pytest.raises(ValueError, match=r"texts\[1\] is float"):
        enc.encode(["ok", float("nan")])
    with pytest.raises(ValueError, match=r"texts\[1\] tokenize to zero tokens"):
        enc.encode(["ok", ""], show_progress=False)
    assert enc._model is None  # none of these loaded the model
