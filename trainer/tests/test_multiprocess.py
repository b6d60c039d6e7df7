"""Several processes per stage (`python -m pift.launcher`), proven on the CPU with two gloo processes."""

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
from safetensors.torch import load_file

from conftest import ScriptResult, parse_protocol, train_config, write_config, write_copy_task

STEPS = 4


def launch(config: dict, workdir: Path, processes: int = 2, timeout: float = 240) -> ScriptResult:
    config_path = write_config(workdir / "launch-config.json", config)
    completed = subprocess.run(
        [sys.executable, "-m", "pift.launcher", "--processes", str(processes), str(config_path)],
        cwd=workdir, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return ScriptResult(completed.returncode, parse_protocol(completed.stdout), completed.stderr)


def run_single(config: dict, workdir: Path) -> ScriptResult:
    config_path = write_config(workdir / "single-config.json", config)
    completed = subprocess.run(
        [sys.executable, "-m", "pift.train", str(config_path)], cwd=workdir, capture_output=True, text=True, timeout=240
    )
    return ScriptResult(completed.returncode, parse_protocol(completed.stdout), completed.stderr)


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl")
    common = {"max_steps": STEPS, "save_steps": 2, "per_device_train_batch_size": 4}
    two = launch(train_config(tmp_path, **common), tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_single(
        train_config(
            tmp_path, **common, gradient_accumulation_steps=2,
            final_dir=str(tmp_path / "final-one"), output_dir=str(tmp_path / "checkpoints-one"),
        ),
        tmp_path,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]

    # Only rank 0 speaks: one start, one progress line per step, one done.
    assert [e["event"] for e in two.events].count("start") == 1
    assert [e["step"] for e in two.of("progress")] == list(range(1, STEPS + 1))
    losses_two = [e["loss"] for e in two.of("progress")]
    losses_one = [e["loss"] for e in one.of("progress")]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    assert two.of("done")[0]["losses"] == pytest.approx(one.of("done")[0]["losses"], rel=1e-5)

    # A checkpoint is announced once every rank has written its part.
    checkpoint = Path(two.of("checkpoint")[-1]["path"])
    assert {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors", "optimizer.pt"} <= set(os.listdir(checkpoint))
    weights_two = load_file(tmp_path / "final" / "model.safetensors")
    weights_one = load_file(tmp_path / "final-one" / "model.safetensors")
    assert weights_two.keys() == weights_one.keys()
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-5)
    assert not (tmp_path / "final.incomplete").exists()


def test_a_bad_config_exits_65_through_the_launcher(tmp_path: Path) -> None:
    result = launch({**train_config(tmp_path), "max_steps": 0}, tmp_path)
    assert result.returncode == 65
    errors = result.of("error")
    assert len(errors) == 1 and 'field "max_steps"' in errors[0]["message"]


def test_the_exit_code_is_the_first_real_failure_not_a_rank_the_agent_stopped() -> None:
    from types import SimpleNamespace

    from pift.launcher import exit_code_of

    failed = lambda **codes: {int(r[1:]): SimpleNamespace(exitcode=c) for r, c in codes.items()}  # noqa: E731
    # Rank 1 refused the config before rank 0 read it; the agent stopped rank 0 (143, or -15 as a signal death).
    assert exit_code_of(failed(r0=143, r1=65)) == 65
    assert exit_code_of(failed(r0=-15, r1=65)) == 65
    # A SIGTERM to the job: every rank checkpoints and exits 143.
    assert exit_code_of(failed(r0=143, r1=143)) == 143
    # Rank 0's own failure first, then the lowest rank's.
    assert exit_code_of(failed(r0=74, r1=65)) == 74
    assert exit_code_of(failed(r2=74, r1=65)) == 65
    assert exit_code_of(failed(r1=-9)) == 137


def test_sigterm_to_the_group_checkpoints_every_rank_and_exits_143(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl", rows=64)
    config_path = write_config(tmp_path / "long.json", train_config(tmp_path, max_steps=100_000, save_steps=100_000))
    process = subprocess.Popen(
        [sys.executable, "-m", "pift.launcher", "--processes", "2", str(config_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    events = []
    try:
        for line in process.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "progress" and events[-1]["step"] >= 2:
                os.killpg(process.pid, signal.SIGTERM)  # what the activity does on cancel
                break
        events += parse_protocol(process.stdout.read())
        assert process.wait(timeout=120) == 143
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    checkpoints = [e for e in events if e["event"] == "checkpoint"]
    assert len(checkpoints) == 1, events[-3:]
    files = set(os.listdir(checkpoints[0]["path"]))
    assert {"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= files
    assert not (tmp_path / "final").exists()


def processes_running(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if marker.encode() in cmdline.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_sigkill_of_the_group_leaves_no_rank_behind(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl", rows=64)
    config_path = write_config(tmp_path / "killed.json", train_config(tmp_path, max_steps=100_000, save_steps=100_000))
    process = subprocess.Popen(
        [sys.executable, "-m", "pift.launcher", "--processes", "2", str(config_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if json.loads(line)["event"] == "progress":
                break
        assert len(processes_running(str(config_path))) == 3  # the launcher and two ranks
        os.killpg(process.pid, signal.SIGKILL)  # what the activity does after the grace period
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while processes_running(str(config_path)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_running(str(config_path)) == []
    finally:
        for pid in processes_running(str(config_path)):
            os.kill(pid, signal.SIGKILL)
