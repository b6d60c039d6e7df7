"""Generation is plain greedy whatever the model folder's generation_config.json asks for (models.plain_greedy)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from conftest import run_module

from pift.config import BUILTIN_TINY_LLAMA, GenerateArguments
from pift.data import InstructionRow
from pift.generate import encode_prompt, to_answer
from pift.models import load_model, load_tokenizer
from pift.serve import Completer, ServeArguments, completion_text
from pift.tiny_model import build_tiny_tokenizer

MAX_NEW_TOKENS = 16
ROWS = [InstructionRow(id=index, instruction="Copy the word.", input="abc" * (index + 2), output=None) for index in range(4)]


def argmax_loop(model, prompt: list[int], eos: int) -> list[int]:
    """The released code's decoding: the most likely next token, one at a time, until `</s>` or the budget."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(MAX_NEW_TOKENS):
            next_id = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(next_id)
            if next_id == eos:
                break
    return ids[len(prompt) :]


def test_the_folders_sampling_defaults_are_ignored(tmp_path: Path) -> None:
    # The builtin model's random weights repeat themselves, which is what the folder's settings would prevent.
    model_dir = tmp_path / "model"
    tokenizer = build_tiny_tokenizer()
    saved = load_model(BUILTIN_TINY_LLAMA, tokenizer)
    saved.generation_config.update(repetition_penalty=1.3, no_repeat_ngram_size=2)
    saved.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    assert json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))["no_repeat_ngram_size"] == 2

    tokenizer = load_tokenizer(str(model_dir))
    model = load_model(str(model_dir), tokenizer).eval()
    args = GenerateArguments(model_dir=str(model_dir), input_file="x", output_file="y", max_new_tokens=MAX_NEW_TOKENS)
    prompts = [encode_prompt(tokenizer, row, args) for row in ROWS]
    expected = [argmax_loop(model, prompt, tokenizer.eos_token_id) for prompt in prompts]
    # The folder's settings would change these answers: the test can tell plain greedy from the folder's decoding.
    with torch.inference_mode():
        folders = [
            model.generate(torch.tensor([prompt]), max_new_tokens=MAX_NEW_TOKENS)[0, len(prompt) :].tolist()
            for prompt in prompts
        ]
    assert [until_eos(ids, tokenizer.eos_token_id) for ids in folders] != expected

    with open(tmp_path / "prompts.jsonl", "w", encoding="utf-8") as handle:
        for row in ROWS:
            handle.write(json.dumps({"id": row.id, "instruction": row.instruction, "input": row.input}) + "\n")
    output_file = tmp_path / "answers.jsonl"
    generate_config = {
        "model_dir": str(model_dir),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(output_file),
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    result = run_module("pift.generate", generate_config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = {answer["id"]: answer for answer in map(json.loads, output_file.read_text(encoding="utf-8").splitlines())}
    for row, prompt, ids in zip(ROWS, prompts, expected):
        assert answers[row.id] == dataclasses.asdict(to_answer(tokenizer, row, prompt, ids))

    served = Completer(ServeArguments(model=str(model_dir)))
    for prompt, ids in zip(prompts, expected):
        text, tokens, _ = served.generate(prompt, MAX_NEW_TOKENS)
        answer = ids[:-1] if ids[-1] == tokenizer.eos_token_id else ids
        assert (text, tokens) == (completion_text(tokenizer, prompt, answer), len(ids))


def until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids
