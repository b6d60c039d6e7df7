"""How an entry script leaves a torch.distributed process group: whole on success, at once on failure."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch.distributed as dist

from pift.job import EXIT_BAD_INPUT, EXIT_OK, leave_process_group


def _init_single_rank_group(store_file: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=0, world_size=1)


def test_a_finished_job_destroys_its_process_group(tmp_path: Path) -> None:
    _init_single_rank_group(tmp_path / "store")
    try:
        assert leave_process_group(EXIT_OK) == EXIT_OK
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_failed_rank_exits_with_its_own_code_without_finalizing(tmp_path: Path) -> None:
    # An atexit handler stands for finalization: a failed rank must not reach it (nor gloo's teardown).
    script = textwrap.dedent(
        f"""
        import atexit, sys
        import torch.distributed as dist
        from pift.job import leave_process_group
        dist.init_process_group("gloo", init_method="file://{tmp_path / 'store'}", rank=0, world_size=1)
        atexit.register(lambda: print("finalized", flush=True))
        print("before", file=sys.stderr)
        sys.exit(leave_process_group({EXIT_BAD_INPUT}))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == EXIT_BAD_INPUT, completed.stderr
    assert "before" in completed.stderr
    assert "finalized" not in completed.stdout


def test_without_a_process_group_the_code_passes_through() -> None:
    assert not dist.is_initialized()
    assert leave_process_group(EXIT_BAD_INPUT) == EXIT_BAD_INPUT
