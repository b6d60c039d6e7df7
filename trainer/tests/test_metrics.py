"""Progress metrics, the metrics file beside the checkpoints, and a diverged loss failing the run."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_module, train_config, write_copy_task


def test_progress_carries_metrics_and_lands_in_metrics_jsonl(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl")
    result = run_module("pift.train", train_config(tmp_path, max_steps=3, save_steps=100), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    progress = result.of("progress")
    for event in progress:
        assert event["grad_norm"] > 0 and event["tokens_per_second"] > 0 and event["eta_seconds"] >= 0
    lines = (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{k: v for k, v in e.items() if k != "event"} for e in progress]


def test_a_non_finite_loss_fails_with_exit_70(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl")
    config = train_config(tmp_path, max_steps=8, save_steps=100, learning_rate=1e6, warmup_ratio=0, max_grad_norm=1e9)
    result = run_module("pift.train", config, tmp_path)
    assert result.returncode == 70
    error = result.of("error")[0]
    assert error["kind"] == "diverged" and "loss is nan" in error["message"] and "learningRate" in error["message"]
    assert all(event["loss"] is not None for event in result.of("progress"))
    assert not (tmp_path / "final").exists()
