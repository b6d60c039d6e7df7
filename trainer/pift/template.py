"""The paper's prompt template and response-only labels, built piecewise from token ids.

Training sequence (loss on `{response}</s>` only):
    <s>User: {instruction}[\\n{input}]</s>\\nAssistant: {response}</s>
Generation prompt (no trailing space; the model writes it):
    <s>User: {instruction}[\\n{input}]</s>\\nAssistant:

`<s>` and `</s>` are the tokenizer's bos/eos ids, inserted directly; the text pieces are
tokenized with `add_special_tokens=False` and `split_special_tokens=True`, so a literal
"</s>" inside user or response text stays text instead of becoming an end-of-sequence.

A tokenizer without a BOS token (the Qwen family) gets no `<s>` at all [ours]: such models are
pretrained without a start token, so none is invented (the EOS is not borrowed, which would
read as "a document ended here"). `</s>` is always the tokenizer's EOS, which every tokenizer
the trainer accepts has.
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


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str | list[str]) -> list[int] | list[list[int]]:
    """Ids of a text (or of each of a list of texts), with no special tokens added or recognised."""
    if isinstance(text, list) and not text:
        return []
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The paper's `<s>`: the tokenizer's BOS, or nothing for a tokenizer that has none."""
    return [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]


@dataclass
class TrainingExample:
    input_ids: list[int]
    labels: list[int]


def encode_training_example(
    tokenizer: PreTrainedTokenizerBase, instruction: str, input_text: str, response: str, max_length: int
) -> TrainingExample:
    """Tokenize one row; see `encode_training_examples`."""
    return encode_training_examples(tokenizer, [instruction], [input_text], [response], max_length)[0]


def encode_training_examples(
    tokenizer: PreTrainedTokenizerBase,
    instructions: list[str],
    input_texts: list[str],
    responses: list[str],
    max_length: int,
) -> list[TrainingExample]:
    """Tokenize rows; labels are -100 up to and including "\\nAssistant: ".

    The texts of all rows go through the tokenizer in one call per piece (the same ids as one call per row, without
    the per-call overhead that dominates on short rows).

    Truncation [ours]: when the sequence exceeds `max_length`, the response keeps at least
    min(its length, max_length // 2) tokens; the user text is cut from its end to make that
    room, and then the response is cut from its end to fit (a cut response loses its `</s>`).
    The `<s>`, `</s>` and "\\nAssistant: " pieces are never cut.
    """
    users = [user_text(instruction, input_text) for instruction, input_text in zip(instructions, input_texts)]
    marker_ids = encode_text(tokenizer, TRAIN_ASSISTANT_MARKER)
    bos, eos = bos_ids(tokenizer), tokenizer.eos_token_id
    fixed = len(bos) + 1 + len(marker_ids)  # <s>, </s> after the user turn, "\nAssistant: "
    examples = []
    for user_ids, response_text_ids in zip(encode_text(tokenizer, users), encode_text(tokenizer, responses)):
        response_ids = response_text_ids + [eos]
        if fixed + len(user_ids) + len(response_ids) > max_length:
            reserved = min(len(response_ids), max_length // 2)
            user_ids = user_ids[: max(0, max_length - fixed - reserved)]
            response_ids = response_ids[: max_length - fixed - len(user_ids)]
        prompt_ids = [*bos, *user_ids, eos, *marker_ids]
        examples.append(
            TrainingExample(input_ids=prompt_ids + response_ids, labels=[IGNORE_INDEX] * len(prompt_ids) + response_ids)
        )
    return examples


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
    bos = bos_ids(tokenizer)
    user_ids = user_ids[: max(0, max_prompt_tokens - len(bos) - 1 - len(marker_ids))]
    return [*bos, *user_ids, tokenizer.eos_token_id, *marker_ids]


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


# Conversations: rows {"id", "messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]}.
#
# With the model's chat template (`conversation_template` "auto" when the tokenizer has one, or "model"), the
# sequence is exactly what `apply_chat_template` renders, and the labels cover each assistant turn's tokens up to and
# including the template's end-of-turn token (the tokenizer's EOS, where the turn contains it): the generation prompt
# before a turn ("<|im_start|>assistant\n"), the system and user turns, and whatever the template puts after the EOS
# (a newline) stay -100. A turn's tokens are found by rendering the conversation up to it twice, with and without that
# turn, so a template whose shorter renderings are not prefixes of the longer ones is refused.
#
# With the paper's template ("paper", or "auto" without a chat template) [ours, the paper has no conversations]:
#     <s>[System: {system}</s>\n]User: {user 1}</s>\nAssistant: {assistant 1}</s>\nUser: {user 2}</s>\nAssistant: ...
# so a single-turn conversation without a system message encodes exactly like the Alpaca row {instruction: user 1}.
#
# Truncation [ours]: a conversation longer than max_length is cut from its end; one whose first assistant token would
# be cut is refused by the caller (data.py names the row).

ROLES = ("system", "user", "assistant")
SYSTEM_PREFIX = "System: "


def uses_chat_template(tokenizer: PreTrainedTokenizerBase, choice: str) -> bool:
    """Whether conversations go through the model's chat template; `choice` is checked by the config."""
    if choice == "paper":
        return False
    if choice == "model" and not tokenizer.chat_template:
        raise ValueError("conversation_template is 'model' but the tokenizer has no chat template")
    return bool(tokenizer.chat_template)


def _chat_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True
    )
    return list(rendered["input_ids"])


def _paper_conversation_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool
) -> tuple[list[int], list[int]]:
    """input ids and labels in the paper's template; `generation_prompt` ends with "\\nAssistant:" instead."""
    ids, labels = list(bos_ids(tokenizer)), [IGNORE_INDEX] * len(bos_ids(tokenizer))

    def add(piece: list[int], learn: bool) -> None:
        ids.extend(piece)
        labels.extend(piece if learn else [IGNORE_INDEX] * len(piece))

    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "system":
            system_ids = encode_text(tokenizer, SYSTEM_PREFIX + content)
            add([*system_ids, tokenizer.eos_token_id, *encode_text(tokenizer, "\n")], False)
        elif role == "user":
            after_reply = index > 0 and messages[index - 1]["role"] == "assistant"
            add(encode_text(tokenizer, ("\n" if after_reply else "") + USER_PREFIX + content), False)
            add([tokenizer.eos_token_id], False)
        else:
            add(encode_text(tokenizer, TRAIN_ASSISTANT_MARKER), False)
            add([*encode_text(tokenizer, content), tokenizer.eos_token_id], True)
    if generation_prompt:
        add(encode_text(tokenizer, PROMPT_ASSISTANT_MARKER), False)
    return ids, labels


def _assistant_span_labels(tokenizer: PreTrainedTokenizerBase, span: list[int]) -> list[int]:
    """An assistant turn's rendered tokens learn up to the end-of-turn EOS; what the template adds after it does not."""
    if tokenizer.eos_token_id in span:
        end = len(span) - span[::-1].index(tokenizer.eos_token_id)
        return span[:end] + [IGNORE_INDEX] * (len(span) - end)
    return list(span)


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_length: int, chat_template: bool
) -> TrainingExample:
    """Tokenize a conversation with loss on assistant turns only (see the notes above); cut at max_length."""
    if not chat_template:
        ids, labels = _paper_conversation_ids(tokenizer, messages, generation_prompt=False)
    else:
        ids = _chat_ids(tokenizer, messages, generation_prompt=False)
        labels = [IGNORE_INDEX] * len(ids)
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = _chat_ids(tokenizer, messages[:index], generation_prompt=True)
            through = _chat_ids(tokenizer, messages[: index + 1], generation_prompt=False)
            if through[: len(before)] != before or ids[: len(through)] != through:
                raise ValueError("the chat template does not render a conversation's turns as prefixes of it")
            labels[len(before) : len(through)] = _assistant_span_labels(tokenizer, through[len(before) :])
    return TrainingExample(input_ids=ids[:max_length], labels=labels[:max_length])


def conversation_prompt_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """What a conversation asks: every turn up to and including its last user turn."""
    last_user = max(index for index, message in enumerate(messages) if message["role"] == "user")
    return messages[: last_user + 1]


def encode_conversation_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_prompt_tokens: int, chat_template: bool
) -> list[int]:
    """Generation prompt for a conversation's last user turn; earlier turns make room first, then that turn's end."""

    def render(turns: list[dict[str, str]]) -> list[int]:
        if chat_template:
            return _chat_ids(tokenizer, turns, generation_prompt=True)
        return _paper_conversation_ids(tokenizer, turns, generation_prompt=True)[0]

    turns = conversation_prompt_messages(messages)
    system = turns[:1] if turns[0]["role"] == "system" else []
    history = turns[len(system) : -1]
    # Oldest turns go first, a whole turn at a time, so the prompt never starts mid-turn.
    while history and len(render([*system, *history, turns[-1]])) > max_prompt_tokens:
        history = history[1:]
        while history and history[0]["role"] != "user":  # templates that insist on alternating turns
            history = history[1:]
    last = turns[-1]
    prompt = render([*system, *history, last])
    content_ids = encode_text(tokenizer, last["content"])
    keep = len(content_ids)
    while len(prompt) > max_prompt_tokens and keep > 0:
        keep = max(0, keep - (len(prompt) - max_prompt_tokens))
        prompt = render([*system, {**last, "content": tokenizer.decode(content_ids[:keep])}])
    return prompt[-max_prompt_tokens:]
