"""Run `pift.train` as several processes on this machine, under torchrun (DDP) or accelerate (FSDP, ZeRO-3).

    python -m pift.launcher --processes N --distributed ddp|fsdp|deepspeed-zero3 CONFIG.json

The launcher runs inside this process, in the orchestrator's process group; torch starts each rank in a
session of its own, so the launcher relays what the group receives:
- SIGTERM is passed to every rank's group, and the ranks agree on the step to checkpoint at
  (callbacks.SigtermSaveCallback). torch's elastic agent would instead forward it and SIGKILL the ranks
  30 s later, in the middle of a large checkpoint, so it is told to leave SIGTERM alone.
- SIGKILL of the group, or the orchestrator's death (PR_SET_PDEATHSIG kills the launcher then), ends the
  launcher; each rank's own parent-death signal and `parent_pid` watch then end it at once, unsaved.
- Only rank 0 writes the stdout protocol; the exit code is rank 0's (or the first failed rank's), so 65,
  74, 143 and the divergence code mean what they mean for one process.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys
from importlib import resources

from .job import EXIT_CRASH, EXIT_OK, configure_logging

logger = logging.getLogger(__name__)

DISTRIBUTED = ("ddp", "fsdp", "deepspeed-zero3")
_PR_SET_PDEATHSIG = 1
AGENT_SIGNALS = "SIGINT,SIGHUP,SIGQUIT"


def accelerate_config(distributed: str) -> str:
    return str(resources.files("pift.launch").joinpath(f"{distributed}.yaml"))


def free_port() -> int:
    # Two GPU workers on one machine must not share a rendezvous port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_args(processes: int, config_path: str) -> list[str]:
    return ["--standalone", "--nnodes=1", f"--nproc-per-node={processes}", "-m", "pift.train", config_path]


def accelerate_args(processes: int, distributed: str, config_path: str) -> list[str]:
    return [
        "--config_file", accelerate_config(distributed),
        "--num_processes", str(processes),
        "--num_machines", "1",
        "--main_process_port", str(free_port()),
        "-m", "pift.train", config_path,
    ]  # fmt: skip


def exit_code_of(failures: dict) -> int:
    """Rank 0's exit code when it failed, else the lowest failed rank's; a signal death reads as 128 + signal.

    Ranks that only exited 143 because the agent stopped them after another rank failed are passed over: when rank 1
    refuses a config (65) before rank 0 has read it, rank 0 is stopped and exits 143, and 143 would read as a
    cancellation instead of bad input. When every failed rank exited 143 (a SIGTERM to the job), it is 143.
    """
    codes = {rank: 128 - f.exitcode if f.exitcode < 0 else f.exitcode for rank, f in failures.items()}
    own = {rank: code for rank, code in codes.items() if code != 143} or codes
    return own[0 if 0 in own else min(own)]


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_pids() -> list[int]:
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as children:
                pids += [int(pid) for pid in children.read().split()]
        except OSError:
            continue
    return pids


def _forward_sigterm(signum, frame) -> None:
    # torch starts each rank in a session of its own, out of reach of the orchestrator's group kill.
    logger.warning("SIGTERM: passing it to the ranks, which checkpoint at the same step; waiting for them")
    for pid in child_pids():
        try:
            os.killpg(pid, signal.SIGTERM)  # the rank's group: its dataloader workers too
        except ProcessLookupError:
            pass


def keep_sigterm_from_the_agent() -> None:
    """torch's agent handles SIGTERM by default (forward, then SIGKILL after 30 s); accelerate launches through the
    same agent without a way to say otherwise, so the one place both pass through gets the signal list."""
    from torch.distributed.launcher import api

    if getattr(api.launch_agent, "pift_keeps_sigterm", False):
        return
    launch_agent = api.launch_agent

    def without_sigterm(config, *args, **kwargs):
        config.signals_to_handle = AGENT_SIGNALS
        return launch_agent(config, *args, **kwargs)

    without_sigterm.pift_keeps_sigterm = True
    api.launch_agent = without_sigterm


def launch(processes: int, distributed: str, config_path: str) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    keep_sigterm_from_the_agent()
    signal.signal(signal.SIGTERM, _forward_sigterm)
    try:
        if distributed == "ddp":
            from torch.distributed import run as torchrun

            torchrun.run(torchrun.parse_args(torchrun_args(processes, config_path)))
        else:
            from accelerate.commands.launch import launch_command, launch_command_parser

            launch_command(launch_command_parser().parse_args(accelerate_args(processes, distributed, config_path)))
    except ChildFailedError as error:
        return exit_code_of(error.failures)
    return EXIT_OK


def main(argv: list[str]) -> int:
    configure_logging()
    sys.stdout = sys.stderr  # the ranks inherit file descriptor 1 for their protocol; this process prints nothing there
    _die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m pift.launcher")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--distributed", choices=DISTRIBUTED, default="ddp")
    parser.add_argument("config")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    try:
        return launch(args.processes, args.distributed, args.config)
    except Exception:  # noqa: BLE001 - the launcher itself failed (a missing package, a bad accelerate config)
        logger.exception("launcher failed")
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
