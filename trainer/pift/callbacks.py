"""Trainer callbacks: protocol events and the SIGTERM checkpoint."""

from __future__ import annotations

import logging
import os

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .distributed import any_rank, barrier
from .protocol import emit
from .termination import SigtermMode, set_sigterm_mode
from .termination import state as termination

logger = logging.getLogger(__name__)


class ProtocolCallback(TrainerCallback):
    """Emits the start, progress and checkpoint events of the stdout protocol."""

    def __init__(self, num_examples: int) -> None:
        self.num_examples = num_examples

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        # The Trainer has restored the checkpoint's state by now, so global_step is the resume point.
        self.emit_start(args, state)

    def emit_start(self, args: TrainingArguments, state: TrainerState) -> None:
        emit(
            "start",
            total_steps=state.max_steps,
            resumed_from_step=state.global_step,
            num_examples=self.num_examples,
            device="cuda" if args.device.type == "cuda" else "cpu",
            precision=getattr(args, "resolved_precision", "fp32"),
        )

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs
    ) -> None:
        if not logs or "loss" not in logs:
            return  # the end-of-training summary carries train_loss, not a step loss
        emit(
            "progress",
            step=state.global_step,
            total_steps=state.max_steps,
            loss=float(logs["loss"]),
            learning_rate=float(logs.get("learning_rate", 0.0)),
            epoch=float(state.epoch or 0.0),
        )

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        # on_save runs after _save_checkpoint has written model, optimizer, scheduler, RNG and
        # trainer state; with save_total_limit=None nothing is rotated away afterwards. Under a launcher
        # every rank writes its own RNG state (and shards), so rank 0 announces only once all are done.
        barrier()
        path = os.path.abspath(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"))
        emit("checkpoint", step=state.global_step, path=path)


class SigtermSaveCallback(TrainerCallback):
    """Turns a SIGTERM during training into a full resumable checkpoint, then stops training.

    Not transformers' `enable_jit_checkpoint`: that one waits 3 s after the signal, may save
    between micro-batches, and bypasses `on_save`, so no checkpoint event would be emitted.
    """

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        set_sigterm_mode(SigtermMode.CHECKPOINT)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        # The group kill reaches each rank at its own moment; all must checkpoint at the same step.
        if any_rank(termination.requested, args.device):
            termination.requested = True
            control.should_save = True
            control.should_training_stop = True

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        # A SIGTERM that arrived during a regular save is satisfied by that checkpoint.
        if any_rank(termination.requested, args.device):
            termination.requested = True
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        set_sigterm_mode(SigtermMode.FINISH)
