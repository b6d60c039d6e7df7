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


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def copy_word(rng: random.Random) -> tuple[str, str, str]:
    word = make_word(rng)
    return "Copy the word.", word, word


def uppercase_word(rng: random.Random) -> tuple[str, str, str]:
    word = make_word(rng)
    return "Write the word in uppercase.", word, word.upper()


def repeat_letter(rng: random.Random) -> tuple[str, str, str]:
    letter = rng.choice(LETTERS)
    times = rng.randint(2, 9)
    return f"Repeat the letter {times} times.", letter, letter * times


def first_letter(rng: random.Random) -> tuple[str, str, str]:
    word = make_word(rng)
    return "Give the first letter of the word.", word, word[0]


def reverse_word(rng: random.Random) -> tuple[str, str, str]:
    word = make_word(rng)
    return "Reverse the word.", word, word[::-1]


def count_letter(rng: random.Random) -> tuple[str, str, str]:
    word = make_word(rng)
    # Ask for a letter of the word half of the time, any letter otherwise, so 0 is a possible answer.
    letter = rng.choice(word) if rng.random() < 0.5 else rng.choice(LETTERS)
    return f"Count how many times the letter {letter} appears in the word.", word, str(word.count(letter))


def sort_three(rng: random.Random) -> tuple[str, str, str]:
    numbers = rng.sample(range(1, 10), 3)
    return "Sort the numbers in ascending order.", " ".join(map(str, numbers)), " ".join(map(str, sorted(numbers)))


def add_two(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randint(1, 15), rng.randint(1, 15)
    return "Add the two numbers.", f"{a} {b}", str(a + b)


def add_then_multiply(rng: random.Random) -> tuple[str, str, str]:
    a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 9)
    instruction = "Add the first two numbers, then multiply the result by the third number."
    return instruction, f"{a} {b} {c}", str((a + b) * c)


def sort_six(rng: random.Random) -> tuple[str, str, str]:
    numbers = rng.sample(range(10, 100), 6)
    return "Sort the numbers in ascending order.", " ".join(map(str, numbers)), " ".join(map(str, sorted(numbers)))


def words_to_json(rng: random.Random) -> tuple[str, str, str]:
    words = [make_word(rng) for _ in range(rng.randint(3, 4))]
    return "Format the words as a JSON list of strings.", " ".join(words), json.dumps(words)


def count_then_reverse(rng: random.Random) -> tuple[str, str, str]:
    words = [make_word(rng) for _ in range(rng.randint(2, 4))]
    instruction = "Count the words, then write the count and each word reversed."
    return instruction, " ".join(words), " ".join([str(len(words))] + [w[::-1] for w in words])


# (family, level, generator), easy to hard; tests and the README rely on this order.
FAMILIES = [
    ("copy_word", "easy", copy_word),
    ("uppercase_word", "easy", uppercase_word),
    ("repeat_letter", "easy", repeat_letter),
    ("first_letter", "easy", first_letter),
    ("reverse_word", "medium", reverse_word),
    ("count_letter", "medium", count_letter),
    ("sort_three", "medium", sort_three),
    ("add_two", "medium", add_two),
    ("add_then_multiply", "hard", add_then_multiply),
    ("sort_six", "hard", sort_six),
    ("words_to_json", "hard", words_to_json),
    ("count_then_reverse", "hard", count_then_reverse),
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
