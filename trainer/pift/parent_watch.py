"""End the job when the orchestrator that started it dies.

Two independent mechanisms, because either alone has gaps:
- `PR_SET_PDEATHSIG` (Linux): the kernel sends SIGTERM when the direct parent dies, even if
  this process is stuck in a long native call that holds the GIL.
- a daemon thread polling `parent_pid` every second: covers non-Linux hosts and launch chains
  where `parent_pid` is not the direct parent (a shell or wrapper in between).
On parent death the process exits promptly without saving (see `termination.exit_now_for_dead_parent`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

from .termination import exit_now_for_dead_parent, parent_is_gone

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
POLL_INTERVAL_S = 1.0


def arm_parent_death_signal() -> None:
    """Ask the kernel to SIGTERM us when our parent exits; a no-op off Linux."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            return
    except OSError as error:
        logger.warning("prctl unavailable: %s", error)
        return
    # The parent may have died before prctl took effect, in which case no signal will ever come.
    if parent_is_gone():
        exit_now_for_dead_parent()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _watch(parent_pid: int, direct_parent: bool) -> None:
    while True:
        time.sleep(POLL_INTERVAL_S)
        alive = os.getppid() == parent_pid if direct_parent else _pid_alive(parent_pid)
        if not alive:
            exit_now_for_dead_parent()


_watched: set[int] = set()


def watch_parent(parent_pid: int | None) -> None:
    """Start the polling thread for `parent_pid` (when given, and not watched yet)."""
    if parent_pid is None or parent_pid in _watched:
        return
    _watched.add(parent_pid)
    direct_parent = os.getppid() == parent_pid
    if not direct_parent and not _pid_alive(parent_pid):
        exit_now_for_dead_parent()
    thread = threading.Thread(target=_watch, args=(parent_pid, direct_parent), name="parent-watch", daemon=True)
    thread.start()
