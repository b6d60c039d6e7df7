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

from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from .errors import ConfigError, DataError
from .template import (
    IGNORE_INDEX,
    ROLES,
    TrainingExample,
    encode_conversation,
    encode_training_example,
    uses_chat_template,
)


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


def read_instruction_rows(
    path: str, *, require_output: bool, unique_ids: bool = False, field_name: str = "train_file"
) -> list[Row]:
    """Parse a JSONL file of Alpaca rows and conversations; blank lines are skipped."""
    if not os.path.isfile(path):
        raise ConfigError(f'field "{field_name}": no such file {path}')
    rows: list[Row] = []
    seen_ids: dict[str, int] = {}
    with open(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _field_error(path, line_number, f"not valid UTF-8 ({error.reason})") from error
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise _field_error(path, line_number, f"invalid JSON ({error.msg} at column {error.colno})") from error
            row = _parse_row(path, line_number, record, require_output)
            if unique_ids:
                key = json.dumps(row.id)
                if key in seen_ids:
                    raise _field_error(path, line_number, f"duplicate id {key} (first on line {seen_ids[key]})")
                seen_ids[key] = line_number
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: contains no rows")
    return rows


class InstructionDataset(Dataset):
    """Rows tokenized once up front with response-only labels: Alpaca rows in the paper's template, conversations
    in the model's chat template or the paper's (`conversation_template`, see template.py)."""

    def __init__(
        self,
        rows: list[Row],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        conversation_template: str = "auto",
        path: str = "train_file",
    ) -> None:
        chat = None  # decided at the first conversation, so an Alpaca-only file never asks
        self.examples: list[TrainingExample] = []
        for row in rows:
            if isinstance(row, InstructionRow):
                example = encode_training_example(tokenizer, row.instruction, row.input, row.output or "", max_length)
            else:
                if chat is None:
                    try:
                        chat = uses_chat_template(tokenizer, conversation_template)
                    except ValueError as error:
                        raise ConfigError(f'field "conversation_template": {error}') from error
                example = encode_conversation_row(tokenizer, row, max_length, chat, path)
            self.examples.append(example)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}


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
