"""A training file as an Arrow dataset, tokenised once per worker and memory-mapped by every attempt and rank.

The anchors' way (transformers `run_clm.py`, TRL `SFTTrainer._prepare_dataset`): the file's lines become a `datasets`
Arrow dataset, mapped in batches over several processes by the project's own encoders (`data.encode_lines`, bit-exact
with template.py) into int32 `input_ids` and `labels`, under `main_process_first` so one rank per machine does the
work. The result is kept in the worker's data cache (`data-cache/` beside the model cache, see model_cache.py) under
the file's sha256 and everything else that changes the tokens, so a retry, a resume and the other ranks load it
instead of tokenising again. Memory does not grow with the rows: lines go to Arrow a batch at a time, and `Trainer`
reads the memory-mapped result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time

from datasets import Dataset, Features, Value, concatenate_datasets
from datasets.arrow_writer import ArrowWriter
from transformers import PreTrainedTokenizerBase, TrainingArguments

from .data import TOKEN_FEATURES, check_file, decode_line, encode_lines, raise_first_error
from .errors import DataError
from .model_cache import data_cache_root, exclusive

logger = logging.getLogger(__name__)

# Bump when the encoders change what they write, so no cache made by an older trainer is read.
TOKENS_FORMAT = 1
LINE_FEATURES = Features({"line_number": Value("int64"), "text": Value("string"), "error": Value("string")})
LINES_PER_WRITE = 10_000
# Fewer rows than this per process and starting the processes costs more than they save.
MIN_ROWS_PER_PROCESS = 20_000
MAX_PROCESSES = 8
MANIFEST = "tokens.json"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """What decides the ids a tokenizer gives: its vocabulary and rules, special tokens and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        rules = backend.to_str()
    else:  # a Python tokenizer: datasets' own hash of the object, as its map cache would use
        from datasets.fingerprint import Hasher

        rules = Hasher.hash(tokenizer)
    specials = [tokenizer.bos_token_id, tokenizer.eos_token_id, type(tokenizer).__name__, tokenizer.chat_template]
    return hashlib.sha256(json.dumps([rules, specials]).encode("utf-8")).hexdigest()


def cache_key(path: str, tokenizer: PreTrainedTokenizerBase, max_length: int, conversation_template: str) -> str:
    """One sha256 over the file's and what else changes its tokens (64 characters: also a `datasets` fingerprint)."""
    settings = [file_sha256(path), TOKENS_FORMAT, tokenizer_fingerprint(tokenizer), max_length, conversation_template]
    return hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()


def processes_for(rows: int) -> int:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_PROCESSES, available, math.ceil(rows / MIN_ROWS_PER_PROCESS)))


def write_lines(path: str, arrow_path: str) -> Dataset:
    """The file's non-blank lines with their numbers, a batch at a time; a line that is not UTF-8 carries its error."""
    batch: dict[str, list] = {name: [] for name in LINE_FEATURES}
    with ArrowWriter(features=LINE_FEATURES, path=arrow_path) as writer, open(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                text, error = decode_line(path, line_number, raw_line), None
            except DataError as failure:
                text, error = "", str(failure)
            if text is None:
                continue
            for name, value in zip(LINE_FEATURES, (line_number, text, error)):
                batch[name].append(value)
            if len(batch["line_number"]) == LINES_PER_WRITE:
                writer.write_batch(batch)
                batch = {name: [] for name in LINE_FEATURES}
        writer.write_batch(batch)
        writer.finalize()
    return Dataset.from_file(arrow_path)


def tokenise_file(
    path: str, tokenizer: PreTrainedTokenizerBase, max_length: int, conversation_template: str, folder: str
) -> None:
    """Write the tokens of `path` into `folder`, which is complete or absent."""
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f"{os.path.basename(folder)}.", suffix=".incomplete", dir=parent)
    try:
        lines = write_lines(path, os.path.join(staging, "lines.arrow"))
        if len(lines) == 0:
            raise DataError(f"{path}: contains no rows")
        tokens = lines.map(
            encode_lines,
            batched=True,
            num_proc=processes_for(len(lines)),
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_length": max_length,
                "conversation_template": conversation_template,
                "path": path,
            },
            remove_columns=lines.column_names,
            features=TOKEN_FEATURES,
            cache_file_name=os.path.join(staging, "tokens.arrow"),
            # The key already says what the tokens depend on; datasets appends a shard suffix (64 characters in all).
            new_fingerprint=os.path.basename(folder)[:40],
            desc="tokenising the training file",
        )
        raise_first_error(tokens)
        files = [os.path.basename(entry["filename"]) for entry in tokens.cache_files]
        del lines, tokens
        os.remove(os.path.join(staging, "lines.arrow"))
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump({"files": files}, handle)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def open_tokens(folder: str) -> Dataset:
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as handle:
        files = json.load(handle)["files"]
    tokens = concatenate_datasets([Dataset.from_file(os.path.join(folder, name)) for name in files])
    return tokens.remove_columns(["error_kind", "error"])


def load_train_dataset(
    path: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    conversation_template: str,
    training_args: TrainingArguments,
) -> Dataset:
    """The tokenised training file, from the worker's data cache or made there first (by one process per machine)."""
    check_file(path, "train_file")
    started, source = time.monotonic(), "cache"
    folder = os.path.join(data_cache_root(), cache_key(path, tokenizer, max_length, conversation_template))
    with training_args.main_process_first(desc="tokenising the training file"):
        if not os.path.isfile(os.path.join(folder, MANIFEST)):
            with exclusive(f"{folder}.lock"):  # two workers' trainers on one machine tokenise it once
                if not os.path.isfile(os.path.join(folder, MANIFEST)):
                    logger.info("tokenising %s into %s", path, folder)
                    tokenise_file(path, tokenizer, max_length, conversation_template, folder)
                    source = "tokenised"
        tokens = open_tokens(folder)
    # bench/trainer-scale.py reads this line.
    logger.info("training data: %d rows in %.3f s (%s)", len(tokens), time.monotonic() - started, source)
    return tokens
