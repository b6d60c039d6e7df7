"""The builtin `builtin:tiny-llama`: a small Llama and a byte-level tokenizer, built with no download.

The tokenizer has one token per byte (ids 4..259, in byte order) plus `<unk>`=0, `<s>`=1,
`</s>`=2, `<pad>`=3, so any text round-trips. Its BPE has no merges: the point is a real,
fast end-to-end run on a CPU, not a good language model.
"""

from __future__ import annotations

import json
from importlib.resources import files

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# Package data, so the builtin model also works from an installed wheel.
TINY_LLAMA_CONFIG = files(__package__) / "configs" / "tiny-llama.json"
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def _byte_level_alphabet() -> list[str]:
    # GPT-2's printable stand-ins for the 256 bytes, which is what the ByteLevel pre-tokenizer emits.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    stand_ins: dict[int, str] = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in stand_ins:
            stand_ins[byte] = chr(256 + extra)
            extra += 1
    return [stand_ins[byte] for byte in range(256)]


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    specials = list(SPECIAL_TOKENS.values())
    vocab = {token: index for index, token in enumerate(specials)}
    for symbol in _byte_level_alphabet():
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)


def load_tiny_config() -> LlamaConfig:
    return LlamaConfig(**json.loads(TINY_LLAMA_CONFIG.read_text(encoding="utf-8")))


def build_tiny_model(seed: int) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama; the same seed always gives the same weights."""
    config = load_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
