"""Recognising a full scratch disk, and naming what was being written when it filled up.

A full disk is the worker's problem, not the job's: retrying on the same worker fills it again, so the job
reports it apart from a crash (exit 74, EX_IOERR) and the orchestrator names the setting to fix.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# torch's zip writer reports a short write without an errno; safetensors (Rust) reports only the OS error's text.
NO_SPACE_TEXTS = (
    "unexpected pos",
    "PytorchStreamWriter failed writing file",
    *(os.strerror(code) for code in sorted(NO_SPACE_ERRNOS)),
)

_targets: list[str] = []


@contextmanager
def writing(path: str) -> Iterator[None]:
    """Marks what the enclosed code writes, for the error report when the disk fills up meanwhile."""
    _targets.append(path)
    yield
    _targets.pop()  # not in `finally`: after a failure the path is still there for `full_disk_target`


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(error: BaseException) -> bool:
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(cause) for text in NO_SPACE_TEXTS):
            return True
    return False


def full_disk_target(error: BaseException) -> str:
    """The file the failed write named, else what the job declared it was writing."""
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.filename:
            return os.path.abspath(os.fsdecode(cause.filename))
    return os.path.abspath(_targets[-1]) if _targets else "the scratch directory"
