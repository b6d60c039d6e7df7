"""`python -m pift.generate` on the model trained by the shared fixture."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TrainedRun, run_module


def write_prompts(path: Path, count: int) -> list:
    ids = [f"q{index}" if index % 2 else index for index in range(count)]
    with open(path, "w", encoding="utf-8") as handle:
        for row_id in ids:
            record = {"id": row_id, "instruction": "Copy the word."}
            if isinstance(row_id, int):
                record["input"] = "abc" * (row_id + 1)
            handle.write(json.dumps(record) + "\n")
    return ids


def read_answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_answers_every_id_and_resumes(trained_run: TrainedRun, tmp_path: Path) -> None:
    ids = write_prompts(tmp_path / "prompts.jsonl", 7)
    output_file = tmp_path / "answers.jsonl"
    config = {
        "model_dir": str(trained_run.workdir / "final"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(output_file),
        "max_new_tokens": 12,
        "batch_size": 3,
    }
    first = run_module("pift.generate", config, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.of("start") == [{"event": "start", "total": 7, "already_done": 0}]
    assert [event["done"] for event in first.of("progress")] == [3, 6, 7]
    assert first.events[-1] == {"event": "done", "total": 7, "output_file": str(output_file)}
    answers = read_answers(output_file)
    assert sorted(map(str, (a["id"] for a in answers))) == sorted(map(str, ids))
    for answer in answers:
        assert set(answer) == {"id", "answer", "prompt_tokens", "answer_tokens"}
        assert isinstance(answer["answer"], str) and "</s>" not in answer["answer"]
        assert 0 <= answer["answer_tokens"] <= 12

    # Keep three complete lines plus a torn one, as a killed run leaves behind.
    kept = output_file.read_text(encoding="utf-8").splitlines()[:3]
    output_file.write_text("\n".join(kept) + '\n{"id": "q', encoding="utf-8")
    second = run_module("pift.generate", config, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.of("start") == [{"event": "start", "total": 7, "already_done": 3}]
    resumed = read_answers(output_file)
    assert [json.dumps(a["id"]) for a in resumed[:3]] == [json.dumps(json.loads(line)["id"]) for line in kept]
    assert sorted(json.dumps(a["id"]) for a in resumed) == sorted(json.dumps(i) for i in ids)
    # Greedy decoding is deterministic: re-answered prompts get the same text.
    by_id = {json.dumps(a["id"]): a for a in answers}
    assert all(by_id[json.dumps(a["id"])] == a for a in resumed)


def test_generate_rejects_a_missing_model_dir(tmp_path: Path) -> None:
    write_prompts(tmp_path / "prompts.jsonl", 1)
    config = {
        "model_dir": str(tmp_path / "absent"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(tmp_path / "answers.jsonl"),
    }
    result = run_module("pift.generate", config, tmp_path)
    assert result.returncode == 65
    assert result.of("error")[0]["kind"] == "config"
    assert 'field "model_dir"' in result.of("error")[0]["message"]


def test_each_prompt_gets_its_own_budget_whatever_the_batch(trained_run: TrainedRun, tmp_path: Path) -> None:
    # Prompts of very different lengths and a max_length that binds: batched, the short prompts must get as many new
    # tokens as when each runs alone (the released code runs one prompt at a time with max_length counting it).
    with open(tmp_path / "prompts.jsonl", "w", encoding="utf-8") as handle:
        for index in range(6):
            row = {"id": index, "instruction": "Copy the word.", "input": "ab" * (1 + 3 * index)}
            handle.write(json.dumps(row) + "\n")
    answers = {}
    for batch_size in (1, 6):
        output_file = tmp_path / f"answers-{batch_size}.jsonl"
        config = {
            "model_dir": str(trained_run.workdir / "final"),
            "input_file": str(tmp_path / "prompts.jsonl"),
            "output_file": str(output_file),
            "max_length": 96,
            "batch_size": batch_size,
        }
        result = run_module("pift.generate", config, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        answers[batch_size] = {a["id"]: a for a in read_answers(output_file)}
    assert answers[6] == answers[1]
    for answer in answers[1].values():
        assert answer["prompt_tokens"] + answer["answer_tokens"] <= 96
    # A shorter prompt ran into its own budget, longer than the longest prompt leaves: batching by the longest prompt
    # (the old rule) would have cut it.
    longest = max(a["prompt_tokens"] for a in answers[1].values())
    assert any(
        a["prompt_tokens"] + a["answer_tokens"] == 96 and a["prompt_tokens"] < longest for a in answers[6].values()
    )


def test_paper_extraction_keeps_the_leading_space_and_the_empty_input_newline(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    with open(tmp_path / "prompts.jsonl", "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "a", "instruction": "Copy the word.", "input": ""}) + "\n")
    base = {
        "model_dir": str(trained_run.workdir / "final"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "max_new_tokens": 8,
    }
    runs = {
        "trimmed": {},
        "paper": {"answer_extraction": "paper", "newline_for_empty_input": True},
    }
    answers = {}
    for name, extra in runs.items():
        output_file = tmp_path / f"{name}.jsonl"
        result = run_module("pift.generate", {**base, **extra, "output_file": str(output_file)}, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        (answers[name],) = read_answers(output_file)
    # The bare "\n" of an empty input is one more prompt token.
    assert answers["paper"]["prompt_tokens"] == answers["trimmed"]["prompt_tokens"] + 1
    assert "Assistant:" not in answers["paper"]["answer"]
