"""End-to-end runs of `python -m pift.train` as a subprocess, checked through its stdout protocol."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import (
    SAVE_STEPS,
    TRAIN_STEPS,
    TrainedRun,
    parse_protocol,
    run_module,
    module_command,
    train_config,
    write_config,
    write_copy_task,
)

CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json")


def assert_complete_checkpoint(path: str, step: int) -> None:
    assert Path(path).name == f"checkpoint-{step}"
    for name in CHECKPOINT_FILES:
        assert (Path(path) / name).is_file(), f"{name} missing in {path}"
    assert json.loads((Path(path) / "trainer_state.json").read_text())["global_step"] == step


def test_training_run_follows_the_protocol(trained_run: TrainedRun) -> None:
    result = trained_run.result
    assert [event["event"] for event in result.events][0] == "start"
    assert result.events[-1]["event"] == "done"
    assert result.of("start") == [
        {
            "event": "start",
            "total_steps": TRAIN_STEPS,
            "resumed_from_step": 0,
            "num_examples": 32,
            "device": "cpu",
            "precision": "fp32",
        }
    ]
    progress = result.of("progress")
    assert [event["step"] for event in progress] == list(range(1, TRAIN_STEPS + 1))
    assert all(event["total_steps"] == TRAIN_STEPS and event["loss"] > 0 for event in progress)
    assert max(event["learning_rate"] for event in progress) == pytest.approx(3e-3)

    checkpoints = result.of("checkpoint")
    assert [event["step"] for event in checkpoints] == [10, 20, 30]
    for event in checkpoints:
        assert os.path.isabs(event["path"])
        assert_complete_checkpoint(event["path"], event["step"])
    # Each checkpoint is announced only after the progress line of its own step.
    positions = {id(event): index for index, event in enumerate(result.events)}
    for event in checkpoints:
        progress_line = next(p for p in progress if p["step"] == event["step"])
        assert positions[id(progress_line)] < positions[id(event)]

    done = result.of("done")[0]
    assert done["total_steps"] == TRAIN_STEPS
    assert done["loss_last"] < done["loss_first"]
    assert done["losses"] == [event["loss"] for event in progress]
    assert done["train_runtime"] > 0
    assert done["final_dir"] == str(trained_run.workdir / "final")
    assert done["precision"] == "fp32"


def test_final_dir_loads_and_generates(trained_run: TrainedRun) -> None:
    final_dir = trained_run.workdir / "final"
    tokenizer = AutoTokenizer.from_pretrained(final_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(final_dir, local_files_only=True)
    assert model.config.vocab_size == len(tokenizer)
    output = model.generate(torch.tensor([[1, 4 + ord("U")]]), max_new_tokens=3, do_sample=False)
    assert output.shape == (1, 5)
    assert not (trained_run.workdir / "final.incomplete").exists()


def resume_from(trained_run: TrainedRun, step: int, tmp_path: Path):
    """A new trainer process resuming the shared run's checkpoint at `step`, writing into tmp_path."""
    config = dict(
        trained_run.config,
        resume_from_checkpoint=str(trained_run.workdir / "checkpoints" / f"checkpoint-{step}"),
        output_dir=str(tmp_path / "checkpoints"),
        final_dir=str(tmp_path / "final"),
    )
    return run_module("pift.train", config, tmp_path)


def test_resume_continues_from_the_checkpoint(trained_run: TrainedRun, tmp_path: Path) -> None:
    result = resume_from(trained_run, SAVE_STEPS, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.of("start")[0]["resumed_from_step"] == SAVE_STEPS
    progress = result.of("progress")
    assert [event["step"] for event in progress] == list(range(SAVE_STEPS + 1, TRAIN_STEPS + 1))
    assert [event["step"] for event in result.of("checkpoint")] == [20, 30]
    done = result.of("done")[0]
    assert done["total_steps"] == TRAIN_STEPS
    # Restored optimizer, schedule, RNG and data position make the resumed losses match the uninterrupted run.
    original = {event["step"]: event for event in trained_run.result.of("progress")}
    for event in progress:
        assert event["loss"] == pytest.approx(original[event["step"]]["loss"], rel=1e-3)
        assert event["learning_rate"] == pytest.approx(original[event["step"]]["learning_rate"], rel=1e-6)
    # loss_first covers the whole stage, including the steps before the resume.
    assert done["loss_first"] == pytest.approx(trained_run.result.of("done")[0]["loss_first"], rel=1e-6)
    assert (tmp_path / "final" / "model.safetensors").is_file()


def start_long_training(workdir: Path, **overrides) -> subprocess.Popen:
    write_copy_task(workdir / "train.jsonl")
    config = train_config(workdir, max_steps=100_000, save_steps=100_000, **overrides)
    config_path = write_config(workdir / "train-config.json", config)
    return subprocess.Popen(
        module_command("pift.train", config_path),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def read_until_step(process: subprocess.Popen, step: int) -> list[dict]:
    events = []
    for line in process.stdout:
        events.extend(parse_protocol(line))
        if events[-1]["event"] == "progress" and events[-1]["step"] >= step:
            return events
    raise AssertionError(f"trainer ended before step {step}: {events}")


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path: Path) -> None:
    process = start_long_training(tmp_path)
    try:
        events = read_until_step(process, 3)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    events += parse_protocol(stdout)
    assert process.returncode == 143
    checkpoints = [event for event in events if event["event"] == "checkpoint"]
    assert len(checkpoints) == 1
    assert checkpoints[0]["step"] >= 3
    assert_complete_checkpoint(checkpoints[0]["path"], checkpoints[0]["step"])
    assert not any(event["event"] == "done" for event in events)
    assert not (tmp_path / "final").exists()


def wait_for_exit(pid: int, timeout: float) -> bool:
    """True once `pid` is gone or a zombie (an orphan may wait for a reaper that never comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


INTERMEDIATE_PARENT = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:], stdout=open(sys.argv[-1] + ".out", "w"), stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_trainer_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl")
    config_path = write_config(
        tmp_path / "train-config.json", train_config(tmp_path, max_steps=100_000, save_steps=100_000)
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERMEDIATE_PARENT, *module_command("pift.train", config_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    trainer_pid = int(parent.stdout.readline())
    output = Path(f"{config_path}.out")
    try:
        deadline = time.monotonic() + 60
        while '"progress"' not in (output.read_text() if output.exists() else ""):
            assert time.monotonic() < deadline, "trainer never started training"
            time.sleep(0.2)
        parent.kill()
        parent.wait()
        assert wait_for_exit(trainer_pid, timeout=5), "trainer outlived its parent"
    finally:
        parent.kill()
        if not wait_for_exit(trainer_pid, timeout=0):
            os.kill(trainer_pid, signal.SIGKILL)


def test_trainer_exits_when_parent_pid_dies(tmp_path: Path) -> None:
    # parent_pid need not be the direct parent: a wrapper may sit in between; the poll covers it.
    stand_in = subprocess.Popen(["sleep", "600"])
    process = start_long_training(tmp_path, parent_pid=stand_in.pid)
    try:
        read_until_step(process, 1)
        stand_in.kill()
        stand_in.wait()
        process.wait(timeout=5)
    finally:
        stand_in.kill()
        process.kill()
    assert process.returncode == 143


def test_bad_data_exits_65_naming_file_and_line(tmp_path: Path) -> None:
    train_file = tmp_path / "train.jsonl"
    write_copy_task(train_file, rows=4)
    lines = train_file.read_text().splitlines()
    lines[2] = json.dumps({"id": "x", "instruction": "i", "input": ""})
    train_file.write_text("\n".join(lines) + "\n")
    result = run_module("pift.train", train_config(tmp_path), tmp_path)
    assert result.returncode == 65
    assert result.events == [
        {"event": "error", "kind": "data", "message": f'{train_file} line 3: missing field "output"'}
    ]


def test_malformed_json_exits_65(tmp_path: Path) -> None:
    train_file = tmp_path / "train.jsonl"
    write_copy_task(train_file, rows=8)
    with open(train_file, "a", encoding="utf-8") as handle:
        handle.write('{"id": "broken", "instruction": \n')
    result = run_module("pift.train", train_config(tmp_path), tmp_path)
    assert result.returncode == 65
    (error,) = result.of("error")
    assert error["kind"] == "data"
    assert error["message"].startswith(f"{train_file} line 9: invalid JSON")


def test_bad_config_exits_65_naming_the_field(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl", rows=4)
    result = run_module("pift.train", train_config(tmp_path, unknown_key=1), tmp_path)
    assert result.returncode == 65
    (error,) = result.of("error")
    assert error["kind"] == "config"
    assert "unknown_key" in error["message"]
    result = run_module("pift.train", train_config(tmp_path, max_steps=0), tmp_path)
    assert result.returncode == 65
    assert 'field "max_steps"' in result.of("error")[0]["message"]


def test_resume_from_the_last_checkpoint_only_saves(trained_run: TrainedRun, tmp_path: Path) -> None:
    # A run killed between its last checkpoint and the final save must not train an extra step.
    result = resume_from(trained_run, TRAIN_STEPS, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [event["event"] for event in result.events] == ["start", "done"]
    assert result.of("start")[0]["resumed_from_step"] == TRAIN_STEPS
    assert result.of("done")[0]["total_steps"] == TRAIN_STEPS
    assert result.of("done")[0]["losses"] == trained_run.result.of("done")[0]["losses"]
    assert (tmp_path / "final" / "model.safetensors").is_file()
