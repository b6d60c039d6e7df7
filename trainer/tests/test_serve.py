"""`python -m pift.serve`, and `pift.generate`'s two halves for a serving endpoint ("prompts", then "answers"), on
the model trained by the shared fixture: answers through the server equal the ones `pift.generate` gives."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TrainedRun, run_module

NAME = "stage-x"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(trained_run: TrainedRun) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "pift.serve", "--model", str(trained_run.workdir / "final")]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--served-model-name", NAME], stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):
            assert process.poll() is None, process.stderr.read()
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=5) as response:
                    models = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert [model["id"] for model in models["data"]] == [NAME]
        assert models["data"][0]["owned_by"] == "pift"
        # The precision "generate" decodes in here, which the prompts mode tells the orchestrator to expect.
        assert models["data"][0]["dtype"] == "float32"
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def write_prompts(path: Path) -> None:
    rows = [{"id": index, "instruction": "Copy the word.", "input": "abc" * (index + 1)} for index in range(5)]
    rows.append({"id": "no-input", "instruction": "Copy the word.", "input": ""})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_lines(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(lines, key=lambda line: json.dumps(line["id"]))


@pytest.mark.parametrize("extraction", ["trimmed", "paper"])
def test_answers_through_the_server_equal_generate(
    trained_run: TrainedRun, server: str, tmp_path: Path, extraction: str
) -> None:
    write_prompts(tmp_path / "prompts.jsonl")
    config = {
        "model_dir": str(trained_run.workdir / "final"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(tmp_path / "generated.jsonl"),
        "max_length": 48,
        "answer_extraction": extraction,
    }
    generated = run_module("pift.generate", config, tmp_path)
    assert generated.returncode == 0, generated.stderr[-3000:]

    prompts = run_module(
        "pift.generate", {**config, "mode": "prompts", "prompts_file": str(tmp_path / "served.jsonl")}, tmp_path
    )
    assert prompts.returncode == 0, prompts.stderr[-3000:]
    assert prompts.of("done")[0]["model_path"] == str(trained_run.workdir / "final")
    assert prompts.of("done")[0]["dtype"] == "float32"
    completions = []
    for prompt in read_lines(tmp_path / "served.jsonl"):
        assert prompt["max_tokens"] == 48 - len(prompt["prompt"])
        status, body = post(
            f"{server}/completions",
            {"model": NAME, "prompt": prompt["prompt"], "max_tokens": prompt["max_tokens"], "temperature": 0},
        )
        assert status == 200, body
        assert body["usage"]["prompt_tokens"] == len(prompt["prompt"])
        choice = body["choices"][0]
        completions.append(
            {
                "id": prompt["id"],
                "text": choice["text"],
                "completion_tokens": body["usage"]["completion_tokens"],
                "finish_reason": choice["finish_reason"],
            }
        )
    completions_file = tmp_path / "completions.jsonl"
    completions_file.write_text("".join(json.dumps(c) + "\n" for c in completions[::-1]), encoding="utf-8")

    answers_config = {
        **config,
        "mode": "answers",
        "completions_file": str(completions_file),
        "output_file": str(tmp_path / "served-answers.jsonl"),
    }
    answered = run_module("pift.generate", answers_config, tmp_path)
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert read_lines(tmp_path / "served-answers.jsonl") == read_lines(tmp_path / "generated.jsonl")


def test_the_server_refuses_what_it_cannot_do_greedily(server: str) -> None:
    status, body = post(f"{server}/completions", {"model": NAME, "prompt": "User: hi", "max_tokens": 4})
    assert status == 400 and "greedily" in body["error"]["message"]
    status, body = post(f"{server}/completions", {"model": "other", "prompt": "hi", "temperature": 0})
    assert status == 404 and "other" in body["error"]["message"]
    status, body = post(f"{server}/completions", {"model": NAME, "prompt": [], "temperature": 0})
    assert status == 400
    too_long = {"model": NAME, "prompt": "x", "max_tokens": 10**6, "temperature": 0}
    status, body = post(f"{server}/completions", too_long)
    assert status == 400 and "maximum context length" in body["error"]["message"]
    # A text prompt is tokenized by the server, as vLLM does.
    text_prompt = {"model": NAME, "prompt": "User: hi", "max_tokens": 3, "temperature": 0}
    status, body = post(f"{server}/completions", text_prompt)
    assert status == 200 and body["object"] == "text_completion" and body["usage"]["completion_tokens"] <= 3


def test_answers_mode_needs_every_completion(trained_run: TrainedRun, tmp_path: Path) -> None:
    write_prompts(tmp_path / "prompts.jsonl")
    (tmp_path / "completions.jsonl").write_text(
        json.dumps({"id": 0, "text": " abc", "completion_tokens": 2, "finish_reason": "stop"}) + "\n", encoding="utf-8"
    )
    config = {
        "model_dir": str(trained_run.workdir / "final"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(tmp_path / "answers.jsonl"),
        "mode": "answers",
        "completions_file": str(tmp_path / "completions.jsonl"),
    }
    result = run_module("pift.generate", config, tmp_path)
    assert result.returncode != 0
    assert "lacks the completions" in result.of("error")[0]["message"]


@pytest.mark.parametrize("extraction", ["trimmed", "paper"])
def test_a_completion_ended_by_eos_reads_as_generate_reads_it(trained_run: TrainedRun, extraction: str) -> None:
    # The short-trained model rarely ends by itself: here the answer's tokens are given, ending in </s> as a server
    # stops them, and the server's text of them is what pift.serve sends.
    from pift.config import GenerateArguments
    from pift.data import InstructionRow
    from pift.generate import encode_prompt, endpoint_answer, paper_answer, to_answer
    from pift.models import load_tokenizer
    from pift.serve import completion_text

    model_dir = str(trained_run.workdir / "final")
    tokenizer = load_tokenizer(model_dir)
    args = GenerateArguments(model_dir=model_dir, input_file="-", output_file="-", answer_extraction=extraction)
    row = InstructionRow(id="r", instruction="Copy the word.", input="naïve", output=None)
    prompt = encode_prompt(tokenizer, row, args)
    answer = tokenizer.encode(" naïve Assistant: café", add_special_tokens=False)
    generated = [*answer, tokenizer.eos_token_id, *answer]
    completion = {"text": completion_text(tokenizer, prompt, answer), "completion_tokens": len(answer) + 1}
    expected = (paper_answer if extraction == "paper" else to_answer)(tokenizer, row, prompt, generated)
    assert endpoint_answer(tokenizer, row, prompt, {**completion, "finish_reason": "stop"}, args) == expected
    assert expected.answer_tokens == len(answer)
