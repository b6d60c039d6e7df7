"""The trainer at real size: memory and data preparation time at 100,000 and 1,000,000 rows, on the CPU.

    npm run bench:trainer-scale -- [--sizes 100000,1000000] [--steps 3]

For each size, a stage file of Alpaca-shaped rows of English-looking text (instruction, an input on 40% of rows, a
response; about 330 characters a row, like Alpaca's) is

1. trained for `--steps` steps by `python -m pift.train` with the builtin tiny model, from an empty data cache: the
   trainer's preparation time (its "training data: ... s" log line) and its peak RSS (VmHWM of the trainer process;
   the tokenising processes it starts are reported apart, as their peak anonymous memory);
2. prepared by a plain `datasets` script (`load_dataset("json")`, then `.map(batched=True)` with the same tokenizer
   pieces, int32 columns and the same number of processes), timed the same way;
3. trained again with the data cache the first attempt left: a retry's preparation time.

Printed last: `rss_ratio_1m_100k` (the trainer's peak RSS at the largest size / at the smallest; target <= 1.1),
`prep_ratio` (ours / plain at the largest size; target <= 1.1) and `cached_prep_fraction` (the retry's preparation
time / the first attempt's, at the largest size; target <= 0.05).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you "
    "were her she there been one all we their has would when if so no will can more out up other into what only time "
    "could some them these two may first then do any like my now over such our man me even most made after also did "
    "many before must through back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since against go came right used take three water "
    "write list explain describe summarize translate sentence paragraph example answer question reason story poem "
    "email letter recipe code function number data table word words text article essay plan idea step steps"
).split()
PREP_LINE = re.compile(r"training data: (\d+) rows in ([0-9.]+) s \((\w+)\)")


def sentence(rng: random.Random, low: int, high: int, end: str = ".") -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + end


def write_stage(path: Path, rows: int, seed: int = 17) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            instruction = sentence(rng, 6, 16, rng.choice(".?:"))
            given = " ".join(sentence(rng, 4, 14) for _ in range(rng.randint(1, 3))) if rng.random() < 0.4 else ""
            output = " ".join(sentence(rng, 5, 18) for _ in range(rng.randint(1, 6)))
            record = {"id": f"r{index}", "instruction": instruction, "input": given, "output": output}
            handle.write(json.dumps(record) + "\n")


def status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run a command, sampling its own peak RSS and its children's peak anonymous memory; stderr is returned."""
    stderr_path = cwd / f"stderr-{time.monotonic_ns()}.log"
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        peak_kb, children_anon_kb = 0, 0
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            peak_kb = max(peak_kb, status_kb(process.pid, "VmHWM"))
            try:
                children = watched.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                children_anon_kb = max(children_anon_kb, status_kb(child.pid, "RssAnon"))
            time.sleep(0.1)
        stdout = process.stdout.read() if process.stdout else ""
    text = stderr_path.read_text(encoding="utf-8")
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{text[-3000:]}")
    return {"stdout": stdout, "stderr": text, "peak_mb": peak_kb / 1024, "children_anon_mb": children_anon_kb / 1024}


def train(stage: Path, workdir: Path, steps: int, attempt: str) -> dict:
    out = workdir / attempt
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "train_file": str(stage),
        "final_dir": str(out / "final"),
        "output_dir": str(out / "checkpoints"),
        "model_name_or_path": "builtin:tiny-llama",
        "max_steps": steps,
        "save_steps": steps,
        "per_device_train_batch_size": 4,
        "learning_rate": 3e-3,
        "logging_steps": 1,
        "report_to": "none",
    }
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "PIFT_WORKDIR": str(workdir / "worker"), "HF_HUB_OFFLINE": "1"}
    result = run_measured([sys.executable, "-m", "pift.train", str(out / "config.json")], env, out)
    match = PREP_LINE.search(result["stderr"])
    if not match:
        raise SystemExit(f"pift.train printed no preparation time:\n{result['stderr'][-3000:]}")
    return {**result, "rows": int(match[1]), "prep_s": float(match[2]), "source": match[3]}


def plain_prepare(stage: Path, workdir: Path, processes: int) -> dict:
    out = workdir / "plain"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(out / "cache")}
    command = [sys.executable, __file__, "--plain", str(stage), "--processes", str(processes)]
    result = run_measured(command, env, out)
    return {**result, **json.loads(result["stdout"].strip().splitlines()[-1])}


def plain_main(stage: str, processes: int) -> None:
    """What a plain SFT script does: load the JSON with datasets, tokenise in a batched map (run_clm.py's shape)."""
    from datasets import Features, List, Value, load_dataset

    from pift.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    started = time.monotonic()  # like the trainer's figure: after the imports and the tokenizer
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    marker = tokenizer("\nAssistant: ", add_special_tokens=False)["input_ids"]

    def tokenise(batch: dict[str, list]) -> dict[str, list]:
        users = [f"User: {i}\n{x}" if x else f"User: {i}" for i, x in zip(batch["instruction"], batch["input"])]
        user_ids = tokenizer(users, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(batch["output"], add_special_tokens=False)["input_ids"]
        input_ids, labels = [], []
        for user, response in zip(user_ids, response_ids):
            prompt = [bos, *user, eos, *marker]
            input_ids.append([*prompt, *response, eos][:2048])
            labels.append(([-100] * len(prompt) + [*response, eos])[:2048])
        return {"input_ids": input_ids, "labels": labels}

    dataset = load_dataset("json", data_files=stage, split="train")
    features = Features({"input_ids": List(Value("int32")), "labels": List(Value("int32"))})
    tokens = dataset.map(
        tokenise, batched=True, num_proc=processes, remove_columns=dataset.column_names, features=features
    )
    print(json.dumps({"prep_s": time.monotonic() - started, "rows": len(tokens)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="stage sizes in rows, smallest first")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_main(args.plain, args.processes)
        return
    from pift.train_data import processes_for

    sizes = [int(size) for size in args.sizes.split(",")]
    figures: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="trainer-scale-") as root:
        for rows in sizes:
            workdir = Path(root) / str(rows)
            workdir.mkdir()
            stage = workdir / "stage.jsonl"
            write_stage(stage, rows)
            first = train(stage, workdir, args.steps, "first")
            plain = plain_prepare(stage, workdir, processes_for(rows))
            retry = train(stage, workdir, args.steps, "retry")
            assert first["source"] == "tokenised" and retry["source"] == "cache" and first["rows"] == plain["rows"]
            figures[rows] = {"first": first, "plain": plain, "retry": retry}
            print(
                f"rows={rows} processes={processes_for(rows)} file_mb={stage.stat().st_size / 1e6:.0f} "
                f"prep_s={first['prep_s']:.2f} plain_prep_s={plain['prep_s']:.2f} retry_prep_s={retry['prep_s']:.3f} "
                f"trainer_peak_rss_mb={first['peak_mb']:.0f} retry_peak_rss_mb={retry['peak_mb']:.0f} "
                f"tokenising_processes_peak_anon_mb={first['children_anon_mb']:.0f} "
                f"plain_peak_rss_mb={plain['peak_mb']:.0f}",
                flush=True,
            )
            for name in ("first", "plain", "retry"):  # keep the disk for the next size
                figures[rows][name].pop("stderr")
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
    small, large = figures[sizes[0]], figures[sizes[-1]]
    print(f"rss_ratio_1m_100k={large['first']['peak_mb'] / small['first']['peak_mb']:.3f}")
    print(f"prep_ratio={large['first']['prep_s'] / large['plain']['prep_s']:.3f}")
    print(f"cached_prep_fraction={large['retry']['prep_s'] / large['first']['prep_s']:.4f}")


if __name__ == "__main__":
    main()
