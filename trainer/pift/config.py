"""Config dataclasses for the entry scripts.

The training defaults are the workflow's own (common/settings/, the paper's released script: AdamW(0.9, 0.95),
weight decay 0.1, max grad norm 1.0, lr 5e-6, cosine with 10% warmup, seed 3517, max length 2048), read from
configs/defaults.json, which `npm run schema` generates from there: the orchestrator writes every field, and a config
written by hand that leaves one out gets the same value. The trainer's own choices are marked [ours].
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import SchedulerType, TrainingArguments
from transformers.trainer_utils import SaveStrategy

from .errors import ConfigError
from .precision import choose_precision, device_caps

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = json.loads((Path(__file__).parent / "configs" / "defaults.json").read_text(encoding="utf-8"))
BUILTIN_TINY_LLAMA = "builtin:tiny-llama"
MIN_MAX_LENGTH = 32
CONVERSATION_TEMPLATES = ("auto", "model", "paper")
CONVERSATION_TEMPLATE_HELP = (
    "How conversation rows are laid out: 'auto' (the model's chat template when its tokenizer has one, else the "
    "paper's), 'model' (the chat template, required) or 'paper'. Alpaca rows always use the paper's template."
)


def check_conversation_template(value: str) -> None:
    if value not in CONVERSATION_TEMPLATES:
        choices = ", ".join(CONVERSATION_TEMPLATES)
        raise ConfigError(f'field "conversation_template" must be one of {choices}, got {value!r}')


def check_max_length(value: int, field_name: str = "max_length") -> None:
    """The one lower bound on sequence length, shared by training, generation and the pre-flight model check."""
    if value < MIN_MAX_LENGTH:
        raise ConfigError(f'field "{field_name}" must be at least {MIN_MAX_LENGTH}, got {value}')


@dataclass
class ScriptArguments:
    train_file: str = field(metadata={"help": "Local JSONL file; one object per line with id, instruction, input, output."})
    final_dir: str = field(metadata={"help": "Where the final model and tokenizer are saved after the last step."})
    max_length: int = field(default=DEFAULTS["max_length"], metadata={"help": "Tokens per training sequence."})
    parent_pid: int | None = field(
        default=None, metadata={"help": "Exit promptly when this process dies (the orchestrator's worker)."}
    )
    conversation_template: str = field(default="auto", metadata={"help": CONVERSATION_TEMPLATE_HELP})
    save_every_minutes: float | None = field(
        default=None, metadata={"help": "Also save a checkpoint once this many minutes passed since the last save."}
    )

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        check_conversation_template(self.conversation_template)
        if self.save_every_minutes is not None and not self.save_every_minutes > 0:
            raise ConfigError(f'field "save_every_minutes" must be a positive number, got {self.save_every_minutes}')


LORA_QUANTIZE = ("4bit",)


@dataclass
class LoraArguments:
    """LoRA adapters instead of full fine-tuning (PEFT's LoraConfig); `quantize` makes it QLoRA."""

    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    # PEFT's "all-linear": every linear layer of the blocks, not the output layer.
    target_modules: str | list[str] = "all-linear"
    quantize: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r < 1:
            raise ConfigError(f'field "lora.r" must be a positive integer, got {self.r!r}')
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f'field "lora.alpha" must be a positive number, got {self.alpha!r}')
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f'field "lora.dropout" must be in [0, 1), got {self.dropout!r}')
        names = [self.target_modules] if isinstance(self.target_modules, str) else self.target_modules
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                'field "lora.target_modules" must be "all-linear" or a list of module names, '
                f"got {self.target_modules!r}"
            )
        if self.quantize is not None and self.quantize not in LORA_QUANTIZE:
            raise ConfigError(
                f'field "lora.quantize" must be one of {list(LORA_QUANTIZE)} or null, got {self.quantize!r}'
            )


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": f"'{BUILTIN_TINY_LLAMA}' or a local directory with Hugging Face weights and tokenizer."}
    )
    model_seed: int = field(default=0, metadata={"help": "Initialisation seed of the builtin model."})
    lora: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Train LoRA adapters (fields of LoraArguments); absent or null: full fine-tuning."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.lora, LoraArguments) or self.lora is None:
            return
        if not isinstance(self.lora, dict):
            raise ConfigError(f'field "lora" must be an object or null, got {self.lora!r}')
        known = {f.name for f in dataclasses.fields(LoraArguments)}
        unknown = sorted(set(self.lora) - known)
        if unknown:
            raise ConfigError(f'field "lora" has unknown keys {unknown}; known: {sorted(known)}')
        self.lora = LoraArguments(**self.lora)


@dataclass
class PiftTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's defaults and the checks this pipeline relies on."""

    learning_rate: float = field(default=DEFAULTS["learning_rate"])
    weight_decay: float = field(default=DEFAULTS["weight_decay"])
    adam_beta1: float = field(default=DEFAULTS["adam_beta1"])
    adam_beta2: float = field(default=DEFAULTS["adam_beta2"])
    max_grad_norm: float = field(default=DEFAULTS["max_grad_norm"])
    lr_scheduler_type: SchedulerType | str = field(default=DEFAULTS["lr_scheduler_type"])
    # transformers 5 folded `warmup_ratio` into `warmup_steps`: a float below 1 is a ratio.
    warmup_steps: float = field(default=DEFAULTS["warmup_ratio"])
    warmup_ratio: float | None = field(
        default=None, metadata={"help": "Alias kept for older configs; sets `warmup_steps` to this ratio."}
    )
    seed: int = field(default=DEFAULTS["seed"])
    save_strategy: SaveStrategy | str = field(default="steps")
    logging_steps: float = field(default=1)
    report_to: None | str | list[str] = field(default="none")
    disable_tqdm: bool | None = field(default=True)
    dataloader_num_workers: int = field(default=0)
    # Rows arrive shuffled once with a fixed seed and the paper never reshuffles, so read them in order.
    train_sampling_strategy: str = field(default="sequential")
    # The model's parameters are all used in every forward pass (LoRA freezes some, which DDP ignores), so
    # DDP need not search for unused ones each step.
    ddp_find_unused_parameters: bool | None = field(default=False)
    # Absent means `auto`: bf16 (and tf32) where the GPU supports it, fp16 on an older GPU, fp32 on a CPU.
    bf16: bool | None = field(default=None)
    # A non-finite loss must fail the run (see callbacks.NonFiniteLossCheck), not be smoothed over in the logs.
    logging_nan_inf_filter: bool = field(default=False)
    # Tokens per second in the progress events; counting them changes nothing that is trained.
    include_num_input_tokens_seen: str | bool = field(default="non_padding")
    # "bf16", "fp16" or "fp32": what __post_init__ chose, reported in the start and done events.
    resolved_precision: str = field(default="fp32", init=False)

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
        precision = choose_precision(self.bf16, self.fp16, device_caps())
        self.bf16, self.fp16, self.resolved_precision = precision.bf16, precision.fp16, precision.name
        if self.tf32 is None:
            self.tf32 = precision.tf32
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; it only warns on a CPU
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                # Several CPU processes (the CI proof of the multi-process path): accelerate forms a process
                # group on the CPU only when told so, and gloo is the backend torch ships for it.
                self.use_cpu = True
                self.ddp_backend = self.ddp_backend or "gloo"
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
    conversation_template: str = field(default="auto", metadata={"help": CONVERSATION_TEMPLATE_HELP})
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
    mode: str = field(
        default="generate",
        metadata={
            "help": '"generate": answer with the model here; "prompts": write the exact prompt token ids and answer '
            'budgets to prompts_file for an OpenAI-compatible server; "answers": turn that server\'s completions '
            "(completions_file) into answers as \"generate\" extracts them."
        },
    )
    prompts_file: str | None = field(
        default=None,
        metadata={"help": 'mode "prompts": JSONL of {id, prompt (token ids), max_tokens} written here.'},
    )
    completions_file: str | None = field(
        default=None,
        metadata={"help": 'mode "answers": JSONL of {id, text, completion_tokens, finish_reason} read from here.'},
    )

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        check_conversation_template(self.conversation_template)
        if self.answer_extraction not in ("trimmed", "paper"):
            raise ConfigError(f'field "answer_extraction" must be "trimmed" or "paper", got {self.answer_extraction!r}')
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f'field "max_new_tokens" must be a positive integer, got {self.max_new_tokens}')
        if self.batch_size < 1:
            raise ConfigError(f'field "batch_size" must be a positive integer, got {self.batch_size}')
        if self.mode not in ("generate", "prompts", "answers"):
            raise ConfigError(f'field "mode" must be "generate", "prompts" or "answers", got {self.mode!r}')
        if self.mode == "prompts" and not self.prompts_file:
            raise ConfigError('field "prompts_file" is required in mode "prompts"')
        if self.mode == "answers" and not self.completions_file:
            raise ConfigError('field "completions_file" is required in mode "answers"')
