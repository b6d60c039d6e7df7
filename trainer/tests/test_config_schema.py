"""The trainer's config dataclasses agree with schema/trainer-config.schema.json, the contract the orchestrator
writes config.json against (generated from common/settings/trainer.ts by `npm run schema`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from transformers import HfArgumentParser, SchedulerType

from pift.config import DEFAULTS, MIN_MAX_LENGTH, ModelArguments, PiftTrainingArguments, ScriptArguments
from pift.errors import ConfigError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "trainer-config.schema.json"
DATACLASSES = (ScriptArguments, ModelArguments, PiftTrainingArguments)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def trainer_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for cls in DATACLASSES for f in dataclasses.fields(cls) if f.init}


def valid_config(workdir: Path, **overrides: Any) -> dict[str, Any]:
    """A config the way the orchestrator writes one, with every field the schema names."""
    config: dict[str, Any] = {
        "train_file": str(workdir / "train.jsonl"),
        "final_dir": str(workdir / "final"),
        "output_dir": str(workdir / "checkpoints"),
        "model_name_or_path": "builtin:tiny-llama",
        "resume_from_checkpoint": None,
        "parent_pid": 1,
        "max_length": MIN_MAX_LENGTH,
        "model_seed": 3517,
        "max_steps": 3,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "learning_rate": 3e-3,
        "weight_decay": 0.1,
        "adam_beta1": 0.9,
        "adam_beta2": 0.95,
        "max_grad_norm": 1.0,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "seed": 3517,
        "save_strategy": "steps",
        "save_steps": 50,
        "save_every_minutes": 30.0,
        "logging_steps": 1,
        "bf16": False,
        "gradient_checkpointing": False,
        "conversation_template": "paper",
        "report_to": "none",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
    }
    config.update(overrides)
    return config


def parse(config: dict[str, Any]) -> tuple[Any, ...]:
    # The same parser train.py uses: unknown keys are an error there too.
    return HfArgumentParser(DATACLASSES).parse_dict(config, allow_extra_keys=False)


def test_every_schema_property_is_a_trainer_field(schema: dict[str, Any]) -> None:
    fields = trainer_fields()
    unknown = sorted(set(schema["properties"]) - set(fields))
    assert not unknown, f"the schema names fields the trainer does not have: {unknown}"


def test_every_field_without_a_default_is_required(schema: dict[str, Any]) -> None:
    fields = trainer_fields()
    no_default = {
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert no_default <= set(schema["required"]), sorted(no_default - set(schema["required"]))


def test_a_config_the_schema_accepts_is_one_the_trainer_accepts(schema: dict[str, Any], tmp_path: Path) -> None:
    config = valid_config(tmp_path)
    jsonschema.validate(config, schema)
    assert set(config) == set(schema["properties"]), "the example covers every property"
    script_args, model_args, training_args = parse(config)
    assert script_args.max_length == MIN_MAX_LENGTH
    assert model_args.model_name_or_path == "builtin:tiny-llama"
    assert training_args.max_steps == 3
    assert training_args.lr_scheduler_type == SchedulerType.COSINE


def test_minimum_max_length_is_the_trainers(schema: dict[str, Any], tmp_path: Path) -> None:
    minimum = schema["properties"]["max_length"]["minimum"]
    assert minimum == MIN_MAX_LENGTH
    with pytest.raises(ConfigError, match="max_length"):
        ScriptArguments(train_file="t.jsonl", final_dir="f", max_length=minimum - 1)
    assert ScriptArguments(train_file="t.jsonl", final_dir="f", max_length=minimum).max_length == minimum
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(valid_config(tmp_path, max_length=minimum - 1), schema)


def test_warmup_ratio_and_max_steps_bounds_are_the_trainers(schema: dict[str, Any], tmp_path: Path) -> None:
    warmup = schema["properties"]["warmup_ratio"]
    assert (warmup["minimum"], warmup["exclusiveMaximum"]) == (0, 1)
    assert schema["properties"]["max_steps"]["minimum"] == 1
    for bad in ({"warmup_ratio": 1}, {"warmup_ratio": -0.1}, {"max_steps": 0}):
        config = valid_config(tmp_path, **bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schema)
        with pytest.raises(ConfigError, match=next(iter(bad))):
            parse(config)
    parse(valid_config(tmp_path, warmup_ratio=0, max_steps=1))


def test_every_scheduler_the_schema_allows_is_a_transformers_scheduler(schema: dict[str, Any], tmp_path: Path) -> None:
    allowed = schema["properties"]["lr_scheduler_type"]["enum"]
    assert "cosine" in allowed
    for name in allowed:
        _, _, training_args = parse(valid_config(tmp_path, lr_scheduler_type=name))
        assert training_args.lr_scheduler_type == SchedulerType(name)


def test_defaults_are_the_workflows(schema: dict[str, Any], tmp_path: Path) -> None:
    """configs/defaults.json (generated from common/settings/) names schema fields, and a config without them gets
    its values, as the orchestrator would have written them."""
    assert set(DEFAULTS) <= set(schema["properties"]), sorted(set(DEFAULTS) - set(schema["properties"]))
    config = {k: v for k, v in valid_config(tmp_path).items() if k not in DEFAULTS}
    script_args, _, training_args = parse(config)
    assert script_args.max_length == DEFAULTS["max_length"]
    assert training_args.warmup_steps == DEFAULTS["warmup_ratio"]
    for name in DEFAULTS.keys() - {"max_length", "warmup_ratio", "lr_scheduler_type"}:
        assert getattr(training_args, name) == DEFAULTS[name], name
    assert training_args.lr_scheduler_type == SchedulerType(DEFAULTS["lr_scheduler_type"])
