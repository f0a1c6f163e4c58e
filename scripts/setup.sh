#!/usr/bin/env bash
# Create .venv with pairsynth and its test tools, CPU-only and offline-ready.
# torch is installed first, pinned (pip takes the local CPU wheel), and constraints.txt keeps every
# later package from replacing it with a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# System tools the tests use: Chromium renders the QA report headless (tests/test_qa_report_browser.py);
# espeak-ng speaks real words for the audio report; sox converts and inspects clips by hand.
# Installed only when missing, and only as root with apt; otherwise those tests try once more
# themselves and skip with the reason.
missing=()
for tool in chromium espeak-ng sox; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
     && DEBIAN_FRONTEND=noninteractive apt-get update -qq \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    echo "installed ${missing[*]}"
  else
    echo "warning: could not install ${missing[*]} (needs root and apt); the browser and speech tests will skip" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,ray]"  # ray: the Ray backend's tests
echo "pairsynth is set up in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
