"""A small OpenAI-compatible completions server for one model, greedy only: the fallback of generation through a
serving endpoint (`evaluation.serving`) where vLLM is not installed, and what the tests serve with.

Usage, with the package installed (`pip install -e trainer`):

    python -m pift.serve --model out/stage1/final --port 8000 --served-model-name stage-1

It answers `GET /v1/models` (also `GET /health`) and `POST /v1/completions` with `prompt` as a string or as token
ids (what the pipeline sends), `max_tokens`, and `temperature` 0 (greedy; a sampling request is refused). The model
loads as `pift.generate` loads it (bf16 on CUDA, fp32 on a CPU; a builtin name works too), and each prompt is decoded
alone, one request at a time: no padding, so nothing but the prompt decides its answer. `text` is the answer's tokens
up to the `</s>` that ended it, decoded after the prompt's text, as vLLM's detokenizer gives it;
`usage.completion_tokens` counts that `</s>` as vLLM does. For speed on real models serve with vLLM instead
(trainer/README.md).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import GenerationConfig, HfArgumentParser, PreTrainedModel, PreTrainedTokenizerBase

from .errors import ConfigError
from .job import configure_logging
from .models import decoding_device, load_model, load_tokenizer, plain_greedy
from .parent_watch import watch_parent

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 16  # the OpenAI API's default for completions


@dataclass
class ServeArguments:
    model: str = field(metadata={"help": "Local directory of HF weights and tokenizer, or a builtin model name."})
    port: int = field(default=8000, metadata={"help": "TCP port to listen on."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (loopback by default)."})
    served_model_name: str | None = field(
        default=None, metadata={"help": "The model name requests must give (default: the --model value)."}
    )


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Completer:
    """One model, greedy; requests take turns so each prompt is decoded alone."""

    def __init__(self, args: ServeArguments):
        device, dtype = decoding_device()
        self.name = args.served_model_name or args.model
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(args.model, field_name="--model")
        self.model: PreTrainedModel = (
            plain_greedy(load_model(args.model, self.tokenizer, dtype=dtype, field_name="--model"), self.tokenizer)
            .to(device)
            .eval()
        )
        self.max_model_len = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self.lock = threading.Lock()

    def models(self) -> dict[str, Any]:
        # The precision it decodes in, so the orchestrator records what served the answers.
        dtype = str(self.model.dtype).removeprefix("torch.")
        model = {"id": self.name, "object": "model", "created": int(time.time()), "owned_by": "pift", "dtype": dtype}
        return {"object": "list", "data": [{**model, "max_model_len": self.max_model_len}]}

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("model") != self.name:
            raise RequestError(HTTPStatus.NOT_FOUND, f"The model `{body.get('model')}` does not exist.")
        if body.get("stream") or body.get("echo") or body.get("logprobs") is not None or body.get("stop"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "pift.serve supports neither stream, echo, logprobs nor stop")
        if float(body.get("temperature", 1.0)) != 0.0 or int(body.get("n", 1)) != 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "pift.serve decodes greedily only: send temperature 0, n 1")
        max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        if max_tokens < 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "max_tokens must be at least 1")
        prompts = [self.prompt_ids(prompt) for prompt in as_prompt_list(body.get("prompt"))]
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, prompt in enumerate(prompts):
            if self.max_model_len and len(prompt) + max_tokens > self.max_model_len:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"This model's maximum context length is {self.max_model_len} tokens; the prompt has "
                    f"{len(prompt)} and max_tokens is {max_tokens}.",
                )
            with self.lock:
                text, generated, finish_reason = self.generate(prompt, max_tokens)
            choices.append({"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None})
            prompt_tokens += len(prompt)
            completion_tokens += generated
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def prompt_ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt)["input_ids"]
        if not prompt or not all(isinstance(token, int) and 0 <= token < len(self.tokenizer) for token in prompt):
            raise RequestError(HTTPStatus.BAD_REQUEST, "a token-id prompt must be a non-empty list of known ids")
        return prompt

    @torch.inference_mode()
    def generate(self, prompt: list[int], max_tokens: int) -> tuple[str, int, str]:
        tokenizer = self.tokenizer
        input_ids = torch.tensor([prompt], dtype=torch.long, device=self.model.device)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=GenerationConfig(
                do_sample=False,
                max_new_tokens=max_tokens,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            ),
        )
        generated = output[0, len(prompt) :].tolist()
        if tokenizer.eos_token_id in generated:
            answer = generated[: generated.index(tokenizer.eos_token_id)]
            return completion_text(tokenizer, prompt, answer), len(answer) + 1, "stop"
        return completion_text(tokenizer, prompt, generated), len(generated), "length"


def as_prompt_list(prompt: Any) -> list[str | list[int]]:
    """The completions API's four prompt shapes: a string, token ids, or a list of either."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(item, int) for item in prompt):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(item, (str, list)) for item in prompt):
        return prompt
    raise RequestError(HTTPStatus.BAD_REQUEST, "prompt must be a string, token ids, or a list of either")


def completion_text(tokenizer: PreTrainedTokenizerBase, prompt: list[int], answer: list[int]) -> str:
    """The answer's text as it reads after the prompt: a piece decoded alone may lose a leading space or split a
    character that the prompt's last bytes begin."""
    before = tokenizer.decode(prompt, skip_special_tokens=True)
    whole = tokenizer.decode(prompt + answer, skip_special_tokens=True)
    if whole.startswith(before):
        return whole[len(before) :]
    return tokenizer.decode(answer, skip_special_tokens=True)


def handler_for(completer: Completer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self.reply(HTTPStatus.OK, completer.models())
            elif self.path.rstrip("/") == "/health":
                self.reply(HTTPStatus.OK, {})
            else:
                self.reply(HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, f"no route {self.path}"))

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            if self.path.rstrip("/") not in ("/v1/completions", "/completions"):
                self.reply(HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, f"no route {self.path}"))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
                self.reply(HTTPStatus.OK, completer.complete(body))
            except RequestError as error:
                self.reply(error.status, error_body(error.status, str(error)))
            except (ValueError, TypeError) as error:
                self.reply(HTTPStatus.BAD_REQUEST, error_body(HTTPStatus.BAD_REQUEST, str(error)))

        def reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            logger.debug(format, *args)

    return Handler


def error_body(status: HTTPStatus, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": status.phrase, "code": int(status)}}


def main(args: ServeArguments) -> None:
    # Started by a worker's generate activity, the server goes when that worker goes.
    parent = os.environ.get("PIFT_PARENT_PID")
    watch_parent(int(parent) if parent else None)
    completer = Completer(args)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(completer))
    logger.info("serving %s on http://%s:%d/v1", completer.name, args.host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    configure_logging()
    try:
        (serve_args,) = HfArgumentParser((ServeArguments,)).parse_args_into_dataclasses(sys.argv[1:])
        main(serve_args)
    except ConfigError as config_error:
        logger.error("%s", config_error)
        sys.exit(65)
    except KeyboardInterrupt:
        sys.exit(130)
