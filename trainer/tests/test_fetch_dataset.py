"""Hub datasets read offline from a cache in the hub's layout, written as JSONL with their revision."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_module
from pift.errors import ConfigError
from pift.fetch_dataset import FetchDatasetArguments, main, parse_hub_dataset

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
ALPACA = [{"instruction": f"Say {w}.", "input": "", "output": w} for w in ("one", "two", "three")]
CHATS = [
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Héllo ✓"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}]},
]
README = """---
configs:
- config_name: alpaca
  data_files:
  - split: train
    path: alpaca/train-*.parquet
- config_name: chat
  data_files:
  - split: train
    path: chat/train-*.parquet
  - split: test
    path: chat/test-*.parquet
---
# acme/mixed
"""


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch) -> Path:
    """What `hf download --repo-type dataset --cache-dir` leaves: refs/main -> snapshots/<commit>/."""
    repo = tmp_path / "cache" / "hub" / "datasets--acme--mixed"
    files = repo / "snapshots" / COMMIT
    (files / "alpaca").mkdir(parents=True)
    (files / "chat").mkdir()
    (files / "README.md").write_text(README, encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(ALPACA), files / "alpaca" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(CHATS), files / "chat" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(CHATS[:1]), files / "chat" / "test-00000-of-00001.parquet")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    # A plain repository: no README, JSONL data files whose names give the splits.
    plain = tmp_path / "cache" / "hub" / "datasets--acme--plain"
    (plain / "snapshots" / COMMIT / "data").mkdir(parents=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CHATS)
    (plain / "snapshots" / COMMIT / "data" / "train.jsonl").write_text(lines, encoding="utf-8")
    (plain / "refs").mkdir()
    (plain / "refs" / "v1.0").write_text(COMMIT)
    monkeypatch.setenv("PIFT_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_config_is_written_as_jsonl_with_its_commit_offline(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    config = {"uri": "hf://datasets/acme/mixed/alpaca", "output_file": str(out)}
    result = run_module("pift.fetch_dataset", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.events == [
        {
            "event": "dataset_ready",
            "uri": "hf://datasets/acme/mixed/alpaca",
            "repo_id": "acme/mixed",
            "config": "alpaca",
            "split": "train",
            "revision": COMMIT,
            "rows": 3,
            "output_file": str(out),
        }
    ]
    assert read_jsonl(out) == ALPACA


def test_parquet_conversations_and_other_splits_and_revisions(hub_cache: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "chat.jsonl"
    main(FetchDatasetArguments(uri=f"hf://datasets/acme/mixed/chat@{COMMIT}", output_file=str(out)))
    assert read_jsonl(out) == CHATS
    assert "Héllo ✓" in out.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    main(FetchDatasetArguments(uri="hf://datasets/acme/mixed/chat/test@main", output_file=str(out)))
    assert read_jsonl(out) == CHATS[:1]
    assert not Path(f"{out}.incomplete").exists()
    main(FetchDatasetArguments(uri="hf://datasets/acme/plain@v1.0", output_file=str(out)))
    assert read_jsonl(out) == CHATS


def test_missing_dataset_split_or_config_is_bad_input(hub_cache: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    with pytest.raises(ConfigError, match=r"hf://datasets/acme/absent is not in the dataset cache .*HF_HUB_OFFLINE=1"):
        main(FetchDatasetArguments(uri="hf://datasets/acme/absent", output_file=out))
    with pytest.raises(ConfigError, match="hf://datasets/acme/mixed/nope"):
        main(FetchDatasetArguments(uri="hf://datasets/acme/mixed/nope", output_file=out))
    with pytest.raises(ConfigError, match="hf://datasets/acme/mixed/alpaca/validation"):
        main(FetchDatasetArguments(uri="hf://datasets/acme/mixed/alpaca/validation", output_file=out))


def test_uris_are_parsed_strictly() -> None:
    parsed = parse_hub_dataset("hf://datasets/org/name/cfg/test@v1")
    assert (parsed.repo_id, parsed.config, parsed.split, parsed.revision) == ("org/name", "cfg", "test", "v1")
    assert parse_hub_dataset("hf://datasets/org/name").split == "train"
    for bad in ("hf://datasets/name", "hf://org/name", "hf://datasets/org/name@", "hf://datasets/o/n/c/s/x"):
        with pytest.raises(ConfigError, match="not a hub dataset"):
            parse_hub_dataset(bad)
