"""Failure kinds the orchestrator distinguishes: bad input is final, anything else may be retried."""

from __future__ import annotations


class JobInputError(Exception):
    """A mistake in the job's input that a retry cannot fix (exit 65)."""

    kind = "input"


class ConfigError(JobInputError):
    """A bad config file or field; the message names the field."""

    kind = "config"


class DataError(JobInputError):
    """A bad data file; the message names the file and line."""

    kind = "data"


class Terminated(BaseException):
    """SIGTERM ended the job; a BaseException so that no library's `except Exception` swallows it."""


class NonFiniteLossError(Exception):
    """The loss became NaN or infinite (exit 70). Training is deterministic, so a retry diverges at the same
    step: the fix is in the input (a lower learning rate, fp32 instead of fp16, the data), like bad input."""

    kind = "diverged"
