"""Loading the model and tokenizer a job starts from: a builtin, a cached hub model, or a local HF directory."""

from __future__ import annotations

import logging
import os

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from .config import BUILTIN_TINY_LLAMA
from .errors import ConfigError
from .model_cache import resolve_model
from .tiny_model import build_tiny_model, build_tiny_tokenizer, load_tiny_config

logger = logging.getLogger(__name__)


def _require_local_dir(path: str, field_name: str) -> None:
    if not os.path.isdir(path):
        raise ConfigError(f'field "{field_name}": no such local directory {path} (downloads are disabled)')


def load_tokenizer(name_or_path: str, field_name: str = "model_name_or_path") -> PreTrainedTokenizerBase:
    name_or_path = resolve_model(name_or_path, field_name).path
    if name_or_path == BUILTIN_TINY_LLAMA:
        tokenizer = build_tiny_tokenizer()
    else:
        _require_local_dir(name_or_path, field_name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged tokenizer file fails as KeyError, JSON or Rust errors
            raise ConfigError(f'field "{field_name}": cannot load a tokenizer from {name_or_path}: {error}') from error
    if tokenizer.eos_token_id is None:
        # The template ends every turn with it, and generation stops at it. A missing bos is fine (template.py).
        raise ConfigError(f'field "{field_name}": the tokenizer in {name_or_path} needs an eos token')
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss, so any existing token will do.
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token: padding with eos")
    return tokenizer


def check_embeddings(num_embeddings: int, tokenizer: PreTrainedTokenizerBase, field_name: str) -> None:
    if num_embeddings < len(tokenizer):
        raise ConfigError(
            f'field "{field_name}": tokenizer has {len(tokenizer)} tokens but the model embeds only {num_embeddings}'
        )


def load_model_config(
    name_or_path: str, field_name: str = "model_name_or_path", require_weights: bool = True
) -> PretrainedConfig:
    """The model's config, without its weights: what `load_model` would refuse, found in a second."""
    name_or_path = resolve_model(name_or_path, field_name).path
    if name_or_path == BUILTIN_TINY_LLAMA:
        return load_tiny_config()
    _require_local_dir(name_or_path, field_name)
    try:
        config = AutoConfig.from_pretrained(name_or_path, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - a missing or damaged config.json, or an unknown model_type
        raise ConfigError(f'field "{field_name}": cannot load a model config from {name_or_path}: {error}') from error
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ConfigError(f'field "{field_name}": {name_or_path} holds a {config.model_type} model, not a causal LM')
    weights = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
    if require_weights and not any(os.path.isfile(os.path.join(name_or_path, name)) for name in weights):
        raise ConfigError(f'field "{field_name}": no model weights in {name_or_path} (expected {weights[0]})')
    return config


def load_model(
    name_or_path: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    field_name: str = "model_name_or_path",
) -> PreTrainedModel:
    name_or_path = resolve_model(name_or_path, field_name).path
    if name_or_path == BUILTIN_TINY_LLAMA:
        model = build_tiny_model(seed).to(dtype)
    else:
        _require_local_dir(name_or_path, field_name)
        try:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as error:
            raise ConfigError(f'field "{field_name}": cannot load a model from {name_or_path}: {error}') from error
    check_embeddings(model.get_input_embeddings().num_embeddings, tokenizer, field_name)
    # Saved checkpoints must generate with the same special tokens the template uses.
    for config in (model.config, model.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return model


def plain_greedy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Greedy decoding that reads nothing from the model folder's `generation_config.json`.

    transformers fills every field a `generate` call leaves unset from `model.generation_config`, so a base model that
    ships a repetition penalty or `no_repeat_ngram_size` (and every stage trained from it, which saves the file
    again) would be decoded with them; the released code never reads that file. A fresh config keeps only the
    special token ids the template uses."""
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def decoding_device() -> tuple[torch.device, torch.dtype]:
    """bf16 on a GPU, fp32 on a CPU: greedy answers equal these only where a server decodes in the same precision."""
    cuda = torch.cuda.is_available()
    return torch.device("cuda" if cuda else "cpu"), torch.bfloat16 if cuda else torch.float32
