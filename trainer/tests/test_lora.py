"""LoRA through PEFT: adapters only are trained, checkpoints hold the adapter and resume from it, and the final
directory holds the merged model (loaded by plain transformers) with the adapter beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import TrainedRun, run_module, train_config, write_copy_task
from pift.config import BUILTIN_TINY_LLAMA, LoraArguments, ModelArguments
from pift.errors import ConfigError
from pift.lora import wrap_with_lora
from pift.models import load_model
from pift.tiny_model import build_tiny_model, build_tiny_tokenizer

STEPS = 6
SAVE = 3
LORA = {"r": 4, "alpha": 8, "dropout": 0.1}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    workdir = tmp_path_factory.mktemp("lora")
    write_copy_task(workdir / "train.jsonl", rows=16)
    config = train_config(workdir, max_steps=STEPS, save_steps=SAVE, lora=LORA)
    result = run_module("pift.train", config, workdir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(workdir, config, result)


def test_only_the_adapters_are_trainable() -> None:
    model = wrap_with_lora(build_tiny_model(1), LoraArguments(r=4), seed=3517)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert trainable and all("lora_A" in name or "lora_B" in name for name in trainable)
    # "all-linear": every projection of every block, not the embeddings or the output layer.
    assert len(trainable) == 2 * 2 * 7
    assert any("embed_tokens" in name for name in frozen) and any("lm_head" in name for name in frozen)


def test_adapters_get_gradients_under_activation_checkpointing() -> None:
    # The base (embeddings included) is frozen: checkpointing must still let gradients reach the adapters.
    model = wrap_with_lora(build_tiny_model(1), LoraArguments(r=4), seed=3517)
    model.activation_checkpointing_enable()  # what the Trainer calls for gradient_checkpointing: true
    model.train()
    ids = torch.tensor([[1, 40, 41, 42, 43, 2]])
    model(ids, labels=ids).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    # lora_B starts at zero, so at the first step only it has a non-zero gradient.
    assert all(g is not None and g.abs().sum() > 0 for name, g in grads.items() if "lora_B" in name)


def test_lora_settings_are_checked_naming_the_field() -> None:
    with pytest.raises(ConfigError, match='"lora" has unknown keys'):
        ModelArguments(model_name_or_path=BUILTIN_TINY_LLAMA, lora={"rank": 4})
    with pytest.raises(ConfigError, match='"lora.r"'):
        ModelArguments(model_name_or_path=BUILTIN_TINY_LLAMA, lora={"r": 0})
    with pytest.raises(ConfigError, match='"lora.quantize"'):
        ModelArguments(model_name_or_path=BUILTIN_TINY_LLAMA, lora={"quantize": "3bit"})
    assert ModelArguments(model_name_or_path=BUILTIN_TINY_LLAMA).lora is None


def test_lora_run_checkpoints_the_adapter_and_exports_merged(lora_run: TrainedRun) -> None:
    assert [event["step"] for event in lora_run.result.of("checkpoint")] == [SAVE, STEPS]
    checkpoint = lora_run.workdir / "checkpoints" / f"checkpoint-{SAVE}"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert not (checkpoint / "model.safetensors").exists(), "checkpoints carry the adapter, not the whole model"
    final = lora_run.workdir / "final"
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json"):
        assert (final / name).is_file(), name
    assert (final / "adapter" / "adapter_model.safetensors").is_file()
    merged = load_file(final / "model.safetensors")
    assert not any("lora" in key for key in merged), "the merged model is a plain one"
    base = build_tiny_model(1).state_dict()
    changed = [key for key in merged if not torch.equal(merged[key], base[key])]
    assert changed and all("proj" in key for key in changed), "training changed the adapted layers only"


def test_merged_final_gives_the_logits_of_the_adapted_model(lora_run: TrainedRun) -> None:
    final = lora_run.workdir / "final"
    tokenizer = build_tiny_tokenizer()
    adapted = PeftModel.from_pretrained(load_model(BUILTIN_TINY_LLAMA, tokenizer, seed=1), final / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(final, local_files_only=True).eval()
    ids = torch.tensor([[1] + [4 + byte for byte in b"User: Copy the word. abcdef"]])
    with torch.no_grad():
        expected = adapted(ids).logits
        actual = merged(ids).logits
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    assert not torch.allclose(load_model(BUILTIN_TINY_LLAMA, tokenizer, seed=1)(ids).logits, expected, atol=1e-3)


def final_files(final: Path) -> dict[str, bytes]:
    return {str(path.relative_to(final)): path.read_bytes() for path in sorted(final.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("step", [SAVE, STEPS])
def test_resumed_lora_run_equals_the_uninterrupted_one(lora_run: TrainedRun, tmp_path: Path, step: int) -> None:
    config = dict(
        lora_run.config,
        resume_from_checkpoint=str(lora_run.workdir / "checkpoints" / f"checkpoint-{step}"),
        output_dir=str(tmp_path / "checkpoints"),
        final_dir=str(tmp_path / "final"),
    )
    result = run_module("pift.train", config, tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.of("start")[0]["resumed_from_step"] == step
    # Restored adapter, optimizer, schedule, RNG (dropout) and data position: the same weights, the same files.
    assert final_files(tmp_path / "final") == final_files(lora_run.workdir / "final")


def test_qlora_without_cuda_fails_naming_the_setting(tmp_path: Path) -> None:
    write_copy_task(tmp_path / "train.jsonl", rows=4)
    config = train_config(tmp_path, max_steps=2, lora={"quantize": "4bit"})
    result = run_module("pift.train", config, tmp_path, timeout=600)
    assert result.returncode == 65, result.stderr[-3000:]
    error = result.of("error")[0]
    assert error["kind"] == "config"
    assert 'field "lora.quantize"' in error["message"]
    assert "CUDA" in error["message"] or "bitsandbytes" in error["message"]
    assert not (tmp_path / "final").exists()
