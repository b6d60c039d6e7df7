"""Answer instruction prompts with a fine-tuned model, greedily, in the paper's prompt template.

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.generate CONFIG.json

CONFIG.json holds the fields of `GenerateArguments` (trainer/pift/config.py), for example:

    {"model_dir": "out/stage1/final", "input_file": "vicuna.jsonl", "output_file": "answers.jsonl",
     "max_length": 1024, "batch_size": 8}

Each output line is {"id", "answer", "prompt_tokens", "answer_tokens"}. Re-running with the same
output_file keeps its complete lines and answers only the missing ids. stdout carries only JSON
protocol lines (start, progress, done, error). Exit codes: 0 done, 65 bad config or data,
74 scratch disk full, 143 SIGTERM, anything else a crash worth retrying.

For an OpenAI-compatible server (vLLM, or `python -m pift.serve`) the same config splits the work in
two, so the server gets the very prompts and its answers are extracted the same way: `"mode":
"prompts"` writes each prompt's token ids and answer budget to `prompts_file` (for the completions
endpoint's `prompt` and `max_tokens`), and `"mode": "answers"` turns the server's completions
(`completions_file`: {"id", "text", "completion_tokens", "finish_reason"}) into `output_file`.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import (
    GenerationConfig,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from .answers import Answer, append_answers, completed_answer_ids, id_key
from .config import GenerateArguments
from .data import InstructionRow, Row, read_instruction_rows
from .errors import ConfigError
from .job import run_job
from .model_cache import resolve_model
from .models import decoding_device, load_model, load_tokenizer, plain_greedy
from .parent_watch import watch_parent
from .protocol import emit
from .scratch import writing
from .template import encode_conversation_prompt, encode_generation_prompt, uses_chat_template


def parse_args(config_path: str) -> tuple[GenerateArguments]:
    (args,) = HfArgumentParser((GenerateArguments,)).parse_json_file(config_path)
    # A builtin or hub baseline is resolved through the model cache when the model loads (model_cache.py).
    if not args.model_dir.startswith(("builtin:", "hf://")) and not os.path.isdir(args.model_dir):
        raise ConfigError(f'field "model_dir": no such local directory {args.model_dir}')
    return (args,)


def main(args: GenerateArguments) -> None:
    watch_parent(args.parent_pid)
    rows = read_instruction_rows(args.input_file, require_output=False, unique_ids=True, field_name="input_file")
    if args.mode == "prompts":
        write_endpoint_prompts(args, rows)
        return
    if args.mode == "answers":
        write_endpoint_answers(args, rows)
        return
    done_ids = completed_answer_ids(args.output_file)
    pending = [row for row in rows if id_key(row.id) not in done_ids]
    emit("start", total=len(rows), already_done=len(rows) - len(pending))
    if pending:
        with writing(args.output_file):
            answer_pending(args, pending, already_done=len(rows) - len(pending), total=len(rows))
    emit("done", total=len(rows), output_file=os.path.abspath(args.output_file))


def answer_pending(args: GenerateArguments, pending: list[Row], already_done: int, total: int) -> None:
    device, dtype = decoding_device()
    tokenizer = load_tokenizer(args.model_dir, field_name="model_dir")
    model = plain_greedy(load_model(args.model_dir, tokenizer, dtype=dtype, field_name="model_dir"), tokenizer)
    model = model.to(device).eval()

    prompts = [encode_prompt(tokenizer, row, args) for row in pending]
    # Longest first: similar lengths share a batch (less padding), and an OOM shows up at once.
    order = sorted(range(len(pending)), key=lambda index: -len(prompts[index]))
    answered = already_done
    for start in range(0, len(order), args.batch_size):
        batch = order[start : start + args.batch_size]
        answers = answer_batch(model, tokenizer, [pending[i] for i in batch], [prompts[i] for i in batch], args)
        append_answers(args.output_file, answers)
        answered += len(answers)
        emit("progress", done=answered, total=total)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, row: Row, args: GenerateArguments) -> list[int]:
    """Alpaca rows in the paper's template; a conversation up to its last user turn, in the template training used."""
    if isinstance(row, InstructionRow):
        return encode_generation_prompt(
            tokenizer,
            row.instruction,
            row.input,
            prompt_budget(args),
            args.newline_for_empty_input,
            args.prompt_ends_with_space,
        )
    try:
        chat = uses_chat_template(tokenizer, args.conversation_template)
    except ValueError as error:
        raise ConfigError(f'field "conversation_template": {error}') from error
    return encode_conversation_prompt(tokenizer, list(row.messages), prompt_budget(args), chat)


def prompt_budget(args: GenerateArguments) -> int:
    """Prompt tokens allowed: `max_length` counts the prompt, so an over-long prompt is cut to leave room.

    The room kept for the answer [ours] is a quarter of max_length, or max_new_tokens if smaller.
    """
    room = args.max_length // 4 if args.max_new_tokens is None else min(args.max_new_tokens, args.max_length // 4)
    return args.max_length - max(1, room)


def answer_budget(args: GenerateArguments, prompt_tokens: int) -> int:
    """New tokens one prompt may get: `max_length` counts that prompt alone, as when prompts run one at a time."""
    budget = args.max_length - prompt_tokens
    if args.max_new_tokens is not None:
        budget = min(budget, args.max_new_tokens)
    return max(1, budget)


class PerRowBudget(StoppingCriteria):
    """Stops each row of a batch at its own budget, so batching never changes how long an answer may be."""

    def __init__(self, prompt_width: int, budgets: list[int]):
        self.prompt_width = prompt_width
        self.budgets = torch.tensor(budgets, dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_width
        return (self.budgets.to(input_ids.device) <= generated).to(torch.bool)


@torch.inference_mode()
def answer_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[Row],
    prompts: list[list[int]],
    args: GenerateArguments,
) -> list[Answer]:
    width = max(len(prompt) for prompt in prompts)
    # Left padding keeps every prompt's last token adjacent to its first generated token.
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    budgets = [answer_budget(args, len(prompt)) for prompt in prompts]
    generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max(budgets),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    output = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention_mask.to(model.device),
        generation_config=generation_config,
        stopping_criteria=StoppingCriteriaList([PerRowBudget(width, budgets)]),
    )
    extract = paper_answer if args.answer_extraction == "paper" else to_answer
    return [
        extract(tokenizer, row, prompt, generated.tolist()[:budget])
        for row, prompt, generated, budget in zip(rows, prompts, output[:, width:].cpu(), budgets)
    ]


def write_endpoint_prompts(args: GenerateArguments, rows: list[Row]) -> None:
    """The very token ids "generate" would feed the model, and each one's answer budget, for an OpenAI-compatible
    server's completions endpoint: sent as ids, the prompt is not tokenized again on the other side."""
    emit("start", total=len(rows), already_done=0)
    tokenizer = load_tokenizer(args.model_dir, field_name="model_dir")
    with writing(args.prompts_file):
        with open(args.prompts_file, "w", encoding="utf-8") as handle:
            for row in rows:
                prompt = encode_prompt(tokenizer, row, args)
                record = {"id": row.id, "prompt": prompt, "max_tokens": answer_budget(args, len(prompt))}
                handle.write(json.dumps(record) + "\n")
    # A builtin or hub reference resolves to the directory (or builtin name) a server must load.
    model_path = resolve_model(args.model_dir, "model_dir").path
    # The precision "generate" would decode in here, which the orchestrator holds the server's against.
    dtype = str(decoding_device()[1]).removeprefix("torch.")
    emit("done", total=len(rows), prompts_file=os.path.abspath(args.prompts_file), model_path=model_path, dtype=dtype)


def write_endpoint_answers(args: GenerateArguments, rows: list[Row]) -> None:
    """Answers from a server's completions of `write_endpoint_prompts`' prompts, extracted as "generate" does."""
    emit("start", total=len(rows), already_done=0)
    tokenizer = load_tokenizer(args.model_dir, field_name="model_dir")
    completions = read_completions(args.completions_file)
    missing = [row.id for row in rows if id_key(row.id) not in completions]
    if missing:
        raise ValueError(f"{args.completions_file} lacks the completions of ids {missing[:5]}")
    answers = [
        endpoint_answer(tokenizer, row, encode_prompt(tokenizer, row, args), completions[id_key(row.id)], args)
        for row in rows
    ]
    with writing(args.output_file):
        if os.path.exists(args.output_file):
            os.remove(args.output_file)
        append_answers(args.output_file, answers)
    emit("done", total=len(rows), output_file=os.path.abspath(args.output_file))


def read_completions(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return {id_key(record["id"]): record for record in records}


def endpoint_answer(
    tokenizer: PreTrainedTokenizerBase, row: Row, prompt: list[int], completion: dict, args: GenerateArguments
) -> Answer:
    """The server's text is the answer's tokens decoded after the prompt, without the `</s>` that ended it. That
    `</s>` is among the completion tokens (vLLM and pift.serve count it), not among `answer_tokens`."""
    text = completion["text"]
    answer_tokens = int(completion["completion_tokens"]) - (1 if completion["finish_reason"] == "stop" else 0)
    if args.answer_extraction == "paper":
        answer = after_assistant_marker(tokenizer.decode(prompt, skip_special_tokens=True) + text)
    else:
        answer = text.split(tokenizer.eos_token, 1)[0].strip()
    return Answer(id=row.id, answer=answer, prompt_tokens=len(prompt), answer_tokens=max(0, answer_tokens))


def until_eos(tokenizer: PreTrainedTokenizerBase, generated: list[int]) -> list[int]:
    # What follows a row's `</s>` is padding (its budget is cut before the padding starts).
    if tokenizer.eos_token_id in generated:
        generated = generated[: generated.index(tokenizer.eos_token_id)]
    return generated


def to_answer(tokenizer: PreTrainedTokenizerBase, row: Row, prompt: list[int], generated: list[int]) -> Answer:
    """The text after the prompt, cut at the first `</s>` and stripped."""
    generated = until_eos(tokenizer, generated)
    text = tokenizer.decode(generated, skip_special_tokens=True)
    # A tokenizer may also spell "</s>" with ordinary tokens.
    text = text.split(tokenizer.eos_token, 1)[0]
    return Answer(id=row.id, answer=text.strip(), prompt_tokens=len(prompt), answer_tokens=len(generated))


def paper_answer(
    tokenizer: PreTrainedTokenizerBase, row: Row, prompt: list[int], generated: list[int]
) -> Answer:
    """The released extraction: decode prompt and answer together, keep what follows the first "Assistant:" up to
    the next one (or the end), not stripped. A prompt whose own text holds "Assistant:" is cut there too, as
    there."""
    generated = until_eos(tokenizer, generated)
    text = after_assistant_marker(tokenizer.decode(prompt + generated, skip_special_tokens=True))
    return Answer(id=row.id, answer=text, prompt_tokens=len(prompt), answer_tokens=len(generated))


def after_assistant_marker(decoded: str) -> str:
    pieces = decoded.split("Assistant:")
    return pieces[1] if len(pieces) > 1 else ""


if __name__ == "__main__":
    sys.exit(run_job("pift.generate", parse_args, main, sys.argv))
