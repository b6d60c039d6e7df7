"""Reading and validating the JSONL files the orchestrator hands over.

A line is an Alpaca row `{"id", "instruction", "input"?, "output"}` or a conversation
`{"id", "messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]}` (an optional
system message first, then user and assistant turns; training needs an assistant turn, generation
a user turn). Every problem is a `DataError` whose message names the file and the 1-based line, so the
orchestrator can show the user exactly what to fix (and knows not to retry).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, Features, List, Value
from transformers import PreTrainedTokenizerBase

from .errors import ConfigError, DataError, JobInputError
from .template import (
    IGNORE_INDEX,
    ROLES,
    TrainingExample,
    encode_conversation,
    encode_training_examples,
    uses_chat_template,
)

# What `Trainer` reads: one tokenised row each, int32 (a vocabulary fits, and it halves the Arrow files), plus the
# row's problem, if any, so the first bad line in file order is reported whichever process tokenised it.
TOKEN_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "error_kind": Value("string"),
        "error": Value("string"),
    }
)
ERROR_KINDS = {error.kind: error for error in (ConfigError, DataError)}


@dataclass(frozen=True)
class InstructionRow:
    id: str | int
    instruction: str
    input: str
    output: str | None


@dataclass(frozen=True)
class ConversationRow:
    id: str | int
    messages: tuple[dict[str, str], ...]
    line_number: int = 0


Row = InstructionRow | ConversationRow


def _field_error(path: str, line_number: int, message: str) -> DataError:
    return DataError(f"{path} line {line_number}: {message}")


def _parse_conversation(
    path: str, line_number: int, row_id: str | int, messages: Any, require_output: bool
) -> ConversationRow:
    if not isinstance(messages, list) or not messages:
        raise _field_error(path, line_number, 'field "messages" must be a non-empty array')
    parsed = []
    for index, message in enumerate(messages):
        where = f'field "messages[{index}]'
        if not isinstance(message, dict):
            raise _field_error(path, line_number, f'{where}" must be an object with "role" and "content"')
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _field_error(path, line_number, f'{where}.role" must be one of {", ".join(ROLES)}, got {role!r}')
        if role == "system" and index > 0:
            raise _field_error(path, line_number, f'{where}": a system message may only come first')
        if not isinstance(content, str):
            raise _field_error(path, line_number, f'{where}.content" must be a string')
        parsed.append({"role": role, "content": content})
    if not any(message["role"] == "user" for message in parsed):
        raise _field_error(path, line_number, 'field "messages" has no user turn')
    if require_output and not any(message["role"] == "assistant" for message in parsed):
        raise _field_error(path, line_number, 'field "messages" has no assistant turn to learn from')
    return ConversationRow(id=row_id, messages=tuple(parsed), line_number=line_number)


def _parse_row(path: str, line_number: int, record: Any, require_output: bool) -> Row:
    if not isinstance(record, dict):
        raise _field_error(path, line_number, f"expected a JSON object, got {type(record).__name__}")
    if "id" not in record:
        raise _field_error(path, line_number, 'missing field "id"')
    row_id = record["id"]
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise _field_error(path, line_number, 'field "id" must be a string or an integer')
    if "messages" in record:
        return _parse_conversation(path, line_number, row_id, record["messages"], require_output)
    if "instruction" not in record:
        raise _field_error(path, line_number, 'missing field "instruction" (or "messages" for a conversation)')
    if not isinstance(record["instruction"], str):
        raise _field_error(path, line_number, 'field "instruction" must be a string')
    input_text = record.get("input")
    if input_text is None:
        input_text = ""
    elif not isinstance(input_text, str):
        raise _field_error(path, line_number, 'field "input" must be a string or null')
    output = record.get("output")
    if require_output:
        if "output" not in record:
            raise _field_error(path, line_number, 'missing field "output"')
        if not isinstance(output, str):
            raise _field_error(path, line_number, 'field "output" must be a string')
    return InstructionRow(id=row_id, instruction=record["instruction"], input=input_text, output=output)


def decode_line(path: str, line_number: int, raw_line: bytes) -> str | None:
    """A JSONL line's text; None for a blank line."""
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _field_error(path, line_number, f"not valid UTF-8 ({error.reason})") from error
    return text if text.strip() else None


def parse_text(path: str, line_number: int, text: str, require_output: bool) -> Row:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise _field_error(path, line_number, f"invalid JSON ({error.msg} at column {error.colno})") from error
    return _parse_row(path, line_number, record, require_output)


def check_file(path: str, field_name: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f'field "{field_name}": no such file {path}')


def read_instruction_rows(
    path: str, *, require_output: bool, unique_ids: bool = False, field_name: str = "train_file"
) -> list[Row]:
    """Parse a JSONL file of Alpaca rows and conversations; blank lines are skipped."""
    check_file(path, field_name)
    rows: list[Row] = []
    seen_ids: dict[str, int] = {}
    with open(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            text = decode_line(path, line_number, raw_line)
            if text is None:
                continue
            row = parse_text(path, line_number, text, require_output)
            if unique_ids:
                key = json.dumps(row.id)
                if key in seen_ids:
                    raise _field_error(path, line_number, f"duplicate id {key} (first on line {seen_ids[key]})")
                seen_ids[key] = line_number
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: contains no rows")
    return rows


def encode_conversation_row(
    tokenizer: PreTrainedTokenizerBase, row: ConversationRow, max_length: int, chat: bool, path: str
) -> TrainingExample:
    try:
        example = encode_conversation(tokenizer, list(row.messages), max_length, chat)
    except ValueError as error:
        raise ConfigError(f'field "conversation_template": {error}') from error
    if all(label == IGNORE_INDEX for label in example.labels):
        raise _field_error(
            path,
            row.line_number,
            f"the conversation's first assistant turn starts beyond max_length ({max_length} tokens); "
            "shorten its earlier turns or raise the maximum length",
        )
    return example


def encode_rows(
    rows: list[Row | JobInputError],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    conversation_template: str,
    path: str,
) -> dict[str, list]:
    """A batch of rows (or the error each line raised) as columns of TOKEN_FEATURES, in order.

    Response-only labels: Alpaca rows in the paper's template, all in one tokenizer call per piece; conversations in the
    model's chat template or the paper's (`conversation_template`, see template.py)."""
    examples: list[TrainingExample | JobInputError] = list(rows)
    alpaca = [index for index, row in enumerate(rows) if isinstance(row, InstructionRow)]
    encoded = encode_training_examples(
        tokenizer,
        [rows[index].instruction for index in alpaca],
        [rows[index].input for index in alpaca],
        [rows[index].output or "" for index in alpaca],
        max_length,
    )
    for index, example in zip(alpaca, encoded):
        examples[index] = example
    chat = None  # decided at the first conversation, so an Alpaca-only file never asks
    for index, row in enumerate(rows):
        if not isinstance(row, ConversationRow):
            continue
        try:
            if chat is None:
                chat = conversation_chat_template(tokenizer, conversation_template)
            examples[index] = encode_conversation_row(tokenizer, row, max_length, chat, path)
        except JobInputError as error:
            examples[index] = error
    columns: dict[str, list] = {name: [] for name in TOKEN_FEATURES}
    for example in examples:
        failed = isinstance(example, JobInputError)
        columns["input_ids"].append([] if failed else example.input_ids)
        columns["labels"].append([] if failed else example.labels)
        columns["error_kind"].append(example.kind if failed else None)
        columns["error"].append(str(example) if failed else None)
    return columns


def encode_lines(
    batch: dict[str, list],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    conversation_template: str,
    path: str,
) -> dict[str, list]:
    """`Dataset.map` function from a batch of LINE_FEATURES to TOKEN_FEATURES: parse, check and tokenise."""
    rows: list[Row | JobInputError] = []
    for line_number, text, error in zip(batch["line_number"], batch["text"], batch["error"]):
        try:
            if error is not None:
                raise DataError(error)
            rows.append(parse_text(path, line_number, text, require_output=True))
        except DataError as failure:
            rows.append(failure)
    return encode_rows(rows, tokenizer, max_length, conversation_template, path)


def raise_first_error(tokens: Dataset) -> None:
    """Raise the problem of the first bad row, in file order; a no-op when every row encoded."""
    errors = tokens.data.column("error")
    if errors.null_count == len(tokens):
        return
    first = next(index for index, error in enumerate(errors.is_valid().to_pylist()) if error)
    raise ERROR_KINDS[tokens[first]["error_kind"]](tokens[first]["error"])


def InstructionDataset(  # noqa: N802 - reads like the dataset class it returns
    rows: list[Row],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    conversation_template: str = "auto",
    path: str = "train_file",
) -> Dataset:
    """Rows already in memory, tokenised as a training file's are (train_data.py does a file, out of core)."""
    tokens = Dataset.from_dict(
        encode_rows(list(rows), tokenizer, max_length, conversation_template, path), features=TOKEN_FEATURES
    )
    raise_first_error(tokens)
    return tokens.remove_columns(["error_kind", "error"])


def conversation_chat_template(tokenizer: PreTrainedTokenizerBase, conversation_template: str) -> bool:
    try:
        return uses_chat_template(tokenizer, conversation_template)
    except ValueError as error:
        raise ConfigError(f'field "conversation_template": {error}') from error
