"""Wall time of ``python -c "import pairsynth"`` against a bare interpreter start, in the same run.

``import pairsynth`` resolves its public names lazily (PEP 562), so it must not import torch, diffusers
or transformers: a CLI's ``--help`` and a script's first line stay fast.

    .venv/bin/python benchmarks/import_time.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

GOAL_S = 0.3


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    check = "import sys, pairsynth; assert 'torch' not in sys.modules, 'import pairsynth loaded torch'"
    wall(check)  # warm the file cache and the bytecode
    bare, full = [], []
    for _ in range(args.repeats):  # interleaved, so drift in the machine's speed hits both alike
        bare.append(wall("pass"))
        full.append(wall(check))
    load = os.getloadavg()[0]
    extra = statistics.median(f - b for f, b in zip(full, bare))
    print(f"load average {load:.1f} on {os.cpu_count()} cores, {args.repeats} interleaved repeats")
    print(f"interpreter alone: {statistics.median(bare):.3f} s (median)")
    print(f"import pairsynth:  {statistics.median(full):.3f} s (median); {statistics.median(full) / statistics.median(bare):.2f}x the bare start")
    print(f"import pairsynth adds {extra:.3f} s; torch not imported")
    total = statistics.median(full)
    print(f"import pairsynth: {total:.3f} s (goal < {GOAL_S} s: {'met' if total < GOAL_S else 'not met'})")


if __name__ == "__main__":
    main()
