"""The few collective operations the trainer adds to a multi-process run (a no-op for one process)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on any rank; every rank must call it at the same point."""
    if not is_distributed():
        return flag
    # NCCL reduces only tensors on the GPU; gloo only on the CPU. args.device is the right one for each.
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
