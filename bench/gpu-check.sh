#!/usr/bin/env bash
# One call on a GPU host, in under 8 minutes on one H100: what no CPU test can show (bench/gpu_check.py prints one
# line per check: precision, a ~1B Llama in bf16 with mfu=, LoRA, greedy generation on CUDA equal to the CPU's).
#
#   bash bench/gpu-check.sh [WHEEL_DIR]
#
# It uses the machine's own torch (a CUDA build) through a virtual environment that sees the system's packages, and
# installs from WHEEL_DIR (default bench/gpu-wheels), without any network, whatever else trainer/requirements.txt pins
# that the machine lacks. Fill WHEEL_DIR beforehand on a machine with the registry, for example:
#   .venv/bin/python -m pip download --no-deps -d bench/gpu-wheels transformers==5.24.0 accelerate==1.15.0 peft==0.21.2
# (add tokenizers, safetensors, datasets and their dependencies only if the GPU host lacks them). CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-bench/gpu-wheels}
python=${PIFT_GPU_PYTHON:-python3}
small=()
[ "${PIFT_GPU_CHECK_SMALL:-}" = 1 ] && small=(--small)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m venv --system-site-packages "$scratch/venv"
# Everything pinned except torch (the machine's) and pytest (not needed here); pip skips what is already satisfied.
grep -vE '^(torch|pytest)==' trainer/requirements.txt > "$scratch/requirements.txt"
"$scratch/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$wheels" -r "$scratch/requirements.txt"
"$scratch/venv/bin/python" -c 'import torch; print(f"# torch {torch.__version__}, cuda {torch.version.cuda}, " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))'
PYTHONPATH="$PWD/trainer" HF_HUB_OFFLINE=1 timeout 450 "$scratch/venv/bin/python" bench/gpu_check.py "${small[@]}"
