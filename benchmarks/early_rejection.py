"""Early rejection against generate-then-filter, on the toy sounds and shapes worlds.

For each world the example recipe (``pairsynth/examples/sounds.yaml``, ``shapes.yaml``) runs with a
larger ``k``, three ways, in this one process (models loaded once per run, load time excluded):

1. **record**: ``accept.early_rejection.drop: false`` at each ``--at``: every candidate is finished and
   its preview verdict recorded; from these rows every ``score_margin``/``rank_slack`` is evaluated
   offline: the share of finally accepted candidates the rule would have dropped (must stay ≤ 2 %)
   and the share of rejected ones it catches.
2. **baseline**: no early rejection (generate, then filter).
3. **early**: early rejection with the chosen setting (``--at``'s first value and the defaults).

Throughput is accepted pairs per second of run time; precision is the share of accepted pairs whose
caption the world's attribute judges (``judges-sounds`` on the waveform, ``judges-shapes`` on the
pixels; trained on clean renders, never on generated samples) agree with.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/early_rejection.py [--worlds sounds shapes] [--k 8] [--at 0.3 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import describe_machine  # noqa: E402
from pairsynth.generate import generate_dataset  # noqa: E402
from pairsynth.recipe import recipe_from_dict  # noqa: E402

WEIGHTS = REPO_ROOT / "pairsynth" / "zoo" / "weights"
GOAL = 1.5  # on sounds, at equal precision
MAX_LOST = 0.02  # the rule may drop at most this share of candidates that would have passed


def world_recipe(world: str, k: int, early: dict | None) -> dict:
    data = yaml.safe_load((REPO_ROOT / "pairsynth" / "examples" / f"{world}.yaml").read_text())
    data.update(k=k, max_attempts=4 * k)
    data["output"] = {**data.get("output", {}), "report": False}
    if early is not None:
        data["accept"]["early_rejection"] = early
    return data


def run(world: str, k: int, early: dict | None, out: Path):
    summary = generate_dataset(recipe_from_dict(world_recipe(world, k, early), base_dir=REPO_ROOT), out,
                               overwrite=True)
    seconds = summary.elapsed_s - summary.times.seconds.get("load", 0.0)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return summary, seconds, [row for row in rows if "key" in row]


def precision(world: str, out: Path) -> float:
    """Share of accepted pairs the world's attribute judges agree with."""
    from pairsynth_train.judges import judge_waveforms, load_judges

    judge = load_judges(world, WEIGHTS / f"judges-{world}")
    if world == "sounds":
        import soundfile

        folder = out / "audiofolder"
        meta = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        waves = [soundfile.read(folder / row["file_name"], dtype="float32")[0] for row in meta]
        return judge_waveforms(judge, waves, [row["text"] for row in meta])["all"]
    from PIL import Image

    from pairsynth_train.evaluation import judge_images

    folder = out / "imagefolder"
    meta = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    images = [Image.open(folder / row["file_name"]).convert("RGB") for row in meta]
    return judge_images(judge, images, [row["text"] for row in meta])["all"]


def rule_table(rows: list[dict], judge: str, min_score: float | None, max_rank: int | None,
               margins: list[float], slacks: list[int]) -> list[tuple[float, int, float, float]]:
    """(margin, slack, share of accepted dropped, share of rejected caught) from recorded previews."""
    table = []
    accepted = [r for r in rows if r["accepted"] and judge in r.get("early", {})]
    rejected = [r for r in rows if not r["accepted"] and judge in r.get("early", {})]
    for margin in margins:
        for slack in slacks:
            def fails(row: dict) -> bool:
                early = row["early"][judge]
                low = min_score is not None and early["score"] < max(0.0, min_score - margin)
                far = max_rank is not None and early["rank"] is not None and early["rank"] > max_rank + slack
                return low or far
            lost = sum(map(fails, accepted)) / max(1, len(accepted))
            caught = sum(map(fails, rejected)) / max(1, len(rejected))
            table.append((margin, slack, lost, caught))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=["sounds", "shapes"], choices=["sounds", "shapes"])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--at", type=float, nargs="+", default=[0.5, 0.3])
    parser.add_argument("--score-margin", type=float, default=10.0)
    parser.add_argument("--rank-slack", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# machine: {describe_machine()}")
    last = ""
    for world in args.worlds:
        recipe = world_recipe(world, args.k, None)
        judge = "clap" if world == "sounds" else "clip"
        accept = recipe["accept"]
        min_score = accept.get(f"min_{judge}_score")
        max_rank = (accept.get("retrieval") or {}).get("max_rank")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            print(f"\n## {world}: example recipe, k={args.k} ({recipe['generator']['steps']} steps)")
            for at in args.at:
                summary, seconds, rows = run(world, args.k, {"at": at, "drop": False}, tmp / f"record{at}")
                failing = sum(1 for r in rows if "early" in r)
                print(f"record at {at:.0%}: {summary.accepted} accepted of {summary.candidates} candidates "
                      f"({summary.accepted / summary.candidates:.0%}), {failing} previews; {seconds:.1f} s")
                print("| score_margin | rank_slack | accepted it would drop | rejected it catches |")
                print("| --- | --- | --- | --- |")
                for margin, slack, lost, caught in rule_table(rows, judge, min_score, max_rank,
                                                              [0.0, 10.0, 20.0], [0, 1, 3]):
                    mark = " ← chosen" if (margin, slack) == (args.score_margin, args.rank_slack) else ""
                    print(f"| {margin:g} | {slack} | {lost:.1%} | {caught:.1%}{mark} |")
            base, base_s, _ = run(world, args.k, None, tmp / "baseline")
            base_precision = precision(world, tmp / "baseline")
            early = {"at": args.at[0], "score_margin": args.score_margin, "rank_slack": args.rank_slack}
            er, er_s, er_rows = run(world, args.k, early, tmp / "early")
            er_precision = precision(world, tmp / "early")
            dropped = sum(1 for r in er_rows if r.get("reason") == "early_rejection")
            base_rate, er_rate = base.accepted / base_s, er.accepted / er_s
            print(f"\n| run | accepted | candidates | dropped early | seconds | accepted/s | precision (judges-{world}) |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            print(f"| generate, then filter | {base.accepted} | {base.candidates} | - | {base_s:.1f} | {base_rate:.2f} | "
                  f"{base_precision:.3f} |")
            print(f"| early rejection {early} | {er.accepted} | {er.candidates} | {dropped} | {er_s:.1f} | {er_rate:.2f} | "
                  f"{er_precision:.3f} |")
            ratio = er_rate / base_rate
            print(f"early rejection / generate-then-filter ({world}): {ratio:.2f}x accepted pairs/s, precision "
                  f"{er_precision:.3f} vs {base_precision:.3f}")
            if world == "sounds":
                met = ratio >= GOAL and er_precision >= base_precision - 0.01
                last = f"early rejection sounds: {ratio:.2f}x (goal {GOAL}x at equal precision: {'met' if met else 'not met'})"
    print(f"# load after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if last:
        print(last)


if __name__ == "__main__":
    main()
