"""Tokenizers without a BOS token (the Qwen family): the paper's `<s>` becomes nothing, and training works."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import run_module, train_config, write_copy_task
from pift.template import IGNORE_INDEX, encode_generation_prompt, encode_text, encode_training_example
from pift.tiny_model import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def bosless_smollm2(smollm2_tokenizer):
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.bos_token = None
    assert tokenizer.bos_token_id is None and tokenizer.eos_token_id is not None
    return tokenizer


def test_training_example_starts_at_the_user_text(bosless_smollm2) -> None:
    tok = bosless_smollm2
    example = encode_training_example(tok, "Name a colour.", "", "Blue.", max_length=2048)
    prompt = [*encode_text(tok, "User: Name a colour."), tok.eos_token_id, *encode_text(tok, "\nAssistant: ")]
    response = [*encode_text(tok, "Blue."), tok.eos_token_id]
    assert example.input_ids == prompt + response
    assert example.labels == [IGNORE_INDEX] * len(prompt) + response
    assert tok.decode(example.input_ids) == "User: Name a colour.<|im_end|>\nAssistant: Blue.<|im_end|>"
    assert encode_generation_prompt(tok, "Name a colour.", "", 100) == [
        *encode_text(tok, "User: Name a colour."),
        tok.eos_token_id,
        *encode_text(tok, "\nAssistant:"),
    ]


def test_truncation_counts_no_bos(bosless_smollm2) -> None:
    # Without <s> the fixed part is one token shorter, so exactly max_length tokens are used.
    example = encode_training_example(bosless_smollm2, "word " * 100, "", "answer " * 100, max_length=64)
    assert len(example.input_ids) == 64
    assert len(encode_generation_prompt(bosless_smollm2, "word " * 100, "", 40)) == 40


def test_a_bosless_model_trains_with_the_template(tmp_path: Path) -> None:
    model = tmp_path / "model"
    build_tiny_model(seed=0).save_pretrained(model)
    build_tiny_tokenizer().save_pretrained(model)
    settings = json.loads((model / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings["bos_token"] = None
    (model / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    write_copy_task(tmp_path / "train.jsonl", rows=16)
    config = train_config(tmp_path, model_name_or_path=str(model), max_steps=12, save_steps=12)
    result = run_module("pift.train", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (done,) = result.of("done")
    assert done["total_steps"] == 12 and done["loss_last"] < done["loss_first"]
    saved = json.loads((tmp_path / "final" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved.get("bos_token") is None
