"""Checkpoints by wall-clock time as well as by steps (`save_every_minutes`)."""

from __future__ import annotations

import time

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class SaveTimerCallback(TrainerCallback):
    """Asks for a save at the end of the first step after `minutes` have passed since the last save.

    A save only writes what the Trainer already holds (no random numbers are drawn), so where the
    time-based checkpoints fall never changes the weights, and resuming from any of them is exact.
    """

    def __init__(self, minutes: float, clock=time.monotonic) -> None:
        self.interval = minutes * 60.0
        self.clock = clock
        self.last_save = clock()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        self.last_save = self.clock()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        if self.clock() - self.last_save >= self.interval:
            control.should_save = True

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        self.last_save = self.clock()


def save_timer_callbacks(minutes: float | None) -> list[TrainerCallback]:
    """The callbacks to add to the Trainer: none unless `save_every_minutes` is set."""
    return [] if minutes is None else [SaveTimerCallback(minutes)]
