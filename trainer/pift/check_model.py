"""Checks, in seconds, that a base model and its tokenizer load the way training will load them.

Usage, from the trainer directory:

    python -m pift.check_model CONFIG.json

CONFIG.json: {"model_name_or_path": "builtin:tiny-llama" or a local directory, "max_length": N}.
Reads the model's config (not its weights) and its tokenizer, and applies the trainer's own checks, so a run
fails before anything is scored or paid for. Prints {"event": "model_ok", ...} and exits 0, or prints
{"event": "error", ...} and exits 65 when the model or tokenizer is refused.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import AutoConfig, HfArgumentParser  # noqa: E402

from .config import BUILTIN_TINY_LLAMA, MIN_MAX_LENGTH  # noqa: E402
from .errors import ConfigError  # noqa: E402
from .job import run_job  # noqa: E402
from .models import load_tokenizer  # noqa: E402
from .protocol import emit  # noqa: E402
from .tiny_model import load_tiny_config  # noqa: E402


@dataclass
class CheckModelArguments:
    model_name_or_path: str = field(metadata={"help": f"'{BUILTIN_TINY_LLAMA}' or a local Hugging Face directory."})
    max_length: int = field(default=2048, metadata={"help": "Tokens per training sequence."})

    def __post_init__(self) -> None:
        if self.max_length < MIN_MAX_LENGTH:
            raise ConfigError(f'field "max_length" must be at least {MIN_MAX_LENGTH}, got {self.max_length}')


def parse(config_path: str) -> tuple[CheckModelArguments]:
    return HfArgumentParser(CheckModelArguments).parse_json_file(config_path)


def model_config(name_or_path: str):
    if name_or_path == BUILTIN_TINY_LLAMA:
        return load_tiny_config()
    if not os.path.isdir(name_or_path):
        raise ConfigError(f'field "model_name_or_path": no such local directory {name_or_path} (downloads are disabled)')
    try:
        return AutoConfig.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ConfigError(f'field "model_name_or_path": cannot read a model config in {name_or_path}: {error}') from error


def main(args: CheckModelArguments) -> None:
    config = model_config(args.model_name_or_path)
    tokenizer = load_tokenizer(args.model_name_or_path)
    vocab = getattr(config, "vocab_size", None)
    # The same refusal load_model makes, decided from the config alone so that no weights are read.
    if vocab is not None and vocab < len(tokenizer):
        raise ConfigError(
            f'field "model_name_or_path": tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab}'
        )
    emit(
        "model_ok",
        model=args.model_name_or_path,
        model_type=getattr(config, "model_type", None),
        vocab_size=vocab,
        tokenizer_size=len(tokenizer),
        max_length=args.max_length,
    )


if __name__ == "__main__":
    sys.exit(run_job("-m pift.check_model", parse, main, sys.argv))
