"""Instruction-Following Difficulty (IFD) of every row, from the base model: an offline difficulty score.

IFD (Li et al. 2023, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection for
Instruction Tuning", the Cherry LLM paper) compares how hard a model finds an answer with and without its
instruction:

    IFD(Q, A) = s(A | Q) / s(A)

where s(A | Q) is the mean cross-entropy of the answer tokens given the instruction and s(A) the mean cross-entropy
of the same answer tokens alone. An instruction that helps the model predict its answer little (IFD near or above 1)
is a hard one; higher IFD = harder.

Conditioned sequence: the row exactly as training encodes it (template.py: the paper's template for Alpaca rows,
the chat template or the paper's for conversations), cut to `max_length` as training cuts it; its labelled tokens
(the answer and its `</s>`) are the answer tokens. Alone: `<s>` (a tokenizer without one: its EOS) followed by those same tokens, so both losses are
means over exactly the same answer tokens (the Cherry LLM code lines the two up approximately, by shortening the
alone text's max length by the instruction's; here they are the same tokens by construction).

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.ifd CONFIG.json

CONFIG.json holds the fields of `IfdArguments`, for example:

    {"model_name_or_path": "builtin:smollm2-135m-instruct", "input_file": "rows.jsonl",
     "output_file": "ifd.jsonl", "max_length": 2048, "batch_size": 8}

Each output line is {"id", "score", "loss_given_instruction", "loss_alone"}, in input order; `score` is null when
the answer alone has a zero or non-finite loss (no ratio exists). stdout carries only JSON protocol lines (start,
progress, done, error). Exit codes: 0 done, 65 bad config or data, 74 scratch disk full, 143 SIGTERM, anything
else a crash worth retrying.
"""

from __future__ import annotations

import json
import math
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, PreTrainedModel, PreTrainedTokenizerBase

from .config import CONVERSATION_TEMPLATE_HELP, check_conversation_template, check_max_length
from .data import ConversationRow, InstructionRow, Row, encode_conversation_row, read_instruction_rows
from .errors import ConfigError, DataError
from .job import run_job
from .models import load_model, load_tokenizer
from .parent_watch import watch_parent
from .precision import Precision, choose_precision, device_caps
from .protocol import emit, json_safe
from .scratch import writing
from .template import IGNORE_INDEX, bos_ids, encode_training_example, uses_chat_template


@dataclass
class IfdArguments:
    model_name_or_path: str = field(
        metadata={"help": "The base model: a builtin, hf://org/name[@revision] or a local directory."}
    )
    input_file: str = field(metadata={"help": "JSONL of rows (Alpaca or conversations), each with an answer."})
    output_file: str = field(metadata={"help": "JSONL of {id, score, loss_given_instruction, loss_alone}."})
    max_length: int = field(default=2048, metadata={"help": "Tokens per conditioned sequence, cut as training cuts."})
    batch_size: int = field(default=8, metadata={"help": "Rows per forward pass, right-padded."})
    conversation_template: str = field(default="auto", metadata={"help": CONVERSATION_TEMPLATE_HELP})
    model_seed: int = field(default=0, metadata={"help": "Initialisation seed of the builtin tiny model."})
    bf16: bool | None = field(
        default=None,
        metadata={"help": "As in training: absent is bf16 where the GPU has it (fp16 on older GPUs), fp32 on a CPU."},
    )
    parent_pid: int | None = field(default=None, metadata={"help": "Exit promptly when this process dies."})

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        check_conversation_template(self.conversation_template)
        if self.batch_size < 1:
            raise ConfigError(f'field "batch_size" must be a positive integer, got {self.batch_size}')


@dataclass(frozen=True)
class IfdPair:
    """One row's two sequences; `alone` is a start token + the conditioned sequence's labelled tokens."""

    conditioned_ids: list[int]
    conditioned_labels: list[int]
    alone_ids: list[int]


@dataclass(frozen=True)
class IfdScore:
    loss_given_instruction: float
    loss_alone: float

    @property
    def score(self) -> float | None:
        ratio = self.loss_given_instruction / self.loss_alone if self.loss_alone > 0 else math.inf
        return ratio if math.isfinite(ratio) else None


def parse_args(config_path: str) -> tuple[IfdArguments]:
    (args,) = HfArgumentParser((IfdArguments,)).parse_json_file(config_path)
    if not args.model_name_or_path.startswith(("builtin:", "hf://")) and not os.path.isdir(args.model_name_or_path):
        raise ConfigError(f'field "model_name_or_path": no such local directory {args.model_name_or_path}')
    return (args,)


def _row_name(path: str, row: Row, index: int) -> str:
    line = row.line_number if isinstance(row, ConversationRow) and row.line_number else None
    return f"{path} row {index + 1}{f' (line {line})' if line else ''}, id {json.dumps(row.id)}"


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, row: Row, max_length: int, chat: bool | None, path: str, index: int
) -> IfdPair:
    """The row as training encodes it, and its answer tokens alone; an answer with no text is an error naming it."""
    if isinstance(row, InstructionRow):
        if not (row.output or "").strip():
            raise DataError(f"{_row_name(path, row, index)}: the answer (\"output\") is empty; IFD needs an answer")
        example = encode_training_example(tokenizer, row.instruction, row.input, row.output or "", max_length)
    else:
        if not any(m["role"] == "assistant" and m["content"].strip() for m in row.messages):
            raise DataError(f"{_row_name(path, row, index)}: every assistant turn is empty; IFD needs an answer")
        example = encode_conversation_row(tokenizer, row, max_length, bool(chat), path)
    answer = [token for token in example.labels if token != IGNORE_INDEX]
    return IfdPair(example.input_ids, example.labels, [start_token(tokenizer), *answer])


def start_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """What the answer alone follows: `<s>`, or for a tokenizer without one its EOS (a document boundary, as such
    models are pretrained), so that the first answer token is predicted in both sequences."""
    return (bos_ids(tokenizer) or [tokenizer.eos_token_id])[0]


def alone_labels(pair: IfdPair) -> list[int]:
    return [IGNORE_INDEX, *pair.alone_ids[1:]]


def _batch(sequences: list[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[row, : len(ids)] = torch.tensor(row_labels, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@torch.inference_mode()
def mean_answer_losses(
    model: PreTrainedModel, sequences: list[tuple[list[int], list[int]]], pad_token_id: int, autocast=None
) -> list[float]:
    """Each sequence's mean next-token cross-entropy over its labelled positions (fp32 softmax)."""
    batch = {k: v.to(model.device) for k, v in _batch(sequences, pad_token_id).items()}
    with autocast if autocast is not None else nullcontext():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1, :].float()
    targets = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    counted = (targets != IGNORE_INDEX).sum(dim=1)
    return (losses.sum(dim=1) / counted).double().cpu().tolist()


def score_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[IfdPair],
    batch_size: int,
    autocast=None,
    on_batch=None,
) -> list[IfdScore]:
    """Both losses of every pair, in batches of similar length (longest first); results in the pairs' order."""
    order = sorted(range(len(pairs)), key=lambda index: (-len(pairs[index].conditioned_ids), index))
    scores: list[IfdScore | None] = [None] * len(pairs)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        given = mean_answer_losses(
            model,
            [(pairs[i].conditioned_ids, pairs[i].conditioned_labels) for i in batch],
            tokenizer.pad_token_id,
            autocast,
        )
        alone = mean_answer_losses(
            model, [(pairs[i].alone_ids, alone_labels(pairs[i])) for i in batch], tokenizer.pad_token_id, autocast
        )
        for index, g, a in zip(batch, given, alone):
            scores[index] = IfdScore(loss_given_instruction=g, loss_alone=a)
        if on_batch is not None:
            on_batch(min(start + batch_size, len(order)))
    return [s for s in scores if s is not None]


def precision_for(args: IfdArguments) -> Precision:
    """The precision training would choose on this device (precision.py), applied to the forward passes."""
    return choose_precision(args.bf16, False, device_caps())


def main(args: IfdArguments) -> None:
    watch_parent(args.parent_pid)
    rows = read_instruction_rows(args.input_file, require_output=True, unique_ids=True, field_name="input_file")
    emit("start", total=len(rows))
    tokenizer = load_tokenizer(args.model_name_or_path, field_name="model_name_or_path")
    chat = None
    if any(isinstance(row, ConversationRow) for row in rows):
        try:
            chat = uses_chat_template(tokenizer, args.conversation_template)
        except ValueError as error:
            raise ConfigError(f'field "conversation_template": {error}') from error
    pairs = [encode_pair(tokenizer, row, args.max_length, chat, args.input_file, i) for i, row in enumerate(rows)]

    precision = precision_for(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision.tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = precision.tf32
    # fp32 weights with autocast, as mixed-precision training runs its forward passes.
    model = load_model(args.model_name_or_path, tokenizer, seed=args.model_seed, field_name="model_name_or_path")
    model = model.to(device).eval()
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.name)
    autocast = torch.autocast(device_type=device.type, dtype=amp) if amp is not None else None

    scores = score_pairs(
        model,
        tokenizer,
        pairs,
        args.batch_size,
        autocast,
        on_batch=lambda done: emit("progress", done=done, total=len(rows)),
    )
    with writing(args.output_file):
        with open(args.output_file, "w", encoding="utf-8") as handle:
            for row, score in zip(rows, scores):
                record = {
                    "id": row.id,
                    "score": score.score,
                    "loss_given_instruction": score.loss_given_instruction,
                    "loss_alone": score.loss_alone,
                }
                handle.write(json.dumps(json_safe(record), allow_nan=False, ensure_ascii=False) + "\n")
    emit("done", total=len(rows), precision=precision.name, output_file=os.path.abspath(args.output_file))


if __name__ == "__main__":
    sys.exit(run_job("pift.ifd", parse_args, main, sys.argv))
