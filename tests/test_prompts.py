"""Prompts for decoder LLMs: templates over a row's columns, text pairs, the tokenizer's chat template, and
last-token pooling under left and right padding with and without BOS/EOS, on tiny Llama- and Qwen2-shaped
models built from config, against a manual forward pass of each text alone."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from tiny_models import corpus, sentences

from w2s_hf.data import TaskDataError, TaskRows, load_task
from w2s_hf.features import FrozenEncoder

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA_CHAT = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}"
              "{% if add_generation_prompt %}[assistant]{% endif %}")


def _decoder_tokenizer(bos: bool, eos: bool, chat: str | None):
    """A byte-level BPE tokenizer with <s>, </s>, <pad> and ChatML tokens; BOS / EOS added or not."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                          show_progress=False))
    single = " ".join((["<s>"] if bos else []) + ["$A"] + (["</s>"] if eos else []))
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  model_max_length=64)
    if chat:
        out.chat_template = chat
    return out


def build_decoder(path, family: str, *, bos: bool, eos: bool, chat: str | None = None) -> str:
    """A tiny Llama- or Qwen2-shaped model (2 layers, hidden 32) from config, saved with its tokenizer."""
    from transformers import CONFIG_MAPPING, AutoModel

    tok = _decoder_tokenizer(bos, eos, chat)
    config = CONFIG_MAPPING[family](vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                    pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                    eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModel.from_config(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def manual_last_token(path: str, ids: list[list[int]]) -> np.ndarray:
    """The last layer's state at the last token of each sequence, run alone (no padding at all)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path).eval()
    with torch.inference_mode():
        return np.stack([model(input_ids=torch.tensor([seq]), output_hidden_states=True).hidden_states[-1][0, -1]
                         .numpy() for seq in ids])


VARIANTS = [("llama", True, False), ("llama", True, True), ("qwen2", False, False), ("qwen2", False, True)]


@pytest.mark.parametrize("family, bos, eos", VARIANTS)
def test_last_token_pooling_is_right_under_left_and_right_padding(tmp_path, family, bos, eos):
    path = build_decoder(tmp_path / family, family, bos=bos, eos=eos)
    texts = sentences(12)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    full = tok(texts)["input_ids"]
    # texts longer than the 64-token limit are cut from the LEFT: the pooled last token (EOS or the text's
    # own last token) survives, and BOS stays first
    tok.truncation_side = "left"
    ids = tok(texts, truncation=True, max_length=64)["input_ids"]
    assert any(len(f) > 64 for f in full) and all(f[-1] == s[-1] for f, s in zip(full, ids))
    assert all((s[0] == tok.bos_token_id) == bos and (s[-1] == tok.eos_token_id) == eos for s in ids)
    expected = manual_last_token(path, ids)
    assert len({len(s) for s in ids}) > 3  # batches really are padded
    for side in ("right", "left"):
        enc = FrozenEncoder(path, pooling="last", padding_side=side, token_budget=200)
        got = enc.encode(texts, show_progress=False)
        assert np.allclose(got, expected, atol=2e-5), (family, side, np.abs(got - expected).max())


def test_the_chat_template_renders_each_input_once_with_its_own_bos(tmp_path):
    qwen = build_decoder(tmp_path / "qwen", "qwen2", bos=False, eos=False, chat=CHATML)
    llama = build_decoder(tmp_path / "llama", "llama", bos=True, eos=False, chat=LLAMA_CHAT)
    from transformers import AutoTokenizer

    items = ["what is a good essay", ("which is better", "the second one")]
    for path in (qwen, llama):
        tok = AutoTokenizer.from_pretrained(path)
        rendered = [tok.apply_chat_template([{"role": "user", "content": items[0]}], tokenize=False,
                                            add_generation_prompt=True),
                    tok.apply_chat_template([{"role": "user", "content": items[1][0]},
                                             {"role": "assistant", "content": items[1][1]}], tokenize=False)]
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        if path == llama:  # the template writes BOS; the encoder must not add a second one
            assert all(seq.count(tok.bos_token_id) == 1 and seq[0] == tok.bos_token_id for seq in ids)
        got = FrozenEncoder(path, pooling="last", chat_template=True).encode(items, show_progress=False)
        assert np.allclose(got, manual_last_token(path, ids), atol=2e-5)
        plain = FrozenEncoder(path, pooling="last").encode(items, show_progress=False)
        assert not np.allclose(plain, got)  # the template is really applied
    enc = FrozenEncoder(qwen, pooling="last", chat_template=True)
    assert enc.fingerprint(items) != FrozenEncoder(qwen, pooling="last").fingerprint(items)


def test_a_chat_template_on_a_tokenizer_without_one_is_refused_at_once(tmp_path):
    base = build_decoder(tmp_path / "base", "qwen2", bos=False, eos=False)
    with pytest.raises(ValueError, match="chat_template is set for .*base', but its tokenizer has no chat") as e:
        FrozenEncoder(base, chat_template=True)
    assert "\n" not in str(e.value)


def test_text_pairs_use_the_pair_template_of_encoders_and_a_join_for_decoders(tiny_bert, tiny_gpt2):
    from transformers import AutoModel, AutoTokenizer

    pairs = [("the essay is good", "i agree because it is"), ("bad idea", "good idea")]
    got = FrozenEncoder(tiny_bert, pooling="mean").encode(pairs, show_progress=False)
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    for k, (a, b) in enumerate(pairs):
        batch = tok(a, b, return_tensors="pt", return_token_type_ids=True)
        assert batch["token_type_ids"][0].max() == 1  # the second text is segment B
        with torch.inference_mode():
            want = model(**batch).last_hidden_state[0].mean(0).numpy()
        assert np.allclose(got[k], want, atol=2e-5)
    enc = FrozenEncoder(tiny_gpt2, pooling="last")
    assert np.allclose(enc.encode(pairs, show_progress=False),
                       enc.encode([f"{a}\n{b}" for a, b in pairs], show_progress=False), atol=1e-6)
    assert enc.fingerprint(pairs) != enc.fingerprint([f"{a}\n{b}" for a, b in pairs])


# ---------------------------------------------------------------------- templates over a row's columns
@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "support", "correct"])
        for i in range(40):
            w.writerow([f"question {i}?", f"answer {i}", "" if i % 5 else f"because {i}", i % 2])
    return path


def test_a_template_builds_the_input_from_the_rows_columns(qa_file):
    task = load_task(qa_file, template="Q: {question}\nA: {answer}\n{support}", target_columns=["correct"],
                     input_kind="text")
    data = TaskRows.of(task)
    k = data.canonical_ids.index("row-6")
    assert data.canonical_texts[k] == "Q: question 5?\nA: answer 5\nbecause 5"
    pair = TaskRows.of(load_task(qa_file, input_column="question", pair_column="answer", target_columns=["correct"],
                                 input_kind="text"))
    assert pair.canonical_texts[pair.canonical_ids.index("row-3")] == ("question 2?", "answer 2")


@pytest.mark.parametrize("template, match", [
    ("Q: {question} {answr}", r"template 'Q: \{question\} \{answr\}' names column\(s\) \['answr'\] that the data "
                              r"lacks; available columns: 'question', 'answer'"),
    ("Q: {0}", r"template field \{0\} must name a column"),
    ("Q: {question!r}", "has a conversion or format spec"),
    ("no fields", "names no column"),
    ("Q: {question", "not valid str.format syntax"),
])
def test_a_bad_template_is_one_line_naming_what_and_where(qa_file, template, match):
    with pytest.raises(TaskDataError, match=match) as err:
        load_task(qa_file, template=template, target_columns=["correct"])
    assert "\n" not in str(err.value) and str(qa_file) in str(err.value)


def test_a_missing_cell_used_by_the_template_names_the_rows(tmp_path):
    import json

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"q": None if i in (3, 8) else f"q{i}", "y": i}) + "\n" for i in range(30)))
    with pytest.raises(TaskDataError, match=r"column 'q', used by the template, is missing in 2 rows: row 4, row 9"):
        load_task(path, template="Q: {q}", target_columns=["y"])


# ---------------------------------------------------------------------- past one process
def _prompt_worker(path, out, prompts, firsts, seconds):
    from helpers import fresh_fork_state

    fresh_fork_state()
    from accelerate import Accelerator

    from w2s_hf.features.pairs import pair_difference

    acc = Accelerator(cpu=True)
    enc = FrozenEncoder(path, pooling="last", chat_template=True, token_budget=120, shard_size=4)
    X = pair_difference(enc, prompts, firsts, seconds, accelerator=acc, show_progress=False)
    if acc.is_main_process:
        np.save(out, X)


def test_prompt_features_sharded_over_two_processes_are_those_of_one_bit_for_bit(tmp_path):
    """Chat-formatted preference sides on a tiny Qwen2, rows dealt to 2 processes (gloo on CPU) = 1 process."""
    from accelerate import debug_launcher

    path = build_decoder(tmp_path / "qwen", "qwen2", bos=False, eos=True, chat=CHATML)
    texts = sentences(14, seed=3)
    prompts, firsts, seconds = ["Which reply is better?"] * 10, texts[:10], texts[4:14]
    debug_launcher(lambda: _prompt_worker(path, tmp_path / "two.npy", prompts, firsts, seconds), num_processes=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each launched process has: a matmul over threads may sum in another order
    try:
        from w2s_hf.features.pairs import pair_difference

        enc = FrozenEncoder(path, pooling="last", chat_template=True, token_budget=120, shard_size=4)
        one = pair_difference(enc, prompts, firsts, seconds, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(np.load(tmp_path / "two.npy"), one)


def test_device_map_auto_places_the_model_and_gives_the_same_features(tmp_path):
    """`device_map="auto"` (a model larger than one GPU) goes through accelerate's placement; on a CPU-only
    machine every layer lands on the CPU and the features are those of the ordinary load."""
    path = build_decoder(tmp_path / "llama", "llama", bos=True, eos=False)
    texts = sentences(8)
    plain = FrozenEncoder(path, pooling="last").encode(texts, show_progress=False)
    placed = FrozenEncoder(path, pooling="last", device_map="auto")
    got = placed.encode(texts, show_progress=False)
    assert np.allclose(got, plain, atol=1e-5)
    # where the layers sit changes no number: the cache key is the same
    assert placed.fingerprint(texts) == FrozenEncoder(path, pooling="last").fingerprint(texts)
    with pytest.raises(ValueError, match="device_map='balanced' must be None or 'auto'"):
        FrozenEncoder(path, device_map="balanced")
