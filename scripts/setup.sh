#!/usr/bin/env bash
# Create .venv with pairsynth and its test tools, CPU-only and offline-ready.
# torch is installed first, pinned (pip takes the local CPU wheel), and constraints.txt keeps every
# later package from replacing it with a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
echo "pairsynth is set up in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
