"""Conversation rows: the model's chat template with loss on assistant turns only, checked token by token with
SmolLM2's real BPE tokenizer; the paper's template for tokenizers without one; generation from the last user turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_module, train_config
from pift.config import GenerateArguments
from pift.data import ConversationRow, InstructionDataset, read_instruction_rows
from pift.errors import ConfigError, DataError
from pift.generate import encode_prompt
from pift.template import (
    IGNORE_INDEX,
    encode_conversation,
    encode_conversation_prompt,
    encode_text,
    encode_training_example,
)
from pift.tiny_model import build_tiny_tokenizer

MULTI_TURN = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And times 3?"},
    {"role": "assistant", "content": "12, since 4 × 3 = 12."},
]


def chatml(tok, role: str, content: str) -> list[int]:
    """One ChatML turn as SmolLM2's template renders it: the text between special tokens is tokenized on its own."""
    return [tok.convert_tokens_to_ids("<|im_start|>"), *encode_text(tok, f"{role}\n{content}"), tok.eos_token_id,
            *encode_text(tok, "\n")]


def test_multi_turn_chat_labels_cover_exactly_the_assistant_replies(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    example = encode_conversation(tok, MULTI_TURN, max_length=4096, chat_template=True)
    expected_ids: list[int] = []
    expected_labels: list[int] = []
    for message in MULTI_TURN:
        turn = chatml(tok, message["role"], message["content"])
        expected_ids += turn
        if message["role"] == "assistant":
            # "<|im_start|>assistant\n" is the prompt; the reply and its <|im_end|> are learned; the newline is not.
            header = len(chatml(tok, "assistant", "")) - 2
            reply = turn[header:-1]
            assert tok.decode(reply) == message["content"] + "<|im_end|>"
            expected_labels += [IGNORE_INDEX] * header + reply + [IGNORE_INDEX]
        else:
            expected_labels += [IGNORE_INDEX] * len(turn)
    assert example.input_ids == expected_ids
    assert example.labels == expected_labels
    learned = [label for label in example.labels if label != IGNORE_INDEX]
    assert tok.decode(learned) == "4.<|im_end|>12, since 4 × 3 = 12.<|im_end|>"


def test_chat_template_default_system_prompt_is_not_learned(smollm2_tokenizer) -> None:
    # SmolLM2's template adds its own system turn when the conversation has none: scaffolding, never a label.
    tok = smollm2_tokenizer
    example = encode_conversation(tok, MULTI_TURN[1:3], max_length=4096, chat_template=True)
    assert tok.decode(example.input_ids).startswith("<|im_start|>system\nYou are a helpful AI assistant")
    assert tok.decode([label for label in example.labels if label != IGNORE_INDEX]) == "4.<|im_end|>"


def test_paper_template_single_turn_equals_the_alpaca_row(smollm2_tokenizer) -> None:
    tok = build_tiny_tokenizer()
    conversation = encode_conversation(tok, MULTI_TURN[1:3], 2048, chat_template=False)
    alpaca = encode_training_example(tok, "What is 2+2?", "", "4.", 2048)
    assert (conversation.input_ids, conversation.labels) == (alpaca.input_ids, alpaca.labels)


def test_paper_template_multi_turn_layout() -> None:
    tok = build_tiny_tokenizer()
    example = encode_conversation(tok, MULTI_TURN, 2048, chat_template=False)
    assert tok.decode(example.input_ids) == (
        "<s>System: Answer briefly.</s>\nUser: What is 2+2?</s>\nAssistant: 4.</s>"
        "\nUser: And times 3?</s>\nAssistant: 12, since 4 × 3 = 12.</s>"
    )
    learned = [label for label in example.labels if label != IGNORE_INDEX]
    assert tok.decode(learned) == "4.</s>12, since 4 × 3 = 12.</s>"


def test_generation_prompt_ends_at_the_last_user_turn(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    prompt = encode_conversation_prompt(tok, MULTI_TURN, 4096, chat_template=True)
    expected = [id_ for message in MULTI_TURN[:4] for id_ in chatml(tok, message["role"], message["content"])]
    assert prompt == expected + [tok.convert_tokens_to_ids("<|im_start|>"), *encode_text(tok, "assistant\n")]
    # Too long: the oldest turns go first, whole, and the system message and the last user turn stay.
    short = encode_conversation_prompt(tok, MULTI_TURN, len(prompt) - 5, chat_template=True)
    text = tok.decode(short)
    assert "What is 2+2?" not in text and "Answer briefly." in text
    assert text.endswith("And times 3?<|im_end|>\n<|im_start|>assistant\n")
    paper = encode_conversation_prompt(build_tiny_tokenizer(), MULTI_TURN, 4096, chat_template=False)
    assert build_tiny_tokenizer().decode(paper).endswith("\nUser: And times 3?</s>\nAssistant:")


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], 'line 1: field "messages" must be a non-empty array'),
        ([{"role": "bot", "content": "x"}], 'line 1: field "messages[0].role" must be one of system, user, assistant'),
        (
            [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}],
            "a system message may only come first",
        ),
        ([{"role": "user", "content": 3}], 'field "messages[0].content" must be a string'),
        ([{"role": "user", "content": "x"}], 'field "messages" has no assistant turn to learn from'),
    ],
)
def test_bad_conversations_name_the_line_and_field(tmp_path: Path, messages, message: str) -> None:
    path = write_rows(tmp_path / "train.jsonl", [{"id": 1, "messages": messages}])
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        read_instruction_rows(str(path), require_output=True)


def test_mixed_file_and_a_conversation_too_long_to_learn_from(tmp_path: Path, smollm2_tokenizer) -> None:
    long_prompt = [{"role": "system", "content": "Be careful. " * 40}, *MULTI_TURN[1:]]
    rows = [
        {"id": "a", "instruction": "Copy.", "input": "x", "output": "x"},
        {"id": "c", "messages": MULTI_TURN},
        {"id": "long", "messages": long_prompt},
    ]
    path = write_rows(tmp_path / "train.jsonl", rows)
    parsed = read_instruction_rows(str(path), require_output=True)
    assert isinstance(parsed[1], ConversationRow) and parsed[1].line_number == 2
    dataset = InstructionDataset(parsed, smollm2_tokenizer, 4096, "auto", str(path))
    assert dataset[1]["input_ids"] == encode_conversation(smollm2_tokenizer, MULTI_TURN, 4096, True).input_ids
    with pytest.raises(DataError, match=r"train\.jsonl line 3: the conversation's first assistant turn starts beyond"):
        InstructionDataset(parsed, smollm2_tokenizer, 64, "auto", str(path))
    with pytest.raises(ConfigError, match="no chat template"):
        InstructionDataset(parsed, build_tiny_tokenizer(), 256, "model", str(path))


def test_generate_prompts_follow_the_setting(tmp_path: Path, smollm2_tokenizer) -> None:
    row = ConversationRow(id=1, messages=tuple(MULTI_TURN))
    args = GenerateArguments(model_dir=".", input_file="x", output_file="y", max_length=1024)
    assert encode_prompt(smollm2_tokenizer, row, args) == encode_conversation_prompt(
        smollm2_tokenizer, MULTI_TURN, 768, chat_template=True
    )
    args.conversation_template = "paper"
    assert smollm2_tokenizer.decode(encode_prompt(smollm2_tokenizer, row, args)).endswith("\nAssistant:")


def test_training_on_conversations_runs(tmp_path: Path) -> None:
    # The tiny tokenizer has no chat template: "auto" lays conversations out in the paper's template.
    rows = [{"id": i, "messages": [{"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": w}]}
            for i, w in enumerate(["red", "green", "blue", "cyan"] * 4)]
    write_rows(tmp_path / "train.jsonl", rows)
    config = train_config(tmp_path, max_steps=8, save_steps=8, conversation_template="auto")
    result = run_module("pift.train", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.of("done")[0]["total_steps"] == 8
