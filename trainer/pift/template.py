"""The paper's prompt template and response-only labels, built piecewise from token ids.

Training sequence (loss on `{response}</s>` only):
    <s>User: {instruction}[\\n{input}]</s>\\nAssistant: {response}</s>
Generation prompt (no trailing space; the model writes it):
    <s>User: {instruction}[\\n{input}]</s>\\nAssistant:

`<s>` and `</s>` are the tokenizer's bos/eos ids, inserted directly; the text pieces are
tokenized with `add_special_tokens=False` and `split_special_tokens=True`, so a literal
"</s>" inside user or response text stays text instead of becoming an end-of-sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
USER_PREFIX = "User: "
TRAIN_ASSISTANT_MARKER = "\nAssistant: "
PROMPT_ASSISTANT_MARKER = "\nAssistant:"


def user_text(instruction: str, input_text: str, newline_for_empty_input: bool = False) -> str:
    # The released generation code writes "\n" + input for HH and OASST even when the input is empty.
    if input_text or newline_for_empty_input:
        return f"{USER_PREFIX}{instruction}\n{input_text}"
    return f"{USER_PREFIX}{instruction}"


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


@dataclass
class TrainingExample:
    input_ids: list[int]
    labels: list[int]


def encode_training_example(
    tokenizer: PreTrainedTokenizerBase, instruction: str, input_text: str, response: str, max_length: int
) -> TrainingExample:
    """Tokenize one row; labels are -100 up to and including "\\nAssistant: ".

    Truncation [ours]: when the sequence exceeds `max_length`, the response keeps at least
    min(its length, max_length // 2) tokens; the user text is cut from its end to make that
    room, and then the response is cut from its end to fit (a cut response loses its `</s>`).
    The `<s>`, `</s>` and "\\nAssistant: " pieces are never cut.
    """
    user_ids = encode_text(tokenizer, user_text(instruction, input_text))
    marker_ids = encode_text(tokenizer, TRAIN_ASSISTANT_MARKER)
    response_ids = encode_text(tokenizer, response) + [tokenizer.eos_token_id]
    fixed = 2 + len(marker_ids)  # <s>, </s> after the user turn, "\nAssistant: "
    if fixed + len(user_ids) + len(response_ids) > max_length:
        reserved = min(len(response_ids), max_length // 2)
        user_ids = user_ids[: max(0, max_length - fixed - reserved)]
        response_ids = response_ids[: max_length - fixed - len(user_ids)]
    prompt_ids = [tokenizer.bos_token_id, *user_ids, tokenizer.eos_token_id, *marker_ids]
    return TrainingExample(
        input_ids=prompt_ids + response_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + response_ids,
    )


def encode_generation_prompt(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    input_text: str,
    max_prompt_tokens: int,
    newline_for_empty_input: bool = False,
    ends_with_space: bool = False,
) -> list[int]:
    """Prompt ids; an over-long user text is cut from its end so the prompt fits `max_prompt_tokens`.

    `ends_with_space` ends the prompt with the training marker "\\nAssistant: ": a model trained from scratch never
    learned to write that space, which the training labels mask.
    """
    user_ids = encode_text(tokenizer, user_text(instruction, input_text, newline_for_empty_input))
    marker_ids = encode_text(tokenizer, TRAIN_ASSISTANT_MARKER if ends_with_space else PROMPT_ASSISTANT_MARKER)
    user_ids = user_ids[: max(0, max_prompt_tokens - 2 - len(marker_ids))]
    return [tokenizer.bos_token_id, *user_ids, tokenizer.eos_token_id, *marker_ids]


@dataclass
class ResponseOnlyCollator:
    """Right-pads a batch: input_ids with the pad id, labels with -100, attention_mask 0 on padding."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :length] = torch.tensor(feature["labels"], dtype=torch.long)
            attention_mask[row, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
