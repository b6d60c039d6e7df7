"""Generate the phased-ift demo dataset: short, checkable instruction tasks from easy to hard.

Usage (from the repository root; Python 3.11, standard library only):

    python3 data/generate_demo.py            # writes data/demo/train.jsonl and data/demo/heldout.jsonl
    python3 data/generate_demo.py --out DIR  # writes DIR/train.jsonl and DIR/heldout.jsonl

The output is a pure function of SEED: running it twice gives byte-identical files.
Rows are Alpaca-format JSON objects, one per line: id, family, level, instruction, input, output.
Every row is short (instruction + input + output under 120 characters) so a tiny byte-level model
trained from scratch on a CPU can learn the easy families within minutes; the held-out split has
the same families, disjoint (instruction, input) pairs, and its `output` is the reference answer.
"""

import argparse
import json
import random
from pathlib import Path

SEED = 3517
TRAIN_PER_FAMILY = 150
HELDOUT_PER_FAMILY = 8
MAX_ROW_CHARS = 120

# Words are made-up four-letter syllable strings (consonant, vowel, consonant, vowel): thousands of them, so a model
# must learn to copy, reverse or re-case letters rather than memorise a word list, and all of one length, so the
# letters of the input sit at fixed distances from the answer, which a tiny model trained from scratch on a CPU
# learns within minutes (words of varying length it does not).
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


def make_word(rng: random.Random) -> str:
    return "".join(rng.choice(CONSONANTS if index % 2 == 0 else VOWELS) for index in range(4))


def as_json_list(text: str) -> str:
    return json.dumps([text])


# Every family works on one made-up word, and the harder families compose the easier ones (reverse then uppercase;
# any of them then formatted as a JSON list), so a later stage keeps practising the earlier stages' skills and a tiny
# model can learn the hard families in the steps one stage gets: hard here means more operations, not longer
# answers, and the offline scorer ranks them by exactly that (operation verbs, "then", a structured format).
TASKS = {
    "copy_word": ("Copy the word.", lambda w: w),
    "uppercase_word": ("Write the word in uppercase.", str.upper),
    "first_letter": ("Give the first letter of the word.", lambda w: w[0]),
    "double_word": ("Write the word twice.", lambda w: f"{w} {w}"),
    "reverse_word": ("Reverse the word.", lambda w: w[::-1]),
    "last_letter": ("Find the last letter of the word.", lambda w: w[-1]),
    "reverse_uppercase": ("Reverse the word, then write it in uppercase.", lambda w: w[::-1].upper()),
    "reverse_double": ("Reverse the word, then write it twice.", lambda w: f"{w[::-1]} {w[::-1]}"),
    "copy_json": ("Copy the word, then format it as a JSON list.", as_json_list),
    "uppercase_json": ("Write the word in uppercase, then format it as a JSON list.", lambda w: as_json_list(w.upper())),
    "reverse_json": ("Reverse the word, then format it as a JSON list.", lambda w: as_json_list(w[::-1])),
    "last_letter_json": ("Find the last letter of the word, then format it as a JSON list.", lambda w: as_json_list(w[-1])),
}


def task(family: str):
    instruction, answer = TASKS[family]

    def generate(rng: random.Random) -> tuple[str, str, str]:
        word = make_word(rng)
        return instruction, word, answer(word)

    generate.__name__ = family
    return generate


# (family, level, generator), easy to hard; tests and the README rely on this order.
FAMILIES = [
    (family, level, task(family))
    for level, families in (
        ("easy", ("copy_word", "uppercase_word", "first_letter", "double_word")),
        ("medium", ("reverse_word", "last_letter", "reverse_uppercase", "reverse_double")),
        ("hard", ("copy_json", "uppercase_json", "reverse_json", "last_letter_json")),
    )
    for family in families
]


def draw_unique(rng, generator, count, taken):
    """Draw `count` rows whose (instruction, input) is not in `taken`; adds them to `taken`."""
    rows = []
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 100 * count:
            raise RuntimeError(f"{generator.__name__}: cannot draw {count} distinct rows")
        instruction, input_, output = generator(rng)
        key = (instruction, input_)
        if key in taken:
            continue
        taken.add(key)
        rows.append((instruction, input_, output))
    return rows


def build_splits(seed: int = SEED):
    train, heldout = [], []
    for family, level, generator in FAMILIES:
        # One generator per family (string seeds are hashed deterministically), so adding a family
        # or changing a count never changes the rows already drawn for another family.
        rng = random.Random(f"{seed}:{family}")
        taken = set()
        # Held-out first, so the evaluation rows are fixed even if TRAIN_PER_FAMILY changes.
        for split, count in ((heldout, HELDOUT_PER_FAMILY), (train, TRAIN_PER_FAMILY)):
            for instruction, input_, output in draw_unique(rng, generator, count, taken):
                row = {"family": family, "level": level, "instruction": instruction, "input": input_, "output": output}
                assert len(instruction) + len(input_) + len(output) < MAX_ROW_CHARS, row
                split.append(row)
    # Interleave families; a fixed-seed shuffle keeps the files deterministic.
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(heldout)
    train = [{"id": f"train-{i:04d}", **row} for i, row in enumerate(train, start=1)]
    heldout = [{"id": f"heldout-{i:03d}", **row} for i, row in enumerate(heldout, start=1)]
    return train, heldout


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "demo")
    args = parser.parse_args()
    train, heldout = build_splits()
    write_jsonl(args.out / "train.jsonl", train)
    write_jsonl(args.out / "heldout.jsonl", heldout)
    print(f"wrote {len(train)} train rows and {len(heldout)} held-out rows to {args.out}")


if __name__ == "__main__":
    main()
