"""The GPU check behind bench/gpu-check.sh: one line per check, `check=NAME ok|FAIL key=value ...`.

1. precision: what `pift.train` chooses on this device (bf16 with tf32 matmuls on Ampere and later).
2. llama-1b: a few steps of `python -m pift.train` on a randomly initialised ~1.1B-parameter Llama (TinyLlama's shape)
   in bf16, with tokens per second and `mfu=` (model FLOPs utilisation: 6 x parameters + attention per token, over
   the GPU's dense bf16 peak; the first step's warm-up is included, so it is a floor).
3. lora: a few LoRA steps of the same model, and its merged final save.
4. greedy-cuda: the builtin tiny model trained briefly, then `python -m pift.generate` on CUDA and on the CPU: the
   answers must be equal.

`--small` shrinks the Llama so that the whole script runs on a CPU in minutes (to check the script, not the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# Dense bf16 peaks in FLOP/s, by a substring of the device name; the SXM figure where the name does not say.
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
LLAMA_1B = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}
LLAMA_SMALL = {**LLAMA_1B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}


def line(name: str, ok: bool, **figures: object) -> None:
    parts = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"check={name} {'ok' if ok else 'FAIL'} {parts}".rstrip(), flush=True)


def run_module(module: str, config: dict, workdir: Path, env: dict | None = None) -> dict:
    """Run a pift entry module; its "done" event, or a failure with the stderr tail."""
    config_path = workdir / f"{module}-{time.monotonic_ns()}.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", module, str(config_path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    events = [json.loads(text) for text in completed.stdout.splitlines() if text.startswith("{")]
    done = [event for event in events if event.get("event") == "done"]
    if completed.returncode != 0 or not done:
        raise RuntimeError(f"{module} exited {completed.returncode}: {completed.stderr[-1500:]}")
    return done[0]


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def write_long_rows(path: Path, rows: int) -> None:
    """Rows longer than max_length, so every sequence is exactly max_length tokens (byte-level tokenizer)."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            text = " ".join(f"word{(index * 7 + k) % 997}" for k in range(900))
            handle.write(json.dumps({"id": index, "instruction": text[:2000], "input": "", "output": text}) + "\n")


def check_precision(workdir: Path) -> None:
    from pift.config import PiftTrainingArguments

    args = PiftTrainingArguments(output_dir=str(workdir / "precision"), max_steps=1, report_to="none")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    ok = args.resolved_precision == "bf16" and bool(args.tf32)
    line("precision", ok, precision=args.resolved_precision, tf32=args.tf32, device=device.replace(" ", "_"))


def random_llama(workdir: Path, shape: dict) -> tuple[Path, int, dict]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from pift.tiny_model import build_tiny_tokenizer

    folder = workdir / "llama"
    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    params = sum(parameter.numel() for parameter in model.parameters())
    model.to(torch.bfloat16).save_pretrained(folder)
    build_tiny_tokenizer().save_pretrained(folder)
    del model
    return folder, params, shape


def long_rows_config(workdir: Path, folder: Path, name: str, steps: int, batch: int, length: int) -> dict:
    """A pift.train config of `steps` steps on long.jsonl, checkpointed once, into `<name>-final`."""
    return {
        "train_file": str(workdir / "long.jsonl"),
        "final_dir": str(workdir / f"{name}-final"),
        "output_dir": str(workdir / f"{name}-ckpt"),
        "model_name_or_path": str(folder),
        "max_length": length,
        "max_steps": steps,
        "save_steps": steps,
        "per_device_train_batch_size": batch,
        "learning_rate": 1e-4,
        "report_to": "none",
    }


def check_llama(workdir: Path, folder: Path, params: int, shape: dict, small: bool) -> None:
    steps, batch, length = (3, 2, 128) if small else (12, 4, 2048)
    write_long_rows(workdir / "long.jsonl", steps * batch)
    done = run_module("pift.train", long_rows_config(workdir, folder, "llama", steps, batch, length), workdir)
    tokens = steps * batch * length
    per_token = 6 * params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * length
    tokens_per_s = tokens / done["train_runtime"]
    peak = peak_flops()
    mfu = f"{tokens_per_s * per_token / peak:.3f}" if peak else "n/a"
    ok = done["precision"] == "bf16" or small
    line("llama-1b", ok, params_m=round(params / 1e6), steps=steps, precision=done["precision"],
         tokens_per_s=round(tokens_per_s), mfu=mfu, loss_first=round(done["loss_first"], 3))


def check_lora(workdir: Path, folder: Path, small: bool) -> None:
    steps, batch, length = (3, 2, 128) if small else (8, 4, 2048)
    config = {**long_rows_config(workdir, folder, "lora", steps, batch, length), "lora": {"r": 16}}
    done = run_module("pift.train", config, workdir)
    merged = any((workdir / "lora-final").glob("model*.safetensors"))
    line("lora", merged, steps=done["total_steps"], precision=done["precision"],
         train_runtime_s=round(done["train_runtime"], 1), merged_final=merged)


def check_greedy(workdir: Path) -> None:
    rows = workdir / "copy.jsonl"
    with open(rows, "w", encoding="utf-8") as handle:
        for index in range(64):
            word = "".join("abcdef"[(index * 5 + k * 3) % 6] for k in range(6))
            handle.write(json.dumps({"id": index, "instruction": "Copy the word.", "input": word, "output": word}) + "\n")
    train = {
        "train_file": str(rows),
        "final_dir": str(workdir / "tiny-final"),
        "output_dir": str(workdir / "tiny-ckpt"),
        "model_name_or_path": "builtin:tiny-llama",
        "max_length": 256,
        "max_steps": 30,
        "save_steps": 30,
        "per_device_train_batch_size": 4,
        "learning_rate": 3e-3,
        "bf16": False,
        "report_to": "none",
    }
    run_module("pift.train", train, workdir)
    answers = {}
    for device, env in (("cuda", {}), ("cpu", {"CUDA_VISIBLE_DEVICES": ""})):
        output = workdir / f"answers-{device}.jsonl"
        config = {"model_dir": str(workdir / "tiny-final"), "input_file": str(rows), "output_file": str(output),
                  "max_new_tokens": 16}
        run_module("pift.generate", config, workdir, env)
        answers[device] = {json.loads(text)["id"]: json.loads(text)["answer"] for text in output.read_text().splitlines()}
    differing = sum(answers["cuda"][key] != answers["cpu"][key] for key in answers["cpu"])
    line("greedy-cuda", differing == 0 and torch.cuda.is_available(), answers=len(answers["cpu"]), differing=differing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a small Llama, to try the script on a CPU")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as root:
        workdir = Path(root)
        os.environ.setdefault("PIFT_WORKDIR", str(workdir / "worker"))
        checks = [
            ("precision", lambda: check_precision(workdir)),
            ("llama-1b", None),
            ("lora", None),
            ("greedy-cuda", lambda: check_greedy(workdir)),
        ]
        model: tuple[Path, int, dict] | None = None
        for name, check in checks:
            started = time.monotonic()
            try:
                if name in ("llama-1b", "lora"):
                    model = model or random_llama(workdir, LLAMA_SMALL if args.small else LLAMA_1B)
                    if name == "llama-1b":
                        check_llama(workdir, *model, args.small)
                    else:
                        check_lora(workdir, model[0], args.small)
                else:
                    check()
            except Exception as error:  # noqa: BLE001 - one failed check must not hide the others
                line(name, False, error=repr(str(error)[-400:]))
            print(f"# {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
