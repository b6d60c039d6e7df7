"""SIGTERM policy shared by the entry scripts.

Before training starts there is nothing worth saving, so SIGTERM ends the process at once.
While training runs it only raises a flag: `SigtermSaveCallback` turns the flag into a full
resumable checkpoint at the next optimizer-step boundary. Once training has finished, the
final save is allowed to complete, since it is the job's result.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
from types import FrameType

from .errors import Terminated

logger = logging.getLogger(__name__)

# Recorded before anything else so a later change of parent (reparenting to init) is detectable.
_ORIGINAL_PPID = os.getppid()


class SigtermMode(enum.Enum):
    EXIT = "exit"
    CHECKPOINT = "checkpoint"
    FINISH = "finish"


class _TerminationState:
    def __init__(self) -> None:
        self.mode = SigtermMode.EXIT
        self.requested = False


state = _TerminationState()


def parent_is_gone() -> bool:
    return os.getppid() != _ORIGINAL_PPID


def exit_now_for_dead_parent() -> None:
    """Leave without saving: nobody is left to upload a checkpoint, and the accelerator must be freed."""
    logger.error("parent process died; exiting without saving")
    os._exit(143)


def _handle_sigterm(signum: int, frame: FrameType | None) -> None:
    # PR_SET_PDEATHSIG delivers SIGTERM too; a reparented process knows its parent is dead.
    if parent_is_gone():
        exit_now_for_dead_parent()
    state.requested = True
    if state.mode is SigtermMode.EXIT:
        raise Terminated()
    if state.mode is SigtermMode.CHECKPOINT:
        logger.warning("SIGTERM received: saving a checkpoint at the end of this optimizer step, then exiting")
    else:
        logger.warning("SIGTERM received after training finished: completing the final save")


def install_sigterm_handler() -> None:
    state.mode = SigtermMode.EXIT
    state.requested = False
    signal.signal(signal.SIGTERM, _handle_sigterm)


def set_sigterm_mode(mode: SigtermMode) -> None:
    state.mode = mode
