"""Pretrain the builtin tiny Llama on generic text, once, for the demo: the base model that the demo instruction-tunes.

Usage (from the repository root, with the trainer's virtual environment):

    .venv/bin/python data/pretrain_tiny.py                 # writes data/tiny-pretrained/
    .venv/bin/python data/pretrain_tiny.py --out DIR

The paper fine-tunes pretrained models; a model trained from scratch on the tasks themselves is another setting, where
a learning rate that suits one arm leaves another untrained. The text here teaches words and letters (sentences of
English and made-up words, word lists, the alphabet in both cases) and none of the demo's tasks: no instruction, no
template, no copied, reversed, doubled or JSON-formatted word. Seeded (SEED, plain causal-LM loss, one CPU thread),
so a run gives the same weights on the same torch build; the result is committed, so the demo never pretrains.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import torch

from pift.tiny_model import build_tiny_model, build_tiny_tokenizer

SEED = 3517
STEPS = 300
BATCH = 32
LEARNING_RATE = 3e-3
WARMUP = 30

# The demo's letters (data/generate_demo.py), in words of several shapes.
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
ENGLISH = (
    "the a an and or but of to in on at by with from for as is was are were be has had it this that these those "
    "we you they he she one two three some many each other new old small big long short good first last next word "
    "words letter letters name names line lines read write say said see saw made make came come went go here there "
    "when then where which who what how not all any more most very also only just so because after before"
).split()


def made_up_word(rng: random.Random) -> str:
    length = rng.choice((2, 3, 4, 4, 4, 5, 6))
    return "".join(rng.choice(CONSONANTS if i % 2 == 0 else VOWELS) for i in range(length))


def sentence(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(4, 12)):
        if rng.random() < 0.3:
            word = made_up_word(rng)
            words.append(word.capitalize() if rng.random() < 0.3 else word)
        else:
            words.append(rng.choice(ENGLISH))
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?!")


def word_list(rng: random.Random) -> str:
    separator = rng.choice((" ", ", "))
    return separator.join(made_up_word(rng) for _ in range(rng.randint(3, 10))) + "."


def alphabet(rng: random.Random) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    start = rng.randrange(0, 20)
    run = letters[start : start + rng.randint(6, 26 - start)]
    shape = rng.randrange(3)
    if shape == 0:
        return " ".join(run)
    if shape == 1:
        return " ".join(run.upper())
    return " ".join(f"{c.upper()}{c}" for c in run)


def generic_line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return sentence(rng)
    if kind < 0.9:
        return word_list(rng)
    return alphabet(rng)


def batch_of(lines: list[str], tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids = [[bos, *tokenizer(line, add_special_tokens=False)["input_ids"], eos] for line in lines]
    width = max(len(x) for x in ids)
    inputs = torch.full((len(ids), width), tokenizer.pad_token_id)
    labels = torch.full((len(ids), width), -100)
    for row, x in enumerate(ids):
        inputs[row, : len(x)] = torch.tensor(x)
        labels[row, : len(x)] = torch.tensor(x)
    return inputs, labels


def pretrain(out: Path) -> None:
    torch.set_num_threads(1)  # one thread: the same sums in the same order on every run
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.95), weight_decay=0.1)
    # Linear warmup, then cosine to zero, as the trainer's defaults.
    def factor(step: int) -> float:
        if step < WARMUP:
            return (step + 1) / WARMUP
        return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (STEPS - WARMUP)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    for step in range(1, STEPS + 1):
        inputs, labels = batch_of([generic_line(rng) for _ in range(BATCH)], tokenizer)
        loss = model(input_ids=inputs, attention_mask=(inputs != tokenizer.pad_token_id).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == 1:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "tiny-pretrained")
    pretrain(parser.parse_args().out)
