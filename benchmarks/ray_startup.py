"""Where the Ray backend's fixed start-up goes: ``ray.init``, then each actor's process spawn, imports,
job transfer and model load (toy zoo, 2 one-thread actors on a 2-CPU local Ray).

Each actor sends one start-up line (``ray_data.startup_line``) back with its first result; this
prints them against the driver's own clock, with the load average before and after (the
machine may be shared, and every figure here scales with the load).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ray_startup.py
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import replace

LINE = re.compile(r"actor (\d+) start-up \(process began at ([\d.]+)\): (.*)")


def actor_lines(lines: list[str]) -> dict[int, tuple[float, str]]:
    return {int(m[1]): (float(m[2]), m[3]) for m in map(LINE.fullmatch, lines) if m}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    import ray

    from pairsynth.backends.ray_data import RayDataBackend
    from pairsynth.generate import GenerateJob
    from pairsynth.recipe import RayConfig, recipe_from_dict
    from pairsynth.stages import StageTimes, plan_chunk

    imported = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - imported
    job = GenerateJob(recipe_from_dict({"captions": ["a red circle on the left"], "k": 2, "seed": 0,
                                        "generator": {"model": "toy-shapes", "steps": 2, "batch_size": 2},
                                        "scorer": {"clip": "toy-shapes-clip"}}))
    backend = RayDataBackend(RayConfig(generator_actors=args.actors, cpus_per_actor=1))
    asked = time.time()
    backend.start(job)
    start_s = time.time() - asked
    # start() returns once one actor is ready; the others' lines come with their first batches
    conditions = plan_chunk(list(job.units().values()), replace(job.plan, chunk_size=1))
    deadline = time.monotonic() + 120
    while len(lines := actor_lines(backend.startup_lines)) < args.actors and time.monotonic() < deadline:
        backend.process(conditions * args.actors, StageTimes())
    all_ready = max((began + sum(float(x) for x in re.findall(r"\+([\d.]+) s", steps)) for began, steps in lines.values()),
                    default=float("nan")) - asked
    backend.close()
    ray.shutdown()
    print(f"load average before {', '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"import ray + pairsynth {imported - started:.1f} s; ray.init {init_s:.1f} s")
    for pid, (began, steps) in sorted(lines.items()):
        print(f"actor {pid}: process spawned {began - asked:+.2f} s after start(); {steps}")
    print(f"start() (first actor ready, probe through) {start_s:.1f} s; all {len(lines)} actors ready {all_ready:.1f} s")
    print(f"fixed start-up: ray.init + start() {init_s + start_s:.1f} s (goal < 15 s: "
          f"{'met' if init_s + start_s < 15 else 'not met'})")


if __name__ == "__main__":
    main()
