"""A stand-in for the trainer's entry modules, for the tests that check the workflow's shape (branches, controls,
failures, what travels between the steps), not what a model learns.

Run as `python stub_trainer.py -m MODULE CONFIG.json` or `-m pift.serve ARGS` (the `python` script beside it does
so, as PIFT_PYTHON). It speaks the trainer's protocol (trainer/README.md, schema/trainer-events.schema.json) with the trainer's own
`pift.protocol`, refuses the configs the real modules refuse by the same schema, and writes the same layout
(`checkpoint-N/` with `trainer_state.json`, `final/`, `metrics.jsonl`, the answers file), in milliseconds and without
importing torch. The "weights" are a digest of the initial model, the rows and the step, so every stage's model
differs and a stage trained again gives the same bytes; a stub model answers with a digest of itself and the prompt,
through `pift.generate` as through the `pift.serve` stand-in, so the served path's answers equal the local ones as
with the real trainer. Anything else (`pift.ifd`, `python -c`) runs in the real interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema

from pift.protocol import claim_stdout, emit

REPO = Path(__file__).resolve().parents[3]
TINY_LLAMA = json.loads((REPO / "trainer" / "pift" / "configs" / "tiny-llama.json").read_text(encoding="utf-8"))
WEIGHTS = "model.safetensors"
MIN_MAX_LENGTH = 32
# Optional slowness, so a test can act while a stage trains (cancel it, kill its worker).
STEP_SECONDS = float(os.environ.get("PIFT_STUB_STEP_SECONDS", "0"))


class InputError(Exception):
    kind = "config"


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def model_digest(model: str) -> str:
    """What a model's weights are made of: a builtin's name, or a stub model's weights file."""
    weights = Path(model) / WEIGHTS
    if weights.is_file():
        return digest(weights.read_bytes())
    if model.startswith(("builtin:", "hf://")):
        return digest(model)
    raise InputError(f'field "model_name_or_path": no such local directory {model}')


def read_rows(path: str) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file") from error
    return [json.loads(line) for line in lines if line.strip()]


def save_model(folder: Path, weights: str, step: int, log_history: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WEIGHTS).write_text(json.dumps({"stub": weights}) + "\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({**TINY_LLAMA, "stub": True}, indent=2) + "\n", encoding="utf-8")
    (folder / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "log_history": log_history}, indent=2) + "\n", encoding="utf-8"
    )


def train(config: dict[str, Any]) -> None:
    check_config("trainer-config.schema.json", config)
    rows = read_rows(config["train_file"])
    if not rows:
        raise InputError(f"{config['train_file']}: no rows to train on")
    max_steps, output_dir = config["max_steps"], Path(config["output_dir"])
    start, history = 0, []
    if config["resume_from_checkpoint"]:
        state = json.loads((Path(config["resume_from_checkpoint"]) / "trainer_state.json").read_text(encoding="utf-8"))
        start, history = state["global_step"], state["log_history"]
    base = model_digest(config["model_name_or_path"])
    data = digest(Path(config["train_file"]).read_bytes())
    emit(
        "start", total_steps=max_steps, resumed_from_step=start, num_examples=len(rows), device="cpu", precision="fp32"
    )
    began = time.monotonic()
    stop = StopOnSigterm()
    for step in range(start + 1, max_steps + 1):
        time.sleep(STEP_SECONDS)
        # A loss that falls with every step, as a learning model's would.
        loss = 2.0 / (1 + 0.1 * step)
        record = {
            "step": step,
            "total_steps": max_steps,
            "loss": loss,
            "learning_rate": config["learning_rate"],
            "epoch": step / max_steps,
            "grad_norm": None,
            "tokens_per_second": None,
            "eta_seconds": None,
        }
        history.append({"step": step, "loss": loss})
        if step % config["logging_steps"] == 0:
            emit("progress", **record)
            output_dir.mkdir(parents=True, exist_ok=True)
            with open(output_dir / "metrics.jsonl", "a", encoding="utf-8") as metrics:
                metrics.write(json.dumps(record) + "\n")
        if step % config["save_steps"] == 0 or step == max_steps or stop.requested:
            folder = output_dir / f"checkpoint-{step}"
            save_model(folder, digest(base, data, str(step)), step, history)
            (folder / "optimizer.pt").write_text(digest("optimizer", base, data, str(step)), encoding="utf-8")
            emit("checkpoint", step=step, path=str(folder.resolve()))
        if stop.requested and step < max_steps:
            sys.exit(143)
    final_dir = Path(config["final_dir"])
    save_model(final_dir, digest(base, data, str(max_steps)), max_steps, history)
    losses = [entry["loss"] for entry in history]
    window = max(1, min(5, len(losses) // 4))
    emit(
        "done",
        total_steps=max_steps,
        final_dir=str(final_dir.resolve()),
        loss_first=sum(losses[:window]) / window,
        loss_last=sum(losses[-window:]) / window,
        losses=losses[-200:],
        loss_steps=[entry["step"] for entry in history][-200:],
        train_runtime=time.monotonic() - began,
        precision="fp32",
    )


def prompt_ids(row: dict[str, Any]) -> list[int]:
    """A row's prompt as token ids of the builtin byte-level tokenizer (4 special tokens, then the 256 bytes)."""
    prompt = json.dumps({k: row.get(k) for k in ("instruction", "input", "messages")}, sort_keys=True)
    return [4 + byte for byte in prompt.encode("utf-8")]


def completion(model: str, ids: list[int], max_tokens: int) -> str:
    """The stub model's greedy answer: the same model and prompt always give the same words."""
    text = digest(model, bytes(i - 4 for i in ids))
    return " ".join(text[i : i + 4] for i in range(0, 4 * min(max_tokens, 16), 4))


def generate(config: dict[str, Any]) -> None:
    mode = config.get("mode", "generate")
    rows = read_rows(config["input_file"])
    budget = config.get("max_new_tokens") or 16
    if mode == "prompts":
        # The served path's first half: the very ids the model would see, for the server to complete.
        emit("start", total=len(rows), already_done=0)
        with open(config["prompts_file"], "w", encoding="utf-8") as prompts:
            for row in rows:
                prompts.write(json.dumps({"id": row["id"], "prompt": prompt_ids(row), "max_tokens": budget}) + "\n")
        model_dir = Path(config["model_dir"])
        model_path = str(model_dir.resolve()) if model_dir.is_dir() else config["model_dir"]
        prompts_file = str(Path(config["prompts_file"]).resolve())
        emit("done", total=len(rows), prompts_file=prompts_file, model_path=model_path, dtype="float32")
        return
    output = Path(config["output_file"])
    if mode == "answers":
        # The second half: the server's completions, read back as answers.
        emit("start", total=len(rows), already_done=0)
        completions = {json.dumps(c["id"]): c for c in read_rows(config["completions_file"])}
        with open(output, "w", encoding="utf-8") as answers:
            for row in rows:
                done = completions[json.dumps(row["id"])]
                answer = {
                    "id": row["id"],
                    "answer": done["text"].strip(),
                    "prompt_tokens": len(prompt_ids(row)),
                    "answer_tokens": done["completion_tokens"],
                }
                answers.write(json.dumps(answer) + "\n")
        emit("done", total=len(rows), output_file=str(output.resolve()))
        return
    model = model_digest(config["model_dir"])
    # Like pift.generate, a rerun keeps the complete lines of an earlier attempt and answers only the rest.
    done_ids = {row["id"] for row in read_rows(str(output))} if output.exists() else set()
    pending = [row for row in rows if row["id"] not in done_ids]
    emit("start", total=len(rows), already_done=len(rows) - len(pending))
    with open(output, "a", encoding="utf-8") as answers:
        for index, row in enumerate(pending, start=1):
            ids = prompt_ids(row)
            text = completion(model, ids, budget)
            answer = {"id": row["id"], "answer": text, "prompt_tokens": len(ids), "answer_tokens": len(text.split())}
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
            emit("progress", done=len(done_ids) + index, total=len(rows))
    emit("done", total=len(rows), output_file=str(output.resolve()))


def serve(argv: list[str]) -> None:
    """`pift.serve --model M --port P --served-model-name N`: the completions endpoint, greedy, token ids only."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    args = dict(zip(argv[::2], argv[1::2]))
    model, name = model_digest(args["--model"]), args.get("--served-model-name", args["--model"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.reply({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "pift"}]})

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            ids, max_tokens = body["prompt"], int(body.get("max_tokens") or 16)
            text = completion(model, ids, max_tokens)
            self.reply(
                {
                    "id": f"cmpl-{digest(text)[:8]}",
                    "object": "text_completion",
                    "created": 0,
                    "model": name,
                    "choices": [{"index": 0, "text": " " + text, "finish_reason": "length", "logprobs": None}],
                    "usage": {
                        "prompt_tokens": len(ids),
                        "completion_tokens": len(text.split()),
                        "total_tokens": len(ids) + len(text.split()),
                    },
                }
            )

        def reply(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            pass

    ThreadingHTTPServer(("127.0.0.1", int(args["--port"])), Handler).serve_forever()


def check_model(config: dict[str, Any]) -> None:
    if config["max_length"] < MIN_MAX_LENGTH:
        raise InputError(f'field "max_length" must be at least {MIN_MAX_LENGTH}, got {config["max_length"]}')
    model = config["model_name_or_path"]
    path = Path(model) / "config.json"
    if model != "builtin:tiny-llama" and not path.is_file():
        raise InputError(f"{model}: the stub trainer knows builtin:tiny-llama and its own models only")
    model_config = TINY_LLAMA if model == "builtin:tiny-llama" else json.loads(path.read_text(encoding="utf-8"))
    emit(
        "model_ok",
        model_type=model_config["model_type"],
        tokenizer_size=TINY_LLAMA["vocab_size"],
        vocab_size=model_config["vocab_size"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        max_position_embeddings=model_config["max_position_embeddings"],
    )


def check_config(schema_file: str, config: dict[str, Any]) -> None:
    schema = json.loads((REPO / "schema" / schema_file).read_text(encoding="utf-8"))
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as error:
        field = ".".join(str(p) for p in error.absolute_path)
        raise InputError(f'field "{field}": {error.message}') from error


class StopOnSigterm:
    """The trainer's SIGTERM policy: finish the step, save a checkpoint, exit 143."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, *_: Any) -> None:
        self.requested = True


MODULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "pift.train": train,
    "pift.generate": generate,
    "pift.check_model": check_model,
}


def main(argv: list[str]) -> int:
    if argv[:2] == ["-m", "pift.serve"]:
        serve(argv[2:])
        return 0
    if len(argv) != 3 or argv[0] != "-m" or argv[1] not in MODULES:
        os.execv(sys.executable, [sys.executable, *argv])
    claim_stdout()
    try:
        MODULES[argv[1]](json.loads(Path(argv[2]).read_text(encoding="utf-8")))
    except InputError as error:
        print(error, file=sys.stderr)
        emit("error", kind=error.kind, message=str(error))
        return 65
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
