"""Loading the model and tokenizer a job starts from: the builtin tiny model or a local HF directory."""

from __future__ import annotations

import logging
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .config import BUILTIN_TINY_LLAMA
from .errors import ConfigError
from .tiny_model import build_tiny_model, build_tiny_tokenizer

logger = logging.getLogger(__name__)


def _require_local_dir(path: str, field_name: str) -> None:
    if not os.path.isdir(path):
        raise ConfigError(f'field "{field_name}": no such local directory {path} (downloads are disabled)')


def load_tokenizer(name_or_path: str, field_name: str = "model_name_or_path") -> PreTrainedTokenizerBase:
    if name_or_path == BUILTIN_TINY_LLAMA:
        tokenizer = build_tiny_tokenizer()
    else:
        _require_local_dir(name_or_path, field_name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f'field "{field_name}": cannot load a tokenizer from {name_or_path}: {error}') from error
    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ConfigError(f'field "{field_name}": the tokenizer in {name_or_path} needs bos and eos tokens')
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss, so any existing token will do.
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token: padding with eos")
    return tokenizer


def load_model(
    name_or_path: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    field_name: str = "model_name_or_path",
) -> PreTrainedModel:
    if name_or_path == BUILTIN_TINY_LLAMA:
        model = build_tiny_model(seed).to(dtype)
    else:
        _require_local_dir(name_or_path, field_name)
        try:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as error:
            raise ConfigError(f'field "{field_name}": cannot load a model from {name_or_path}: {error}') from error
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise ConfigError(
            f'field "{field_name}": tokenizer has {len(tokenizer)} tokens but the model embeds only '
            f"{model.get_input_embeddings().num_embeddings}"
        )
    # Saved checkpoints must generate with the same special tokens the template uses.
    for config in (model.config, model.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return model
