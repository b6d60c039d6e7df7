"""A worker's Python child watches its worker from `import pift` on, before torch or transformers load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

IMPORT_AND_REPORT = textwrap.dedent(
    """
    import ctypes, json, sys, threading
    import pift
    signal_number = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(signal_number), 0, 0, 0)  # PR_GET_PDEATHSIG
    print(json.dumps({
        "heavy": sorted(name for name in ("torch", "transformers", "datasets") if name in sys.modules),
        "threads": [thread.name for thread in threading.enumerate()],
        "pdeathsig": signal_number.value,
    }))
    """
)


def test_the_watch_is_on_before_anything_heavy_is_imported() -> None:
    env = {**os.environ, "PIFT_PARENT_PID": str(os.getpid())}
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_REPORT], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(completed.stdout)
    assert report == {"heavy": [], "threads": ["MainThread", "parent-watch"], "pdeathsig": 15}


def test_without_a_worker_importing_pift_watches_nothing() -> None:
    env = {key: value for key, value in os.environ.items() if key != "PIFT_PARENT_PID"}
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_REPORT], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(completed.stdout)["threads"] == ["MainThread"]


def test_a_child_goes_with_its_worker_while_still_importing() -> None:
    # The "worker" starts a child that would import for a minute, and dies at once.
    child_code = "import pift, time; time.sleep(60); import torch"
    worker_code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}], env={{**os.environ, "PIFT_PARENT_PID": str(os.getpid())}})
        print(child.pid, flush=True)
        import time; time.sleep(1.5)  # long enough for the child to import pift
        os._exit(0)
        """
    )
    worker = subprocess.run([sys.executable, "-c", worker_code], capture_output=True, text=True, timeout=60, check=True)
    child_pid = int(worker.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(child_pid):
        time.sleep(0.2)
    assert not alive(child_pid)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
