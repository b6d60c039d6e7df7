"""Fine-tune a causal LM on one Phased IFT stage (or the One-off baseline) with the paper's template.

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.train CONFIG.json

CONFIG.json holds the fields of `ScriptArguments`, `ModelArguments` and `PiftTrainingArguments`
(see trainer/pift/config.py and trainer/README.md), for example:

    {"train_file": "stage1.jsonl", "final_dir": "out/stage1/final", "output_dir": "out/stage1/ckpt",
     "model_name_or_path": "builtin:tiny-llama", "max_steps": 30, "per_device_train_batch_size": 4,
     "learning_rate": 3e-3, "save_steps": 10}

stdout carries only JSON protocol lines (start, progress, checkpoint, done, error); logs go to
stderr. Exit codes: 0 done, 65 bad config or data, 74 scratch disk full, 143 stopped by SIGTERM
after a checkpoint, anything else a crash worth retrying.
"""

from __future__ import annotations

import math
import os
import shutil
import sys

from transformers import HfArgumentParser, Trainer, TrainerState
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import TrainOutput

from .callbacks import ProtocolCallback, SigtermSaveCallback
from .config import ModelArguments, PiftTrainingArguments, ScriptArguments
from .distributed import barrier
from .errors import ConfigError, Terminated
from .job import run_job
from .lora import load_lora_model, save_merged
from .models import load_model, load_tokenizer
from .parent_watch import watch_parent
from .protocol import emit
from .save_timer import save_timer_callbacks
from .scratch import writing
from .template import ResponseOnlyCollator
from .termination import SigtermMode, set_sigterm_mode
from .termination import state as termination
from .threads import limit_cpu_threads
from .train_data import load_train_dataset

MAX_REPORTED_LOSSES = 200
LOSS_SUMMARY_WINDOW = 5


def parse_args(config_path: str) -> tuple[ScriptArguments, ModelArguments, PiftTrainingArguments]:
    parser = HfArgumentParser((ScriptArguments, ModelArguments, PiftTrainingArguments))
    script_args, model_args, training_args = parser.parse_json_file(config_path)
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is not None and not os.path.isfile(os.path.join(checkpoint, TRAINER_STATE_NAME)):
        raise ConfigError(f'field "resume_from_checkpoint": {checkpoint} is not a complete checkpoint directory')
    return script_args, model_args, training_args


def main(script_args: ScriptArguments, model_args: ModelArguments, training_args: PiftTrainingArguments) -> None:
    watch_parent(script_args.parent_pid)
    cpu_threads = limit_cpu_threads()
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    train_dataset = load_train_dataset(
        script_args.train_file, tokenizer, script_args.max_length, script_args.conversation_template, training_args
    )
    finished_state = finished_checkpoint_state(training_args)
    # Every run starts from these weights with a fresh optimizer and schedule, like the paper's per-stage
    # launches; a checkpoint that already reached max_steps holds the final weights instead.
    if model_args.lora is None:
        model_source = training_args.resume_from_checkpoint if finished_state else model_args.model_name_or_path
        model = load_model(model_source, tokenizer, seed=model_args.model_seed)
    else:  # a checkpoint of a LoRA run holds only the adapter
        finished_checkpoint = training_args.resume_from_checkpoint if finished_state else None
        model = load_lora_model(model_args, training_args, tokenizer, finished_checkpoint)
    if training_args.gradient_checkpointing:
        model.config.use_cache = False

    protocol_callback = ProtocolCallback(num_examples=len(train_dataset))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=ResponseOnlyCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[protocol_callback, SigtermSaveCallback(), *save_timer_callbacks(script_args.save_every_minutes)],
    )
    if finished_state is None:
        with writing(training_args.output_dir):  # checkpoints
            train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    else:
        train_output = skip_finished_training(trainer, protocol_callback, finished_state)
    if termination.requested and trainer.state.global_step < trainer.state.max_steps:
        raise Terminated()  # SigtermSaveCallback has written a resumable checkpoint

    with writing(script_args.final_dir):
        save_final(trainer, script_args.final_dir, model_args)
    report_done(trainer, train_output, script_args.final_dir, cpu_threads)


def finished_checkpoint_state(training_args: PiftTrainingArguments) -> TrainerState | None:
    """The resume checkpoint's state when it already reached max_steps (killed before the final save)."""
    if training_args.resume_from_checkpoint is None:
        return None
    state = TrainerState.load_from_json(os.path.join(training_args.resume_from_checkpoint, TRAINER_STATE_NAME))
    return state if state.global_step >= training_args.max_steps else None


def skip_finished_training(
    trainer: Trainer, protocol_callback: ProtocolCallback, finished_state: TrainerState
) -> TrainOutput:
    # Trainer.train would run one step past max_steps when resumed from the last checkpoint.
    set_sigterm_mode(SigtermMode.FINISH)
    trainer.state = finished_state
    protocol_callback.emit_start(trainer.args, finished_state)
    return TrainOutput(finished_state.global_step, 0.0, {"train_runtime": 0.0})


def save_final(trainer: Trainer, final_dir: str, model_args: ModelArguments) -> None:
    """Write to a sibling directory first, so `final_dir` is either complete or absent.

    Every rank takes part (sharded weights are gathered); rank 0 writes the files and renames."""
    staging_dir = f"{final_dir.rstrip(os.sep)}.incomplete"
    main_process = trainer.args.process_index == 0
    if main_process:
        shutil.rmtree(staging_dir, ignore_errors=True)
    barrier()
    if model_args.lora is None:
        trainer.save_model(staging_dir)  # also saves the tokenizer, passed as processing_class
    elif main_process:
        save_merged(trainer.model, trainer.processing_class, staging_dir, model_args.model_name_or_path)
    barrier()
    if main_process:
        shutil.rmtree(final_dir, ignore_errors=True)
        os.replace(staging_dir, final_dir)


def report_done(trainer: Trainer, train_output: TrainOutput, final_dir: str, cpu_threads: int | None) -> None:
    # log_history includes the entries restored from a checkpoint, so this covers the whole stage.
    history = [(entry["step"], float(entry["loss"])) for entry in trainer.state.log_history if "loss" in entry]
    losses = [loss for _, loss in history]
    window = max(1, min(LOSS_SUMMARY_WINDOW, len(losses) // 4))
    stride = max(1, math.ceil(len(history) / MAX_REPORTED_LOSSES))
    sampled = history[::stride]
    if history and sampled[-1] != history[-1]:
        sampled[-1] = history[-1]
    emit(
        "done",
        total_steps=trainer.state.global_step,
        final_dir=os.path.abspath(final_dir),
        loss_first=sum(losses[:window]) / window if losses else None,
        loss_last=sum(losses[-window:]) / window if losses else None,
        losses=[loss for _, loss in sampled],
        loss_steps=[step for step, _ in sampled],
        train_runtime=float(train_output.metrics.get("train_runtime", 0.0)),
        precision=trainer.args.resolved_precision,
        cpu_threads=cpu_threads,
    )


if __name__ == "__main__":
    sys.exit(run_job("pift.train", parse_args, main, sys.argv))
