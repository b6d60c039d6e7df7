"""The resumable answers file of generate.py: complete lines are kept, a torn last line is dropped."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass

from .errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    id: str | int
    answer: str
    prompt_tokens: int
    answer_tokens: int


def id_key(row_id: str | int) -> str:
    # JSON text keeps 7 and "7" apart, as they are different ids in the input file.
    return json.dumps(row_id)


def completed_answer_ids(path: str) -> set[str]:
    """Ids already answered in `path`; cuts off an incomplete trailing line left by a killed run."""
    if not os.path.exists(path):
        return set()
    done: set[str] = set()
    good_bytes = 0
    with open(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            if not raw_line.endswith(b"\n"):
                break  # torn write at the end of the file
            try:
                record = json.loads(raw_line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise DataError(f"{path} line {line_number}: not a complete answer line ({error})") from error
            if not isinstance(record, dict) or "id" not in record or "answer" not in record:
                raise DataError(f'{path} line {line_number}: expected an object with "id" and "answer"')
            done.add(id_key(record["id"]))
            good_bytes += len(raw_line)
    if good_bytes != os.path.getsize(path):
        logger.warning("%s: dropping an incomplete last line", path)
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


def append_answers(path: str, answers: list[Answer]) -> None:
    """Append whole lines in one write and fsync, so a kill loses at most the batch in flight."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = "".join(json.dumps(asdict(answer), ensure_ascii=False) + "\n" for answer in answers)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
