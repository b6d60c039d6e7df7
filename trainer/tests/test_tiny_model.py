from __future__ import annotations

import torch
from transformers import AutoTokenizer

from pift.tiny_model import build_tiny_model, build_tiny_tokenizer, load_tiny_config


def test_byte_level_round_trip() -> None:
    tokenizer = build_tiny_tokenizer()
    for text in ["plain ascii", "naïve café 日本語 🙂", "tabs\tand\nnewlines  ", "\x00\x7f", "", "<s> </s> literal"]:
        ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert len(ids) == len(text.encode("utf-8"))
        assert tokenizer.decode(ids) == text


def test_special_tokens_and_vocab_match_config() -> None:
    tokenizer = build_tiny_tokenizer()
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert len(tokenizer) == load_tiny_config().vocab_size == 260


def test_tokenizer_saves_and_loads_offline(tmp_path) -> None:
    tokenizer = build_tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = "Grüße </s>"
    assert loaded(text, add_special_tokens=False)["input_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded.eos_token == "</s>" and loaded.pad_token == "<pad>"


def test_init_is_deterministic_per_seed() -> None:
    first, again, other = build_tiny_model(5), build_tiny_model(5), build_tiny_model(6)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)
