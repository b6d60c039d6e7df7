"""Pre-flight check of a base model: will the trainer accept it, with this max_length?

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.check_model CONFIG.json

CONFIG.json: {"model_name_or_path": a builtin, an hf:// hub model or a local directory, "max_length": N}.
It runs the checks train.py runs before its first step (sequence length, tokenizer, special tokens,
the template, config, embeddings) on the tokenizer and the model's config, without loading the
weights, so a bad base model fails in seconds and before any paid request. The messages name the
pipeline's settings (`input.training.baseModel`, `input.training.maxLength`), since that is what
the user fixes. stdout: one {"event":"model_ok", ...} line and exit 0, or {"event":"error", ...}
and exit 65.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser, PretrainedConfig, PreTrainedTokenizerBase

from .config import check_max_length
from .errors import ConfigError
from .job import run_job
from .model_cache import resolve_model
from .models import check_embeddings, load_model_config, load_tokenizer
from .parent_watch import watch_parent
from .protocol import emit
from .template import encode_generation_prompt, encode_training_example

BASE_MODEL_FIELD = "input.training.baseModel"
MAX_LENGTH_FIELD = "input.training.maxLength"


@dataclass
class CheckModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "As in train.py: a builtin, hf://org/name[@revision] or a local directory."}
    )
    max_length: int = field(metadata={"help": "As in train.py: tokens per training sequence."})
    parent_pid: int | None = field(default=None, metadata={"help": "Exit promptly when this process dies."})
    weights_listed: bool = field(
        default=False,
        metadata={"help": "The caller saw the weights in the store and fetched only config and tokenizer files."},
    )

    def __post_init__(self) -> None:
        check_max_length(self.max_length, MAX_LENGTH_FIELD)


def parse_args(config_path: str) -> tuple[CheckModelArguments]:
    (args,) = HfArgumentParser((CheckModelArguments,)).parse_json_file(config_path)
    return (args,)


def check_model(args: CheckModelArguments) -> dict[str, Any]:
    """The model_ok event's fields; raises ConfigError naming the setting to fix."""
    # A builtin to convert or a hub model to fetch is made local once here, and later jobs find it in the cache.
    resolved = resolve_model(args.model_name_or_path, BASE_MODEL_FIELD)
    config = load_model_config(resolved.path, field_name=BASE_MODEL_FIELD, require_weights=not args.weights_listed)
    tokenizer = load_tokenizer(resolved.path, field_name=BASE_MODEL_FIELD)
    vocab_size = config.get_text_config().vocab_size
    check_embeddings(vocab_size, tokenizer, BASE_MODEL_FIELD)
    check_template(tokenizer, config, args)
    resolution = {} if resolved.revision is None else {"revision": resolved.revision, "resolved_path": resolved.path}
    return {
        **resolution,
        "model_type": config.model_type,
        "tokenizer_size": len(tokenizer),
        "vocab_size": vocab_size,
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "max_position_embeddings": getattr(config.get_text_config(), "max_position_embeddings", None),
    }


def check_template(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig, args: CheckModelArguments) -> None:
    """Encode one row the way training and generation do, so a tokenizer that cannot fails here, not at step 0."""
    try:
        example = encode_training_example(tokenizer, "Check.", "input", "answer", args.max_length)
        prompt = encode_generation_prompt(tokenizer, "Check.", "input", args.max_length // 2)
    except Exception as error:  # noqa: BLE001 - e.g. a slow tokenizer without split_special_tokens
        raise ConfigError(
            f'field "{BASE_MODEL_FIELD}": the tokenizer in {args.model_name_or_path} cannot encode the prompt '
            f"template: {type(error).__name__}: {error}"
        ) from error
    vocab_size = config.get_text_config().vocab_size
    out_of_range = [token for token in example.input_ids + prompt if not 0 <= token < vocab_size]
    if out_of_range:
        raise ConfigError(
            f'field "{BASE_MODEL_FIELD}": the tokenizer in {args.model_name_or_path} yields token id '
            f"{out_of_range[0]}, but the model embeds only {vocab_size}"
        )


def main(args: CheckModelArguments) -> None:
    watch_parent(args.parent_pid)
    emit("model_ok", **check_model(args))


if __name__ == "__main__":
    sys.exit(run_job("pift.check_model", parse_args, main, sys.argv))
