from __future__ import annotations

import pytest
import torch

from pift.template import (
    IGNORE_INDEX,
    ResponseOnlyCollator,
    encode_generation_prompt,
    encode_training_example,
)
from pift.tiny_model import build_tiny_tokenizer

BOS, EOS, PAD = 1, 2, 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def byte_ids(text: str) -> list[int]:
    # The builtin tokenizer maps byte b to id 4 + b.
    return [4 + byte for byte in text.encode("utf-8")]


def test_layout_without_input(tokenizer) -> None:
    example = encode_training_example(tokenizer, "Say hi.", "", "hi", max_length=2048)
    prompt = [BOS, *byte_ids("User: Say hi."), EOS, *byte_ids("\nAssistant: ")]
    assert example.input_ids == prompt + byte_ids("hi") + [EOS]
    assert example.labels == [IGNORE_INDEX] * len(prompt) + byte_ids("hi") + [EOS]


def test_layout_with_input(tokenizer) -> None:
    example = encode_training_example(tokenizer, "Copy.", "abc", "abc", max_length=2048)
    prompt = [BOS, *byte_ids("User: Copy.\nabc"), EOS, *byte_ids("\nAssistant: ")]
    assert example.input_ids == prompt + byte_ids("abc") + [EOS]
    assert example.labels == [IGNORE_INDEX] * len(prompt) + byte_ids("abc") + [EOS]
    assert tokenizer.decode(example.input_ids) == "<s>User: Copy.\nabc</s>\nAssistant: abc</s>"


def test_literal_special_token_text_stays_text(tokenizer) -> None:
    example = encode_training_example(tokenizer, "Write </s> or <s>.", "", "ok </s>", max_length=2048)
    assert example.input_ids.count(BOS) == 1
    assert example.input_ids.count(EOS) == 2
    assert example.input_ids[-1] == EOS


def test_long_response_is_cut_at_its_end(tokenizer) -> None:
    example = encode_training_example(tokenizer, "Count.", "", "x" * 500, max_length=64)
    prompt = [BOS, *byte_ids("User: Count."), EOS, *byte_ids("\nAssistant: ")]
    assert len(example.input_ids) == 64
    assert example.input_ids[: len(prompt)] == prompt
    assert example.labels[len(prompt) :] == byte_ids("x" * (64 - len(prompt)))


def test_long_prompt_leaves_room_for_the_response(tokenizer) -> None:
    example = encode_training_example(tokenizer, "y" * 500, "", "answer", max_length=64)
    response = byte_ids("answer") + [EOS]
    assert len(example.input_ids) == 64
    assert example.input_ids[0] == BOS
    assert example.labels[-len(response) :] == response
    assert example.input_ids[-len(response) - len(byte_ids("\nAssistant: ")) - 1] == EOS
    assert sum(label != IGNORE_INDEX for label in example.labels) == len(response)


def test_both_long_gives_the_response_half(tokenizer) -> None:
    example = encode_training_example(tokenizer, "y" * 500, "", "z" * 500, max_length=64)
    assert len(example.input_ids) == 64
    assert sum(label != IGNORE_INDEX for label in example.labels) == 32


def test_generation_prompt_has_no_trailing_space(tokenizer) -> None:
    prompt = encode_generation_prompt(tokenizer, "Copy.", "abc", max_prompt_tokens=1024)
    assert prompt == [BOS, *byte_ids("User: Copy.\nabc"), EOS, *byte_ids("\nAssistant:")]
    bare = encode_generation_prompt(tokenizer, "Copy.", "", max_prompt_tokens=1024)
    assert tokenizer.decode(bare) == "<s>User: Copy.</s>\nAssistant:"


def test_generation_prompt_switches(tokenizer) -> None:
    # The training marker's space, for models that never learned to write it; the released bare "\n" of HH / OASST.
    spaced = encode_generation_prompt(tokenizer, "Copy.", "abc", max_prompt_tokens=1024, ends_with_space=True)
    assert spaced == [BOS, *byte_ids("User: Copy.\nabc"), EOS, *byte_ids("\nAssistant: ")]
    newline = encode_generation_prompt(tokenizer, "Copy.", "", max_prompt_tokens=1024, newline_for_empty_input=True)
    assert tokenizer.decode(newline) == "<s>User: Copy.\n</s>\nAssistant:"


def test_collator_pads_right_and_masks(tokenizer) -> None:
    short = encode_training_example(tokenizer, "a", "", "b", max_length=2048)
    long = encode_training_example(tokenizer, "a longer one", "", "b", max_length=2048)
    batch = ResponseOnlyCollator(pad_token_id=PAD)(
        [{"input_ids": e.input_ids, "labels": e.labels} for e in (short, long)]
    )
    width = len(long.input_ids)
    assert batch["input_ids"].shape == (2, width)
    pad = width - len(short.input_ids)
    assert batch["input_ids"][0, -pad:].tolist() == [PAD] * pad
    assert batch["labels"][0, -pad:].tolist() == [IGNORE_INDEX] * pad
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(short.input_ids), width]
    assert batch["input_ids"].dtype == torch.long
