"""The training file as a cached Arrow dataset (train_data.py): the same tokens as the per-row encoders, made once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from transformers import TrainingArguments

from pift import train_data
from pift.errors import DataError
from pift.template import encode_conversation, encode_training_example
from pift.tiny_model import build_tiny_tokenizer
from pift.train_data import load_train_dataset

MAX_LENGTH = 48


@pytest.fixture(autouse=True)
def worker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIFT_WORKDIR", str(tmp_path / "work"))
    # Small files still go through several processes, each with a few rows.
    monkeypatch.setattr(train_data, "MIN_ROWS_PER_PROCESS", 5)
    return tmp_path / "work"


@pytest.fixture(scope="module")
def training_args(tmp_path_factory: pytest.TempPathFactory) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path_factory.mktemp("out")), report_to="none")


def rows(count: int) -> list[dict]:
    """Alpaca rows, some long enough to be cut, and single- and multi-turn conversations."""
    out: list[dict] = []
    for index in range(count):
        if index % 5 == 4:
            messages = [{"role": "user", "content": f"Say {index}."}, {"role": "assistant", "content": f"{index}!"}]
            if index % 10 == 9:
                messages += [{"role": "user", "content": "Again."}, {"role": "assistant", "content": "x" * index}]
            out.append({"id": index, "messages": messages})
        else:
            out.append({"id": index, "instruction": "Copy." * (index % 7), "input": "ab" * index, "output": "c" * index})
    return out


def write_rows(path: Path, records: list[dict], extra_lines: dict[int, str] | None = None) -> str:
    lines = [json.dumps(record) for record in records]
    for position, line in sorted((extra_lines or {}).items()):
        lines.insert(position, line)
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return str(path)


def expected(tokenizer, record: dict):
    if "messages" in record:
        return encode_conversation(tokenizer, record["messages"], MAX_LENGTH, chat_template=False)
    return encode_training_example(tokenizer, record["instruction"], record["input"], record["output"], MAX_LENGTH)


def test_tokens_equal_the_per_row_encoders_in_int32(tmp_path: Path, training_args: TrainingArguments) -> None:
    tokenizer = build_tiny_tokenizer()
    records = rows(40)
    path = write_rows(tmp_path / "train.jsonl", records)
    dataset = load_train_dataset(path, tokenizer, MAX_LENGTH, "auto", training_args)
    assert len(dataset.cache_files) > 1  # tokenised by several processes, read back memory-mapped
    assert dataset.column_names == ["input_ids", "labels"]
    assert {str(feature.feature.dtype) for feature in dataset.features.values()} == {"int32"}
    assert len(dataset) == len(records)
    for row, record in zip(dataset, records):
        example = expected(tokenizer, record)
        assert (row["input_ids"], row["labels"]) == (example.input_ids, example.labels)


def test_a_second_attempt_reads_the_cache_and_a_change_makes_a_new_entry(
    tmp_path: Path, worker_dir: Path, training_args: TrainingArguments, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = build_tiny_tokenizer()
    path = write_rows(tmp_path / "train.jsonl", rows(20))
    first = load_train_dataset(path, tokenizer, MAX_LENGTH, "auto", training_args)
    entries = sorted(os.listdir(worker_dir / "data-cache"))

    def no_tokenising(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(train_data, "tokenise_file", no_tokenising)
    again = load_train_dataset(path, tokenizer, MAX_LENGTH, "auto", training_args)
    assert again[:] == first[:]
    assert sorted(os.listdir(worker_dir / "data-cache")) == entries
    for change in ({"max_length": MAX_LENGTH + 1}, {"conversation_template": "paper"}, {"path": "edited"}):
        if change.get("path"):
            write_rows(tmp_path / "train.jsonl", rows(21))
        with pytest.raises(AssertionError, match="tokenised again"):
            load_train_dataset(
                path,
                tokenizer,
                change.get("max_length", MAX_LENGTH),
                change.get("conversation_template", "auto"),
                training_args,
            )


def test_the_first_bad_line_in_file_order_is_reported_and_nothing_is_cached(
    tmp_path: Path, worker_dir: Path, training_args: TrainingArguments
) -> None:
    tokenizer = build_tiny_tokenizer()
    bad = {3: '{"id": 1, "instruction": ', 30: json.dumps({"id": 2, "instruction": "i"})}
    path = write_rows(tmp_path / "train.jsonl", rows(40), bad)
    with pytest.raises(DataError, match=r"train\.jsonl line 4: invalid JSON"):
        load_train_dataset(path, tokenizer, MAX_LENGTH, "auto", training_args)
    assert [name for name in os.listdir(worker_dir / "data-cache") if not name.endswith(".lock")] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\n\n", "contains no rows"), (b'{"id": 1, "instruction": "i", "output": "\xff"}\n', "line 1: not valid UTF-8")],
)
def test_empty_and_undecodable_files(
    tmp_path: Path, training_args: TrainingArguments, content: bytes, message: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_train_dataset(str(path), build_tiny_tokenizer(), MAX_LENGTH, "auto", training_args)
