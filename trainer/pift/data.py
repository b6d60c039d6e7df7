"""Reading and validating the JSONL files the orchestrator hands over.

Every problem is a `DataError` whose message names the file and the 1-based line, so the
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
from .template import encode_training_example


@dataclass(frozen=True)
class InstructionRow:
    id: str | int
    instruction: str
    input: str
    output: str | None


def _field_error(path: str, line_number: int, message: str) -> DataError:
    return DataError(f"{path} line {line_number}: {message}")


def _parse_row(path: str, line_number: int, record: Any, require_output: bool) -> InstructionRow:
    if not isinstance(record, dict):
        raise _field_error(path, line_number, f"expected a JSON object, got {type(record).__name__}")
    if "id" not in record:
        raise _field_error(path, line_number, 'missing field "id"')
    row_id = record["id"]
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise _field_error(path, line_number, 'field "id" must be a string or an integer')
    if "instruction" not in record:
        raise _field_error(path, line_number, 'missing field "instruction"')
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
) -> list[InstructionRow]:
    """Parse a JSONL file of {id, instruction, input, output}; blank lines are skipped."""
    if not os.path.isfile(path):
        raise ConfigError(f'field "{field_name}": no such file {path}')
    rows: list[InstructionRow] = []
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
    """Rows tokenized once up front into the paper's template with response-only labels."""

    def __init__(self, rows: list[InstructionRow], tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.examples = [
            encode_training_example(tokenizer, row.instruction, row.input, row.output or "", max_length)
            for row in rows
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}
