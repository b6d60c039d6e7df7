"""How many CPU threads a trainer on a CPU uses: one, unless the worker says otherwise (`PIFT_CPU_THREADS`).

torch's default is one thread per core. A CPU worker runs its trainer beside the worker itself and often beside other
trainers, and there the threads only wait for each other: one step of the demo's tiny model took 8.2 s of wall time
with the default two OpenMP threads on a busy host against 0.4 s with one. A GPU trainer keeps torch's default.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

CPU_THREADS_ENV = "PIFT_CPU_THREADS"


def cpu_threads_setting() -> int:
    value = os.environ.get(CPU_THREADS_ENV) or "1"  # unset or empty: the default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"environment variable {CPU_THREADS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def limit_cpu_threads() -> int | None:
    """On a CPU, the thread count the stage uses (recorded in its result); None on a GPU."""
    if torch.cuda.is_available():
        return None
    threads = cpu_threads_setting()
    torch.set_num_threads(threads)  # torch's OpenMP pool as well
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for processes this one starts
    return threads
