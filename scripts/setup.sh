#!/usr/bin/env bash
# Create .venv with pairsynth and its test tools, CPU-only and offline-ready.
# torch is installed first, pinned (pip takes the local CPU wheel), and constraints.txt keeps every
# later package from replacing it with a CUDA build.
#
#   scripts/setup.sh                      .venv: pairsynth + test tools + the LAION-CLAP and Stable Audio extras
#   scripts/setup.sh --datasets-current   also .venv-ds5: the current datasets release (5.x) with the same
#                                         pins otherwise, for tests/test_datasets_versions.py (a few minutes:
#                                         a second torch install; the test skips without it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATASETS_CURRENT=5.2.0
with_current_datasets=0
for arg in "$@"; do
  case "$arg" in
    --datasets-current) with_current_datasets=1 ;;
    *) echo "unknown option $arg (known: --datasets-current)" >&2; exit 2 ;;
  esac
done

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
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,laion-clap,stable-audio,ray]"  # ray: the Ray backend's tests
# laion-clap 1.1.7 pins numpy<2 for no reason its model code needs: without its dependencies (the
# laion-clap extra above supplies what it imports).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt laion-clap
if [ "$with_current_datasets" = 1 ]; then
  # A fresh venv (not --system-site-packages: it must resolve on its own), torch first, then the
  # current datasets with every other pin; datasets' own pins (and those it moves) are left to pip.
  [ -x .venv-ds5/bin/python ] || "$PYTHON" -m venv .venv-ds5
  grep -vE '^(datasets|fsspec|dill|multiprocess|huggingface_hub|hf-xet)==' constraints.txt > .venv-ds5/constraints.txt
  .venv-ds5/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
  .venv-ds5/bin/python -m pip install --quiet --disable-pip-version-check -c .venv-ds5/constraints.txt \
    "datasets==$DATASETS_CURRENT" -e ".[test]"
  echo "datasets $(.venv-ds5/bin/python -c 'import datasets; print(datasets.__version__)') is set up in .venv-ds5"
fi
echo "pairsynth is set up in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
