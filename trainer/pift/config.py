"""Config dataclasses for the entry scripts; the defaults here are the only place defaults live.

Training defaults follow the paper's released script (see the repo's reference notes):
AdamW(0.9, 0.95), weight decay 0.1, max grad norm 1.0, lr 5e-6, cosine with 10% warmup,
seed 3517, max length 2048. Values the sources leave open are marked [ours].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from transformers import SchedulerType, TrainingArguments
from transformers.trainer_utils import SaveStrategy

from .errors import ConfigError

logger = logging.getLogger(__name__)

BUILTIN_TINY_LLAMA = "builtin:tiny-llama"
MIN_MAX_LENGTH = 32


def check_max_length(value: int, field_name: str = "max_length") -> None:
    """The one lower bound on sequence length, shared by training, generation and the pre-flight model check."""
    if value < MIN_MAX_LENGTH:
        raise ConfigError(f'field "{field_name}" must be at least {MIN_MAX_LENGTH}, got {value}')


@dataclass
class ScriptArguments:
    train_file: str = field(metadata={"help": "Local JSONL file; one object per line with id, instruction, input, output."})
    final_dir: str = field(metadata={"help": "Where the final model and tokenizer are saved after the last step."})
    max_length: int = field(default=2048, metadata={"help": "Tokens per training sequence (paper: 2048)."})
    parent_pid: int | None = field(
        default=None, metadata={"help": "Exit promptly when this process dies (the orchestrator's worker)."}
    )
    progress_every: int | None = field(
        default=None, metadata={"help": "If set, overrides `logging_steps`: one progress event every N steps."}
    )

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        if self.progress_every is not None and self.progress_every < 1:
            raise ConfigError(f'field "progress_every" must be a positive integer, got {self.progress_every}')


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": f"'{BUILTIN_TINY_LLAMA}' or a local directory with Hugging Face weights and tokenizer."}
    )
    model_seed: int = field(default=0, metadata={"help": "Initialisation seed of the builtin model."})


@dataclass
class PiftTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's defaults and the checks this pipeline relies on."""

    learning_rate: float = field(default=5e-6)
    weight_decay: float = field(default=0.1)
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.95)
    max_grad_norm: float = field(default=1.0)
    lr_scheduler_type: SchedulerType | str = field(default="cosine")
    # transformers 5 folded `warmup_ratio` into `warmup_steps`: a float below 1 is a ratio.
    warmup_steps: float = field(default=0.1)
    warmup_ratio: float | None = field(
        default=None, metadata={"help": "Alias kept for older configs; sets `warmup_steps` to this ratio."}
    )
    seed: int = field(default=3517)
    save_strategy: SaveStrategy | str = field(default="steps")
    logging_steps: float = field(default=1)
    report_to: None | str | list[str] = field(default="none")
    disable_tqdm: bool | None = field(default=True)
    dataloader_num_workers: int = field(default=0)
    # Rows arrive shuffled once with a fixed seed and the paper never reshuffles, so read them in order.
    train_sampling_strategy: str = field(default="sequential")

    def __post_init__(self) -> None:
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ConfigError(f'field "warmup_ratio" must be in [0, 1), got {self.warmup_ratio}')
            self.warmup_steps = self.warmup_ratio
        if self.max_steps is None or self.max_steps <= 0:
            raise ConfigError(f'field "max_steps" must be a positive integer, got {self.max_steps}')
        if self.save_total_limit is not None:
            # The orchestrator prunes checkpoints itself, after uploading them.
            raise ConfigError(f'field "save_total_limit" must be null, got {self.save_total_limit}')
        if self.bf16 and not torch.cuda.is_available():
            logger.warning("bf16 requested but CUDA is unavailable: training in fp32 on the CPU")
            self.bf16 = False
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; it only warns on a CPU
        super().__post_init__()


@dataclass
class GenerateArguments:
    model_dir: str = field(metadata={"help": "Local directory with Hugging Face weights and tokenizer."})
    input_file: str = field(metadata={"help": "JSONL with id, instruction and optional input."})
    output_file: str = field(metadata={"help": "JSONL of {id, answer, prompt_tokens, answer_tokens}; appended to."})
    max_length: int = field(default=1024, metadata={"help": "Prompt plus answer tokens (paper: 1024)."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Optional cap on answer tokens."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate() call, left-padded."})
    parent_pid: int | None = field(default=None, metadata={"help": "Exit promptly when this process dies."})
    answer_extraction: str = field(
        default="trimmed",
        metadata={
            "help": '"trimmed": the generated text up to </s>, stripped; "paper": the released code\'s '
            '`decode(prompt + answer).split("Assistant:")[1]`, not stripped.'
        },
    )
    prompt_ends_with_space: bool = field(
        default=False,
        metadata={"help": 'End prompts with the training template\'s "\\nAssistant: " instead of "\\nAssistant:".'},
    )
    newline_for_empty_input: bool = field(
        default=False,
        metadata={"help": 'Write "\\n" after the instruction even for an empty input (released code: HH, OASST).'},
    )

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        if self.answer_extraction not in ("trimmed", "paper"):
            raise ConfigError(f'field "answer_extraction" must be "trimmed" or "paper", got {self.answer_extraction!r}')
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f'field "max_new_tokens" must be a positive integer, got {self.max_new_tokens}')
        if self.batch_size < 1:
            raise ConfigError(f'field "batch_size" must be a positive integer, got {self.batch_size}')
