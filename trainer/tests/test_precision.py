"""`bf16: auto` picks the paper's precision where the device has it; decided on fake device capabilities."""

from __future__ import annotations

import pytest

from pift.precision import DeviceCaps, Precision, choose_precision

AMPERE = DeviceCaps(cuda=True, bf16=True)
VOLTA = DeviceCaps(cuda=True, bf16=False)
CPU = DeviceCaps(cuda=False, bf16=False)


@pytest.mark.parametrize(
    ("bf16", "fp16", "caps", "expected"),
    [
        (None, False, AMPERE, Precision("bf16", bf16=True, fp16=False, tf32=True)),
        (None, False, VOLTA, Precision("fp16", bf16=False, fp16=True, tf32=None)),
        (None, False, CPU, Precision("fp32", bf16=False, fp16=False, tf32=None)),
        (True, False, AMPERE, Precision("bf16", bf16=True, fp16=False, tf32=True)),
        (True, False, VOLTA, Precision("fp16", bf16=False, fp16=True, tf32=None)),
        (True, False, CPU, Precision("fp32", bf16=False, fp16=False, tf32=None)),
        (False, False, AMPERE, Precision("fp32", bf16=False, fp16=False, tf32=None)),
        (False, True, AMPERE, Precision("fp16", bf16=False, fp16=True, tf32=None)),
        (None, True, CPU, Precision("fp32", bf16=False, fp16=False, tf32=None)),
    ],
)
def test_precision_follows_request_and_device(bf16, fp16, caps, expected) -> None:
    assert choose_precision(bf16, fp16, caps) == expected


def test_training_arguments_record_the_choice_on_this_machine(tmp_path) -> None:
    from pift.config import PiftTrainingArguments

    args = PiftTrainingArguments(output_dir=str(tmp_path), max_steps=1)
    import torch

    if not torch.cuda.is_available():
        assert (args.bf16, args.fp16, args.resolved_precision) == (False, False, "fp32")
    else:
        assert args.resolved_precision in ("bf16", "fp16")
