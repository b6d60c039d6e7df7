"""A full scratch disk is reported as such (exit 74, kind disk_full), not as a crash worth retrying."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TrainedRun, parse_protocol, train_config, write_config, write_copy_task
from pift.scratch import full_disk_target, is_disk_full, writing

# Runs an entry module as `python -m` does, with one low-level write replaced by one that fails as a full disk
# does: torch's zip writer with its own message (it has no errno), a plain file write with ENOSPC and no file name
# (as a failed flush reports it).
FULL_DISK_DRIVER = """
import errno, os, runpy, sys
module, config, patch = sys.argv[1:]
if patch == "torch.save":
    import torch
    def save(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    torch.save = save
elif patch == "append_answers":
    import pift.answers
    def append_answers(path, answers):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    pift.answers.append_answers = append_answers
sys.argv = [module, config]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_on_full_disk(module: str, config: dict, patch: str, workdir: Path) -> tuple[int, list[dict]]:
    config_path = write_config(workdir / "config.json", config)
    completed = subprocess.run(
        [sys.executable, "-c", FULL_DISK_DRIVER, module, str(config_path), patch],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return completed.returncode, parse_protocol(completed.stdout)


def test_training_on_a_full_disk_exits_74(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl", rows=8)
    config = train_config(tmp_path, max_steps=2, save_steps=1)
    returncode, events = run_on_full_disk("pift.train", config, "torch.save", tmp_path)
    assert returncode == 74
    assert events[-1] == {
        "event": "error",
        "kind": "disk_full",
        "message": f"scratch space full while writing {tmp_path / 'checkpoints'}",
    }
    assert not any(event["event"] in ("checkpoint", "done") for event in events)


def test_generation_on_a_full_disk_exits_74(trained_run: TrainedRun, tmp_path: Path) -> None:
    (tmp_path / "prompts.jsonl").write_text('{"id": 1, "instruction": "Copy the word.", "input": "abc"}\n')
    config = {
        "model_dir": str(trained_run.workdir / "final"),
        "input_file": str(tmp_path / "prompts.jsonl"),
        "output_file": str(tmp_path / "answers.jsonl"),
        "max_new_tokens": 4,
    }
    returncode, events = run_on_full_disk("pift.generate", config, "append_answers", tmp_path)
    assert returncode == 74
    assert events[-1] == {
        "event": "error",
        "kind": "disk_full",
        "message": f"scratch space full while writing {tmp_path / 'answers.jsonl'}",
    }


def test_recognises_full_disk_errors_through_their_causes(tmp_path: Path) -> None:
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "x.bin"))
    try:
        try:
            raise quota
        except OSError as error:
            raise RuntimeError("saving the checkpoint failed") from error
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
        assert full_disk_target(wrapped) == str(tmp_path / "x.bin")
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"))
    assert is_disk_full(RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"))
    # safetensors writes from Rust and reports the OS error as text only.
    assert is_disk_full(Exception("Error while serializing: IoError(Os { code: 28, message: \"No space left on device\" })"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("CUDA out of memory"))


def test_names_what_was_being_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        with writing(str(tmp_path / "outer")):
            with writing(str(tmp_path / "inner")):
                raise RuntimeError("unexpected pos 1 vs 2")
    assert full_disk_target(caught.value) == str(tmp_path / "inner")
