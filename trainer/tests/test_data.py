from __future__ import annotations

import json

import pytest

from pift.data import read_instruction_rows
from pift.errors import ConfigError, DataError


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good(row_id: str) -> str:
    return json.dumps({"id": row_id, "instruction": "i", "input": "", "output": "o"})


def test_reads_rows_and_skips_blank_lines(tmp_path) -> None:
    path = write_lines(tmp_path / "train.jsonl", [good("a"), "", json.dumps({"id": 2, "instruction": "i", "output": ""})])
    rows = read_instruction_rows(str(path), require_output=True)
    assert [row.id for row in rows] == ["a", 2]
    assert rows[1].input == ""


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "b", "instruction": ', "line 2: invalid JSON"),
        (json.dumps({"id": "b", "instruction": "i", "input": ""}), 'line 2: missing field "output"'),
        (json.dumps({"id": "b", "instruction": "i", "output": 3}), 'line 2: field "output" must be a string'),
        (json.dumps({"id": "b", "instruction": None, "output": "o"}), 'line 2: field "instruction" must be a string'),
        (json.dumps({"instruction": "i", "output": "o"}), 'line 2: missing field "id"'),
        (json.dumps(["not", "an", "object"]), "line 2: expected a JSON object"),
    ],
)
def test_errors_name_file_and_line(tmp_path, bad_line: str, message: str) -> None:
    path = write_lines(tmp_path / "train.jsonl", [good("a"), bad_line, good("c")])
    with pytest.raises(DataError) as error:
        read_instruction_rows(str(path), require_output=True)
    assert str(error.value).startswith(f"{path} {message}")


def test_duplicate_ids_rejected_for_generation(tmp_path) -> None:
    path = write_lines(tmp_path / "prompts.jsonl", [good("a"), good("a")])
    with pytest.raises(DataError, match="line 2: duplicate id"):
        read_instruction_rows(str(path), require_output=False, unique_ids=True)


def test_missing_file_names_the_field(tmp_path) -> None:
    with pytest.raises(ConfigError, match='field "train_file"'):
        read_instruction_rows(str(tmp_path / "absent.jsonl"), require_output=True)


def test_empty_file_is_bad_data(tmp_path) -> None:
    path = write_lines(tmp_path / "train.jsonl", [""])
    with pytest.raises(DataError, match="contains no rows"):
        read_instruction_rows(str(path), require_output=True)
