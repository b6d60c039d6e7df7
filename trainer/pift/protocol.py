"""Machine-readable stdout protocol: one JSON object per line, flushed at once.

The orchestrator parses stdout line by line, so nothing but protocol events may reach it.
`claim_stdout` keeps a private handle on the real stdout and points file descriptor 1 (and
`sys.stdout`) at stderr, so stray prints from libraries (transformers' `PrinterCallback`,
C extensions, warnings) can never corrupt the protocol.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import IO, Any

_protocol_stream: IO[str] | None = None


def claim_stdout() -> None:
    """Reserve the process's stdout for protocol events; everything else printed goes to stderr."""
    global _protocol_stream
    if _protocol_stream is not None:
        return
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    _protocol_stream = os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)
    sys.stdout = sys.stderr


def _json_safe(value: Any) -> Any:
    # JSON.parse in Node rejects NaN/Infinity, and a diverged loss must not break the parser.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def is_main_process() -> bool:
    """Rank 0 of a launcher's processes (torchrun and accelerate set RANK), or the only process."""
    return os.environ.get("RANK", "0") == "0"


def emit(event: str, **fields: Any) -> None:
    """Write one protocol event line to the real stdout; under a launcher, only rank 0 speaks for the job."""
    if not is_main_process():
        return
    stream = _protocol_stream if _protocol_stream is not None else sys.stdout
    line = json.dumps(_json_safe({"event": event, **fields}), allow_nan=False, ensure_ascii=False)
    try:
        stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        # The reader is gone (orchestrator died); the parent watch ends the process soon.
        pass


json_safe = _json_safe  # for the metrics file, which shares the events' encoding
