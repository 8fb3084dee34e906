"""Model inputs from task inputs: plain texts, text pairs, and the tokenizer's chat template.

An input is a text or a pair of texts (a text-pair task's two columns; a preference side's (prompt,
response)). How a model sees it depends on the model, so it is decided here, per tokenizer:

- a text is tokenized with the tokenizer's special tokens (BOS for Llama, none for Qwen2, [CLS] ... [SEP]
  for BERT);
- a pair goes through the tokenizer's pair template when it has one (a sep token: BERT's
  [CLS] a [SEP] b [SEP] with token types); a decoder without one sees the two texts joined by
  `PAIR_JOIN` (a task template can join them any other way before this point);
- with `chat_template=True`, a text becomes a user turn followed by the generation prompt, a pair a user
  turn and the assistant's reply, rendered by the tokenizer's own chat template and tokenized without
  adding special tokens again (the template writes BOS itself where the model wants one). A tokenizer
  without a chat template is an error naming the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

PAIR_JOIN = "\n"


def is_pair(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)


def check_inputs(items: Sequence[Any]) -> list:
    """Texts or (text, text) pairs as a list; a clear error for anything else."""
    if isinstance(items, str):
        raise ValueError("texts must be a list of strings, not a single string; wrap it as [text].")
    items = [tuple(x) if is_pair(x) else x for x in items]
    if not items:
        raise ValueError("texts is empty; there is nothing to encode.")
    for i, item in enumerate(items):
        if not isinstance(item, str) and not is_pair(item):
            raise ValueError(f"texts[{i}] is {type(item).__name__} ({item!r:.40}), not a string or a pair of strings.")
    return items


def input_key(item: Any) -> str:
    """The text an input is fingerprinted by: a text itself; a pair tagged so it never equals a text."""
    return item if isinstance(item, str) else "\x00pair\x00" + json.dumps(list(item))


def require_chat_template(tokenizer: Any, model_id: str) -> str:
    """The tokenizer's chat template, or an error naming the model and the fix."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError(f"chat_template is set for {model_id!r}, but its tokenizer has no chat template "
                         "(a base model?); drop chat_template for this model or format prompts with a task template.")
    return template if isinstance(template, str) else json.dumps(template, sort_keys=True)


def render_chat(tokenizer: Any, item: Any) -> str:
    """A text as a user turn + generation prompt; a pair as a user turn and the assistant's reply."""
    if isinstance(item, str):
        messages, prompt = [{"role": "user", "content": item}], True
    else:
        messages, prompt = [{"role": "user", "content": item[0]}, {"role": "assistant", "content": item[1]}], False
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)


def tokenize_inputs(tokenizer: Any, items: list, max_length: int, *, chat: bool = False
                    ) -> tuple[list[list[int]], list[list[int]] | None]:
    """(input ids, token type ids or None) per input, truncated to `max_length` tokens."""
    if chat:
        rendered = [render_chat(tokenizer, item) for item in items]
        enc = tokenizer(rendered, add_special_tokens=False, truncation=True, max_length=max_length,
                        return_attention_mask=False)
        return enc["input_ids"], None
    singles = [i for i, item in enumerate(items) if isinstance(item, str)]
    pairs = [i for i, item in enumerate(items) if not isinstance(item, str)]
    common = {"add_special_tokens": True, "truncation": True, "max_length": max_length, "return_attention_mask": False}
    ids: list = [None] * len(items)
    types: list = [None] * len(items)
    if singles:
        enc = tokenizer([items[i] for i in singles], **common)
        for k, i in enumerate(singles):
            ids[i] = enc["input_ids"][k]
            types[i] = enc["token_type_ids"][k] if "token_type_ids" in enc else None
    if pairs:
        if getattr(tokenizer, "sep_token", None) is not None:  # the tokenizer's own pair template, with segments
            enc = tokenizer([items[i][0] for i in pairs], [items[i][1] for i in pairs], return_token_type_ids=True,
                            **common)
        else:  # a decoder: the two texts joined
            enc = tokenizer([PAIR_JOIN.join(items[i]) for i in pairs], **common)
        for k, i in enumerate(pairs):
            ids[i] = enc["input_ids"][k]
            types[i] = enc["token_type_ids"][k] if "token_type_ids" in enc else None
    if any(t is None for t in types):
        types = None if all(t is None for t in types) else [t if t is not None else [0] * len(s)
                                                            for t, s in zip(types, ids)]
    return ids, types
