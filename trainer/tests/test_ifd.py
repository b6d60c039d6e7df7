"""`python -m pift.ifd`: IFD = loss(answer | instruction) / loss(answer alone), on the builtin tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from conftest import run_module

from pift.ifd import encode_pair, score_pairs
from pift.models import load_model, load_tokenizer
from pift.template import IGNORE_INDEX

MODEL = "builtin:tiny-llama"
SEED = 7

ROWS = [
    {"id": "a", "instruction": "Copy the word.", "input": "apple", "output": "apple"},
    {"id": 2, "instruction": "Reverse the letters.", "input": "stone", "output": "enots"},
    {"id": "c", "instruction": "Say hello.", "output": "Hello there, how are you today?"},
    {"id": "d", "instruction": "Count to five.", "input": "", "output": "1 2 3 4 5"},
    {
        "id": "e",
        "messages": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
        ],
    },
    {"id": "f", "instruction": "Long " * 40, "input": "x" * 200, "output": "y" * 120},
]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def hand_loss(model, ids: list[int], labels: list[int]) -> float:
    """The mean cross-entropy of the labelled tokens, from the model's own forward on one unpadded sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    terms = [
        -log_probs[position - 1, labels[position]].item()
        for position in range(1, len(ids))
        if labels[position] != IGNORE_INDEX
    ]
    return sum(terms) / len(terms)


def run_ifd(tmp_path: Path, rows: list[dict], **config) -> tuple:
    write_rows(tmp_path / "rows.jsonl", rows)
    output = tmp_path / "ifd.jsonl"
    result = run_module(
        "pift.ifd",
        {
            "model_name_or_path": MODEL,
            "model_seed": SEED,
            "input_file": str(tmp_path / "rows.jsonl"),
            "output_file": str(output),
            "max_length": 128,
            **config,
        },
        tmp_path,
    )
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()] if output.exists() else []
    return result, lines


def test_ifd_matches_a_hand_computation_and_batching_changes_nothing(tmp_path: Path) -> None:
    result, lines = run_ifd(tmp_path, ROWS, batch_size=4)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [e["done"] for e in result.of("progress")] == [4, 6]
    assert result.events[-1]["event"] == "done" and result.events[-1]["precision"] == "fp32"
    assert [line["id"] for line in lines] == [row["id"] for row in ROWS]
    assert all(set(line) == {"id", "score", "loss_given_instruction", "loss_alone"} for line in lines)

    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, tokenizer, seed=SEED).eval()
    from pift.data import _parse_row

    for index, (row, line) in enumerate(zip(ROWS, lines)):
        parsed = _parse_row("rows.jsonl", index + 1, row, True)
        pair = encode_pair(tokenizer, parsed, 128, False, "rows.jsonl", index)
        given = hand_loss(model, pair.conditioned_ids, pair.conditioned_labels)
        # The answer alone: <s> and exactly the tokens the conditioned sequence labels.
        answer = [t for t in pair.conditioned_labels if t != IGNORE_INDEX]
        assert pair.alone_ids == [tokenizer.bos_token_id, *answer]
        alone = hand_loss(model, pair.alone_ids, [IGNORE_INDEX, *answer])
        assert math.isclose(line["loss_given_instruction"], given, rel_tol=1e-5, abs_tol=1e-5)
        assert math.isclose(line["loss_alone"], alone, rel_tol=1e-5, abs_tol=1e-5)
        assert math.isclose(line["score"], given / alone, rel_tol=1e-5)

    # The long row was cut to max_length as training cuts it; its answer kept at least half of it.
    long_pair = encode_pair(tokenizer, _parse_row("rows.jsonl", 6, ROWS[5], True), 128, False, "rows.jsonl", 5)
    assert len(long_pair.conditioned_ids) == 128 and len(long_pair.alone_ids) > 64

    # One row at a time gives the same numbers as batches of four (padding is masked out).
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    single, single_lines = run_ifd(single_dir, ROWS, batch_size=1)
    assert single.returncode == 0, single.stderr[-3000:]
    for a, b in zip(lines, single_lines):
        for key in ("score", "loss_given_instruction", "loss_alone"):
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), (a, b)


def test_score_pairs_is_deterministic_in_process() -> None:
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, tokenizer, seed=SEED).eval()
    from pift.data import _parse_row

    pairs = [encode_pair(tokenizer, _parse_row("x", i + 1, row, True), 128, False, "x", i) for i, row in enumerate(ROWS)]
    first = score_pairs(model, tokenizer, pairs, batch_size=3)
    again = score_pairs(model, tokenizer, pairs, batch_size=3)
    assert first == again


def test_an_empty_answer_is_an_error_naming_the_row(tmp_path: Path) -> None:
    rows = [ROWS[0], {"id": "empty-one", "instruction": "Say nothing.", "output": "  "}]
    result, _ = run_ifd(tmp_path, rows)
    assert result.returncode == 65
    (error,) = result.of("error")
    assert "row 2" in error["message"] and '"empty-one"' in error["message"] and "empty" in error["message"]


def test_mixed_precision_forward_stays_close_to_fp32() -> None:
    """The GPU path runs the forward passes under autocast (bf16 where training would use it); on a CPU the same
    code path with bf16 autocast gives the fp32 numbers to bf16's precision."""
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, tokenizer, seed=SEED).eval()
    from pift.data import _parse_row

    pairs = [encode_pair(tokenizer, _parse_row("x", i + 1, row, True), 128, False, "x", i) for i, row in enumerate(ROWS)]
    fp32 = score_pairs(model, tokenizer, pairs, batch_size=3)
    bf16 = score_pairs(model, tokenizer, pairs, batch_size=3, autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    for a, b in zip(fp32, bf16):
        assert a != b
        assert math.isclose(a.loss_given_instruction, b.loss_given_instruction, rel_tol=3e-2)
        assert math.isclose(a.loss_alone, b.loss_alone, rel_tol=3e-2)
