"""Materialize a Hugging Face hub dataset as a JSONL file, the way the pipeline reads every dataset.

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.fetch_dataset CONFIG.json

CONFIG.json: {"uri": "hf://datasets/org/name[/config[/split]][@revision]", "output_file": "rows.jsonl"}
(`parent_pid` optional). The split defaults to `train`, the revision (branch, tag or commit) to `main`.

The dataset's files are fetched once into the model cache's `hub/` folder (`PIFT_MODEL_CACHE`, see
model_cache.py) in the hub's own layout (`datasets--org--name/snapshots/<commit>/`), then read with the
`datasets` library from that snapshot, so the rows come from one commit and a rerun reads the same bytes.
With `HF_HUB_OFFLINE=1` only the cache is used. Each row is written as one JSON object with the dataset's own
columns (UTF-8, key order as the dataset's features); the caller decides which layout they are (Alpaca,
ShareGPT, messages) like for any uploaded file. The output is written beside its name and renamed.

stdout: {"event":"dataset_ready","uri":...,"repo_id":...,"config":...,"split":...,"revision":"<commit>",
"rows":n,"output_file":"/abs/path"} and exit 0, or {"event":"error",...} and exit 65 for a bad URI, a
dataset, config or split that does not exist, or one missing from the cache while offline.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser

from .errors import ConfigError, DataError
from .job import run_job
from .model_cache import cache_root, hub_snapshot
from .parent_watch import watch_parent
from .protocol import emit
from .scratch import writing

HUB_DATASET = re.compile(
    r"^hf://datasets/(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)"
    r"(?:/(?P<config>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:/(?P<split>[A-Za-z0-9][A-Za-z0-9_.-]*))?)?"
    r"(?:@(?P<revision>[^@\s/]+))?$"
)
# Data files only: no loading scripts (the `datasets` library no longer runs them, and they would be remote code).
DATASET_FILES = ["*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz", "*.parquet", "*.csv", "*.arrow", "*.md", "*.txt"]
URI_FIELD = "input.dataset"


@dataclass
class FetchDatasetArguments:
    uri: str = field(metadata={"help": "hf://datasets/org/name[/config[/split]][@revision]"})
    output_file: str = field(metadata={"help": "JSONL file to write the rows to."})
    parent_pid: int | None = field(default=None, metadata={"help": "Exit promptly when this process dies."})


@dataclass(frozen=True)
class HubDataset:
    repo_id: str
    config: str | None
    split: str
    revision: str


def parse_hub_dataset(uri: str, field_name: str = URI_FIELD) -> HubDataset:
    match = HUB_DATASET.match(uri)
    if match is None:
        raise ConfigError(
            f'field "{field_name}": {uri!r} is not a hub dataset; '
            "expected hf://datasets/org/name[/config[/split]][@revision]"
        )
    return HubDataset(match["repo"], match["config"], match["split"] or "train", match["revision"] or "main")


def snapshot(dataset: HubDataset, uri: str) -> str:
    """The dataset's files at one commit, from the cache or downloaded into it."""
    return hub_snapshot(
        dataset.repo_id,
        dataset.revision,
        repo_type="dataset",
        allow_patterns=DATASET_FILES,
        field_name=URI_FIELD,
        value=uri,
        kind="dataset",
    )


def load_rows(dataset: HubDataset, folder: str, uri: str) -> Any:
    import datasets

    try:
        return datasets.load_dataset(
            folder, name=dataset.config, split=dataset.split, cache_dir=os.path.join(cache_root(), "datasets")
        )
    except ValueError as error:  # unknown config or split: the library lists the ones there are
        raise ConfigError(f'field "{URI_FIELD}": {uri}: {error}') from error
    except datasets.exceptions.DataFilesNotFoundError as error:
        raise ConfigError(f'field "{URI_FIELD}": {uri} holds no data files the pipeline reads: {error}') from error
    except datasets.exceptions.DatasetGenerationError as error:  # a file that does not parse as its format
        raise DataError(f"{uri}: cannot read the dataset's files: {error.__cause__ or error}") from error


def write_jsonl(rows: Any, output_file: str, uri: str) -> int:
    staging = f"{output_file}.incomplete"
    count = 0
    with open(staging, "w", encoding="utf-8") as handle:
        for index, row in enumerate(rows):
            try:
                handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
            except (TypeError, ValueError) as error:
                raise DataError(f"{uri} row {index + 1}: a value JSON cannot hold ({error})") from error
            count += 1
    os.replace(staging, output_file)
    return count


def parse_args(config_path: str) -> tuple[FetchDatasetArguments]:
    (args,) = HfArgumentParser((FetchDatasetArguments,)).parse_json_file(config_path)
    parse_hub_dataset(args.uri)
    return (args,)


def main(args: FetchDatasetArguments) -> None:
    watch_parent(args.parent_pid)
    dataset = parse_hub_dataset(args.uri)
    folder = snapshot(dataset, args.uri)
    rows = load_rows(dataset, folder, args.uri)
    with writing(args.output_file):
        count = write_jsonl(rows, args.output_file, args.uri)
    if count == 0:
        raise DataError(f"{args.uri}: split {dataset.split!r} has no rows")
    emit(
        "dataset_ready",
        uri=args.uri,
        repo_id=dataset.repo_id,
        config=dataset.config,
        split=dataset.split,
        revision=os.path.basename(os.path.normpath(folder)),
        rows=count,
        output_file=os.path.abspath(args.output_file),
    )


if __name__ == "__main__":
    sys.exit(run_job("pift.fetch_dataset", parse_args, main, sys.argv))
