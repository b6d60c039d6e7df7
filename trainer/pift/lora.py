"""LoRA and QLoRA through PEFT: wrapping the model for training, and exporting the stage's model merged.

The Trainer saves only the adapter in checkpoints of a `PeftModel` and loads it back on resume. The final
directory holds the merged model (plain Hugging Face weights that transformers, vLLM and the next stage load
as any other model) and the adapter itself in `final/adapter/`.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from .config import BUILTIN_TINY_LLAMA, LoraArguments, ModelArguments
from .errors import ConfigError
from .models import load_model

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"


def check_quantize_supported(lora: LoraArguments, model_name_or_path: str) -> None:
    """QLoRA needs bitsandbytes' CUDA kernels and weights it can quantize while loading: refuse otherwise."""
    if lora.quantize is None:
        return
    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package")
    if missing:
        raise ConfigError(
            f'field "lora.quantize": "{lora.quantize}" (QLoRA) needs {" and ".join(missing)} on the GPU worker; '
            "leave it unset to train LoRA adapters on unquantized weights"
        )
    if model_name_or_path == BUILTIN_TINY_LLAMA:
        raise ConfigError(
            f'field "lora.quantize": QLoRA needs a Hugging Face model directory, not {BUILTIN_TINY_LLAMA}'
        )


def load_quantized_model(
    name_or_path: str, tokenizer: PreTrainedTokenizerBase, compute_dtype: torch.dtype
) -> PreTrainedModel:
    """The base model in 4-bit NF4 (the QLoRA paper's choice), ready for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, local_files_only=True, quantization_config=quantization, dtype=compute_dtype
    )
    for config in (model.config, model.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def wrap_with_lora(
    model: PreTrainedModel, lora: LoraArguments, seed: int, adapter_dir: str | None = None
) -> PeftModel:
    """Freeze `model` and add trainable adapters: fresh ones, or those saved in `adapter_dir` (a checkpoint)."""
    if adapter_dir is not None:
        peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    else:
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )
        # The adapters' initial weights are random: seed them, so the same input gives the same weights.
        set_seed(seed)
        peft_model = get_peft_model(model, config)
    peft_config = peft_model.peft_config["default"]
    # The base is given when loading; its path on this worker would make the saved adapter differ by machine.
    peft_config.base_model_name_or_path = None
    # PEFT holds target modules as a set, saved in hash order: sort them so the files are the same every run.
    if isinstance(peft_config.target_modules, (set, frozenset)):
        peft_config.target_modules = sorted(peft_config.target_modules)
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA r=%d: %d of %d parameters trainable", lora.r, trainable, total)
    return peft_model


def save_merged(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, staging_dir: str, base_model_name_or_path: str
) -> None:
    """Write the adapter to `staging_dir/adapter` and the merged model with tokenizer beside it."""
    adapter_dir = os.path.join(staging_dir, ADAPTER_DIR)
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    if _is_quantized(model):
        # Merging into 4-bit weights would round the update away: reload the base unquantized and merge there.
        base = AutoModelForCausalLM.from_pretrained(
            base_model_name_or_path, local_files_only=True, dtype=torch.bfloat16
        )
        base.config.bos_token_id, base.config.eos_token_id, base.config.pad_token_id = (
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        )
        base.generation_config = model.get_base_model().generation_config
        model = PeftModel.from_pretrained(base, adapter_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(staging_dir)  # config.json, generation_config.json, model.safetensors
    tokenizer.save_pretrained(staging_dir)


def _is_quantized(model: PeftModel) -> bool:
    return bool(getattr(model.get_base_model(), "is_loaded_in_4bit", False))


def load_lora_model(
    model_args: ModelArguments,
    training_args: TrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    finished_checkpoint: str | None,
) -> PeftModel:
    """The base model with adapters; `finished_checkpoint` (one that reached max_steps) supplies trained ones."""
    lora = model_args.lora
    assert isinstance(lora, LoraArguments)
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    ):
        # Merging needs the whole weights in one process; sharded LoRA export is not written yet.
        raise ConfigError('field "lora": LoRA runs as one process or under ddp, not with fsdp or deepspeed-zero3')
    check_quantize_supported(lora, model_args.model_name_or_path)
    if lora.quantize is not None:
        compute_dtype = torch.bfloat16 if training_args.bf16 else torch.float16 if training_args.fp16 else torch.float32
        model = load_quantized_model(model_args.model_name_or_path, tokenizer, compute_dtype)
    else:
        model = load_model(model_args.model_name_or_path, tokenizer, seed=model_args.model_seed)
    return wrap_with_lora(model, lora, seed=training_args.seed, adapter_dir=finished_checkpoint)
