"""Checkpoints by wall-clock time: the callback asks for a save once the interval has passed."""

from __future__ import annotations

from transformers import TrainerControl, TrainerState, TrainingArguments

from pift.save_timer import SaveTimerCallback, save_timer_callbacks


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_asks_for_a_save_once_the_minutes_have_passed_since_the_last_one(tmp_path) -> None:
    clock = FakeClock()
    timer = SaveTimerCallback(minutes=2, clock=clock)
    args, state = TrainingArguments(output_dir=str(tmp_path), report_to="none"), TrainerState()
    timer.on_train_begin(args, state, TrainerControl())

    clock.now = 119.0
    control = TrainerControl()
    timer.on_step_end(args, state, control)
    assert not control.should_save

    clock.now = 120.0
    timer.on_step_end(args, state, control)
    assert control.should_save
    timer.on_save(args, state, control)  # the Trainer saved: the interval starts again

    clock.now = 200.0
    control = TrainerControl()
    timer.on_step_end(args, state, control)
    assert not control.should_save


def test_no_callback_unless_the_setting_is_given() -> None:
    assert save_timer_callbacks(None) == []
    assert isinstance(save_timer_callbacks(0.5)[0], SaveTimerCallback)


def test_the_trainer_saves_by_minutes_between_step_checkpoints(tmp_path) -> None:
    from conftest import run_module, train_config, write_copy_task

    write_copy_task(tmp_path / "train.jsonl", rows=8)
    # A tiny interval: every step is past it, while save_steps alone would save only at the end.
    config = train_config(tmp_path, max_steps=3, save_steps=100, save_every_minutes=1e-6)
    result = run_module("pift.train", config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [event["step"] for event in result.of("checkpoint")] == [1, 2, 3]
