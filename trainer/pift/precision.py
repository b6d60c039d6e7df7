"""Which floating-point precision a training run uses, decided once from the request and the device.

`bf16` absent (the orchestrator's `auto`) means the paper's setting where the hardware has it: bf16 with
tf32 matmuls on a GPU that supports bf16 (Ampere and later), fp16 mixed precision on an older GPU that only
has fp16, fp32 on a CPU. An explicit `bf16: true` the device cannot honour falls back the same way, with a
warning; `bf16: false` is fp32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceCaps:
    cuda: bool
    bf16: bool


@dataclass(frozen=True)
class Precision:
    name: str  # "bf16", "fp16" or "fp32": what the stage's result records
    bf16: bool
    fp16: bool
    tf32: bool | None  # None leaves transformers' own default


def device_caps() -> DeviceCaps:
    if not torch.cuda.is_available():
        return DeviceCaps(cuda=False, bf16=False)
    return DeviceCaps(cuda=True, bf16=torch.cuda.is_bf16_supported(including_emulation=False))


def choose_precision(bf16: bool | None, fp16: bool, caps: DeviceCaps) -> Precision:
    """`bf16` None is `auto`; `fp16` is an explicit request for fp16 mixed precision."""
    if not caps.cuda:
        if bf16 or fp16:
            logger.warning("mixed precision requested but CUDA is unavailable: training in fp32 on the CPU")
        return Precision("fp32", bf16=False, fp16=False, tf32=None)
    if fp16 and not bf16:
        return Precision("fp16", bf16=False, fp16=True, tf32=None)
    if bf16 is False:
        return Precision("fp32", bf16=False, fp16=False, tf32=None)
    if caps.bf16:
        return Precision("bf16", bf16=True, fp16=False, tf32=True)
    if bf16:
        logger.warning("bf16 requested but this GPU does not support it: training in fp16 mixed precision")
    return Precision("fp16", bf16=False, fp16=True, tf32=None)
