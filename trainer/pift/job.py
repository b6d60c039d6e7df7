"""Process-level contract shared by the entry scripts: logging, exit codes, error events."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch.distributed as dist
import transformers

from .errors import ConfigError, JobInputError, NonFiniteLossError, Terminated
from .parent_watch import arm_parent_death_signal
from .protocol import claim_stdout, emit
from .scratch import full_disk_target, is_disk_full
from .termination import install_sigterm_handler

EXIT_OK = 0
EXIT_BAD_INPUT = 65  # sysexits EX_DATAERR: the orchestrator must not retry
EXIT_IO_ERROR = 74  # sysexits EX_IOERR: the scratch disk is full; a retry on this worker fills it again
EXIT_CRASH = 1
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_DIVERGED = 70  # sysexits EX_SOFTWARE: the run itself went wrong (a non-finite loss); retrying repeats it

ConfigT = TypeVar("ConfigT", bound=tuple)

logger = logging.getLogger(__name__)


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    transformers.utils.logging.set_verbosity_warning()
    # Trainer and model-loading messages must never reach stdout, which carries the protocol.
    transformers.utils.logging.disable_progress_bar()


def parse_config(parse: Callable[[str], ConfigT], config_path: str) -> ConfigT:
    """Turn every way a config file can be wrong into a non-retryable ConfigError."""
    try:
        return parse(config_path)
    except FileNotFoundError as error:
        raise ConfigError(f"{config_path}: config file not found") from error
    except (ValueError, TypeError, OSError) as error:
        # json.JSONDecodeError is a ValueError; unknown keys and failed __post_init__ checks are too.
        raise ConfigError(f"{config_path}: {error}") from error


def run_job(module: str, parse: Callable[[str], ConfigT], main: Callable[..., None], argv: Sequence[str]) -> int:
    """Run `main(*parse(argv[1]))` under the stdout protocol and map the outcome to an exit code."""
    claim_stdout()
    configure_logging()
    install_sigterm_handler()
    arm_parent_death_signal()
    return leave_process_group(_run_main(module, parse, main, argv))


def leave_process_group(code: int) -> int:
    """Shut the gloo/NCCL process group down while the interpreter is whole, or leave without finalizing.

    A process group still alive at interpreter shutdown lets gloo's worker threads abort the process
    (SIGABRT, "terminate called without an active exception"), which turns a finished rank into exit 134.
    After a failure the other ranks may sit in a collective that destroy_process_group would wait on, so
    a failed rank flushes its streams and exits at once with its own code."""
    if not (dist.is_available() and dist.is_initialized()):
        return code
    if code == EXIT_OK:
        dist.destroy_process_group()
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_main(module: str, parse: Callable[[str], ConfigT], main: Callable[..., None], argv: Sequence[str]) -> int:
    try:
        if len(argv) != 2:
            raise ConfigError(f"usage: python -m {module} CONFIG.json")
        main(*parse_config(parse, argv[1]))
    except JobInputError as error:
        logger.error("%s", error)
        emit("error", kind=error.kind, message=str(error))
        return EXIT_BAD_INPUT
    except NonFiniteLossError as error:
        logger.error("%s", error)
        emit("error", kind=error.kind, message=str(error))
        return EXIT_DIVERGED
    except Terminated:
        logger.warning("terminated by SIGTERM")
        return EXIT_TERMINATED
    except Exception as error:  # noqa: BLE001 - any other failure is a retryable crash
        if is_disk_full(error):
            traceback.print_exc(file=sys.stderr)
            emit("error", kind="disk_full", message=f"scratch space full while writing {full_disk_target(error)}")
            return EXIT_IO_ERROR
        traceback.print_exc(file=sys.stderr)
        emit("error", kind="crash", message=f"{type(error).__name__}: {error}")
        return EXIT_CRASH
    return EXIT_OK
