"""Trainer callbacks: protocol events and the SIGTERM checkpoint."""

from __future__ import annotations

import json
import logging
import math
import os
import time

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .distributed import any_rank, barrier
from .errors import NonFiniteLossError
from .protocol import emit, is_main_process, json_safe
from .termination import SigtermMode, set_sigterm_mode
from .termination import state as termination

logger = logging.getLogger(__name__)

# Beside the checkpoints in output_dir: one JSON line per logged step (the progress event's fields).
METRICS_FILE = "metrics.jsonl"


class ProtocolCallback(TrainerCallback):
    """Emits the start, progress and checkpoint events of the stdout protocol."""

    def __init__(self, num_examples: int) -> None:
        self.num_examples = num_examples
        self._started_at = 0.0
        self._first_step = 0
        self._last_log = (0.0, 0)  # time, tokens seen

    def metrics_path(self, args: TrainingArguments) -> str:
        return os.path.join(args.output_dir, METRICS_FILE)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> None:
        # The Trainer has restored the checkpoint's state by now, so global_step is the resume point.
        self._started_at = time.monotonic()
        self._first_step = state.global_step
        self._last_log = (self._started_at, state.num_input_tokens_seen or 0)
        if is_main_process() and state.global_step > 0 and not os.path.exists(self.metrics_path(args)):
            # A resumed attempt starts in a fresh directory: carry the checkpoint's history over.
            os.makedirs(args.output_dir, exist_ok=True)
            with open(self.metrics_path(args), "w", encoding="utf-8") as metrics:
                for entry in state.log_history:
                    if "loss" in entry:
                        metrics.write(json.dumps(json_safe(entry), allow_nan=False) + "\n")
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
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            # Every rank logs the same gathered loss, so all of them stop here.
            raise NonFiniteLossError(
                f"training diverged: the loss is {loss} at step {state.global_step}; lower "
                "input.training.learningRate, or check input.training.bf16 and the data"
            )
        now = time.monotonic()
        tokens = state.num_input_tokens_seen or 0
        last_time, last_tokens = self._last_log
        self._last_log = (now, tokens)
        steps_done = state.global_step - self._first_step
        grad_norm = logs.get("grad_norm")
        record = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "loss": loss,
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "epoch": float(state.epoch or 0.0),
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_second": (tokens - last_tokens) / (now - last_time) if now > last_time else None,
            "eta_seconds": (now - self._started_at) / steps_done * (state.max_steps - state.global_step)
            if steps_done > 0
            else None,
        }
        emit("progress", **record)
        if is_main_process():
            os.makedirs(args.output_dir, exist_ok=True)
            with open(self.metrics_path(args), "a", encoding="utf-8") as metrics:
                metrics.write(json.dumps(json_safe(record), allow_nan=False) + "\n")

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
