"""Phased Instruction Fine-Tuning training code: template, data, builtin tiny model, callbacks, job protocol."""

import os

# Set before any submodule imports transformers (huggingface_hub reads them at import): the trainer only ever
# loads local directories, so a typo in a model path must fail at once instead of trying the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
