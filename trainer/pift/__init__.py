"""Phased Instruction Fine-Tuning training code: template, data, builtin tiny model, callbacks, job protocol."""

import os

# Set before any submodule imports transformers (huggingface_hub reads them at import): the trainer only ever
# loads local directories, so a typo in a model path must fail at once instead of trying the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# A worker's child (trainer, generation, model check, server) must go with its worker even while it is still importing
# torch, which can take minutes on a busy host: the worker names itself in PIFT_PARENT_PID, and the watch starts here,
# before any submodule imports anything heavy.
if os.environ.get("PIFT_PARENT_PID", "").isdigit():
    from .parent_watch import arm_parent_death_signal, watch_parent

    arm_parent_death_signal()
    watch_parent(int(os.environ["PIFT_PARENT_PID"]))
