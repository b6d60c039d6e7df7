"""`python -m pift.check_model`: the pre-flight check of a base model, against what the trainer accepts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_module
from pift.check_model import CheckModelArguments, check_model
from pift.errors import ConfigError
from pift.tiny_model import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def saved_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builtin model and tokenizer saved as an ordinary Hugging Face directory."""
    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(seed=0).save_pretrained(path)
    build_tiny_tokenizer().save_pretrained(path)
    return path


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def error_of(model: str | Path, max_length: int = 256) -> str:
    with pytest.raises(ConfigError) as caught:
        check_model(CheckModelArguments(model_name_or_path=str(model), max_length=max_length))
    return str(caught.value)


def test_builtin_model_is_ok(tmp_path: Path) -> None:
    result = run_module("pift.check_model", {"model_name_or_path": "builtin:tiny-llama", "max_length": 64}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.events == [
        {
            "event": "model_ok",
            "model_type": "llama",
            "tokenizer_size": 260,
            "vocab_size": 260,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "max_position_embeddings": 512,
        }
    ]


def test_missing_directory_exits_65_naming_the_setting(tmp_path: Path) -> None:
    absent = tmp_path / "no-such-model"
    result = run_module("pift.check_model", {"model_name_or_path": str(absent), "max_length": 64}, tmp_path)
    assert result.returncode == 65
    assert result.events == [
        {
            "event": "error",
            "kind": "config",
            "message": f'field "input.training.baseModel": no such local directory {absent} (downloads are disabled)',
        }
    ]


def test_short_max_length_names_the_setting() -> None:
    with pytest.raises(ConfigError, match='field "input.training.maxLength" must be at least 32, got 16'):
        CheckModelArguments(model_name_or_path="builtin:tiny-llama", max_length=16)


def test_saved_model_directory_is_ok(saved_tiny_model: Path) -> None:
    result = check_model(CheckModelArguments(model_name_or_path=str(saved_tiny_model), max_length=2048))
    assert result["model_type"] == "llama" and result["vocab_size"] == 260 and result["eos_token"] == "</s>"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": "1.0", "model": 5})])
def test_broken_tokenizer_is_refused(saved_tiny_model: Path, tmp_path: Path, content: str) -> None:
    model = copy_model(saved_tiny_model, tmp_path / "model")
    (model / "tokenizer.json").write_text(content, encoding="utf-8")
    assert error_of(model).startswith(f'field "input.training.baseModel": cannot load a tokenizer from {model}')


def without_special_token(saved_tiny_model: Path, target: Path, name: str) -> Path:
    model = copy_model(saved_tiny_model, target)
    settings = json.loads((model / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings[name] = None
    (model / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return model


def test_tokenizer_without_bos_is_accepted(saved_tiny_model: Path, tmp_path: Path) -> None:
    model = without_special_token(saved_tiny_model, tmp_path / "model", "bos_token")
    result = check_model(CheckModelArguments(model_name_or_path=str(model), max_length=256))
    assert result["bos_token"] is None and result["eos_token"] == "</s>"


def test_tokenizer_without_eos_is_refused(saved_tiny_model: Path, tmp_path: Path) -> None:
    model = without_special_token(saved_tiny_model, tmp_path / "model", "eos_token")
    assert error_of(model) == f'field "input.training.baseModel": the tokenizer in {model} needs an eos token'


def test_directory_without_weights_is_refused(saved_tiny_model: Path, tmp_path: Path) -> None:
    model = copy_model(saved_tiny_model, tmp_path / "model")
    (model / "model.safetensors").unlink()
    assert "no model weights" in error_of(model)


def test_embeddings_smaller_than_the_tokenizer_are_refused(saved_tiny_model: Path, tmp_path: Path) -> None:
    model = copy_model(saved_tiny_model, tmp_path / "model")
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["vocab_size"] = 200
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert "tokenizer has 260 tokens but the model embeds only 200" in error_of(model)


def test_non_causal_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "t5"
    model.mkdir()
    build_tiny_tokenizer().save_pretrained(model)
    (model / "config.json").write_text(json.dumps({"model_type": "t5"}), encoding="utf-8")
    assert "holds a t5 model, not a causal LM" in error_of(model)
