"""The same training as `python -m pift.train CONFIG`, as a plain transformers `Trainer` script.

Usage: python bench/plain_trainer.py CONFIG.json

It reads the config pift.train reads and builds the same model, tokenizer and batches (the data preparation is
pift's, so both loops see identical tensors), then trains with an unadorned `Trainer`: no protocol, callbacks,
SIGTERM handling or parent watch (and the same CPU thread count). Prints one JSON line: {"train_runtime": seconds, "tokens": non-pad tokens}.
The token count is taken before training, from the batches the trainer will draw, and is not timed.
"""

from __future__ import annotations

import json
import sys

from transformers import HfArgumentParser, Trainer, TrainingArguments

from pift.config import ModelArguments, ScriptArguments
from pift.models import load_model, load_tokenizer
from pift.template import ResponseOnlyCollator
from pift.threads import limit_cpu_threads
from pift.train_data import load_train_dataset

# Keys of pift's own TrainingArguments subclass defaults that plain TrainingArguments must be given explicitly.
PIFT_DEFAULTS = {"report_to": "none", "disable_tqdm": True, "train_sampling_strategy": "sequential"}


def main(config_path: str) -> None:
    with open(config_path, encoding="utf-8") as handle:
        config = {**PIFT_DEFAULTS, **json.load(handle)}
    config.pop("resume_from_checkpoint", None)
    # transformers 5 takes the warmup share as a fraction in warmup_steps (pift's config does the same).
    warmup_ratio = config.pop("warmup_ratio", None)
    script_args, model_args, training_args = HfArgumentParser(
        (ScriptArguments, ModelArguments, TrainingArguments)
    ).parse_dict(config, allow_extra_keys=False)
    if warmup_ratio is not None:
        training_args.warmup_steps = warmup_ratio
    limit_cpu_threads()  # the thread count pift.train uses
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    dataset = load_train_dataset(
        script_args.train_file, tokenizer, script_args.max_length, script_args.conversation_template, training_args
    )
    model = load_model(model_args.model_name_or_path, tokenizer, seed=model_args.model_seed)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=ResponseOnlyCollator(pad_token_id=tokenizer.pad_token_id),
    )
    tokens = count_tokens(trainer, training_args.max_steps * training_args.gradient_accumulation_steps)
    output = trainer.train()
    print(json.dumps({"train_runtime": output.metrics["train_runtime"], "tokens": tokens}), flush=True)


def count_tokens(trainer: Trainer, batches: int) -> int:
    total, seen = 0, 0
    while seen < batches:
        for batch in trainer.get_train_dataloader():
            total += int(batch["attention_mask"].sum())
            seen += 1
            if seen == batches:
                break
    return total


if __name__ == "__main__":
    main(sys.argv[1])
