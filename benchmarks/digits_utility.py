"""Does pairsynth's synthetic data help a few-shot classifier of real handwriting? (issue 16's scoreboard)

Protocol: scikit-learn's 1,797 real 8×8 digits, 50 % stratified test split (``random_state=0``, 899
test images, never trained on or judged with). Per draw, ``s`` labeled images per class are drawn
from the train half (nested: a draw's 5 are the first 5 of its 10). A small CNN is trained from
scratch for 300 AdamW steps under each condition and tested on the whole test half:

- real only; + random affine; + mixup; 10× more real (the oracle: 10·s per class, at most the whole train half);
- + synthetic: variations of the labeled images made by ``pairsynth.vary_dataset`` with the zoo's
  ``toy-digits`` (pretrained on the train half's pixels only, no labels) at an SDEdit strength,
  kept only when a classifier trained on that draw's labeled images alone (its real + affine model)
  still gives the variation its source's class (vary's similarity band on the classifier's softmax);
  mixed in by DA-Fusion's rule (each real example replaced by a synthetic one of its class with
  probability ``p``; the probe's :class:`~pairsynth.probe.mixing.MixingSampler`);
- + synthetic + affine: the same, with random affine applied to every training image.

Gains are *paired* (same draw, same labeled images, same init seed): mean and a 95 % Student t
interval over the draws (``pairsynth.probe.stats.paired_gain``). Every (shot, draw) part and every
synthetic part is stored under ``--work`` as JSON and reused, so a killed run resumes.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.digits_utility`` (1 thread; ~30 min alone on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import describe_machine, start_offline_run
from pairsynth_train.digits import CAPTION, digits_split, to_digits, to_pixels

logger = logging.getLogger("benchmarks.digits_utility")
REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH, LR, WEIGHT_DECAY = 300, 32, 3e-3, 1e-2
GOALS = {5: 92.7, 10: 96.2}
REAL_CONDITIONS = ("real", "affine", "mixup", "oracle")


class DigitCnn(torch.nn.Module):
    """The scoreboard's classifier: three 3×3 conv layers and a linear head, 8×8 ink in, 10 logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 48, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(48, 48, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(48 * 2 * 2, 10))

    def forward(self, ink: torch.Tensor) -> torch.Tensor:
        return self.body(ink.reshape(-1, 1, 8, 8) / 16.0)


def random_affine(ink: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotation ±15°, scale 0.85–1.15, shear ±0.15, shift ±1 pixel; blank (no ink) outside the image."""
    n = len(ink)
    u = lambda low, high: low + (high - low) * torch.rand(n, generator=generator)  # noqa: E731
    angle, scale, shear = u(-math.pi / 12, math.pi / 12), u(0.85, 1.15), u(-0.15, 0.15)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, u(-0.25, 0.25)], 1),
                         torch.stack([sin, cos, u(-0.25, 0.25)], 1)], 1)
    grid = F.affine_grid(theta, (n, 1, 8, 8), align_corners=False)
    return F.grid_sample(ink.reshape(n, 1, 8, 8), grid, align_corners=False, padding_mode="zeros").reshape(n, 8, 8)


@dataclass
class TrainSet:
    """Training images (8×8 ink) and labels; ``synthetic`` ones enter only through the mixing sampler."""

    images: torch.Tensor
    labels: torch.Tensor
    synthetic_images: torch.Tensor | None = None
    synthetic_labels: torch.Tensor | None = None
    p: float = 0.0


def batches(data: TrainSet, seed: int):
    """Endless batches of ``(images, labels)``: epochs of the mixing plan (plain shuffles without synthetic data)."""
    from pairsynth.probe.mixing import MixingSampler

    images, labels = data.images, data.labels
    if data.synthetic_images is not None and len(data.synthetic_images):
        images, labels = torch.cat([images, data.synthetic_images]), torch.cat([labels, data.synthetic_labels])
        sampler = MixingSampler(data.labels.tolist(), data.synthetic_labels.tolist(), p=data.p, seed=seed, strict=False)
    else:
        sampler = MixingSampler(data.labels.tolist(), [], p=0.0, seed=seed, strict=False)
    epoch, pending = 0, []
    while True:
        sampler.set_epoch(epoch)
        pending.extend(sampler)
        epoch += 1
        while len(pending) >= BATCH:
            rows, pending = pending[:BATCH], pending[BATCH:]
            yield images[rows], labels[rows]


def train_classifier(data: TrainSet, seed: int, affine: bool = False, mixup: bool = False) -> DigitCnn:
    """300 AdamW steps of batch 32 from a seeded init (the same init for every condition of a draw)."""
    torch.manual_seed(seed)
    model = DigitCnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=STEPS, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed + 1)
    stream = batches(data, seed)
    model.train()
    for _ in range(STEPS):
        x, y = next(stream)
        if affine:
            x = random_affine(x, generator)
        if mixup:
            lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).beta(0.4, 0.4))
            order = torch.randperm(len(x), generator=generator)
            logits = model(lam * x + (1 - lam) * x[order])
            loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[order])
        else:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitCnn, images: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((model(images).argmax(1) == labels).float().mean())


def labeled_rows(train_labels: np.ndarray, shots: int, draw: int) -> np.ndarray:
    """The draw's ``shots`` labeled train-half rows per class; nested across shot counts."""
    rng = np.random.default_rng(1000 + draw)
    rows = [rng.permutation(np.flatnonzero(train_labels == c))[:shots] for c in range(10)]
    return np.concatenate(rows)


class PixelJudge:
    """The embedding ``vary_dataset`` checks variations with: the digit's 64 ink values, L2-normalised.

    It stands where CLIP stands for photos (the zoo's CLIP knows shapes, not digits). Captions are not
    judged (``min_score``/``max_rank`` off); its one job in vary is the near-copy edge of the band.
    The class check is the labeled-only classifier's, per draw (:func:`class_filter`).
    """

    kind = "clip"
    context_length = 77
    model_id = "pixels"

    def embed_samples(self, samples) -> np.ndarray:
        pixels = torch.as_tensor(np.stack([np.asarray(s) for s in samples])).permute(0, 3, 1, 2).float() / 127.5 - 1
        return F.normalize(to_digits(pixels).reshape(len(samples), -1) + 1e-3, dim=1).numpy()

    def embed_texts(self, texts) -> np.ndarray:
        return np.full((len(texts), 64), 1 / 8, np.float32)

    def is_truncated(self, text: str) -> bool:
        return False

    def score_pairs(self, samples, captions, distractors=()):
        from pairsynth.alignment.scores import PairScores

        features = self.embed_samples(samples)
        return [PairScores(judge=self.kind, model=self.model_id, cosine=float(f @ t))
                for f, t in zip(features, self.embed_texts(captions))]


def write_source_folder(folder: Path, images: np.ndarray, rows: np.ndarray) -> None:
    """Train-half images as an imagefolder (32×32 PNG + the generic caption, no label): what ``vary`` reads."""
    from PIL import Image

    if (folder / "metadata.jsonl").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    pixels = ((to_pixels(images[rows]) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    lines = []
    for row, image in zip(rows, pixels):
        Image.fromarray(image).save(folder / f"train{row:04d}.png")
        lines.append(json.dumps({"file_name": f"train{row:04d}.png", "text": CAPTION}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def variations(split, args, strength: float, draws: int, shots: int) -> tuple[dict[int, list[torch.Tensor]], dict]:
    """Variations of every train-half image some draw labels, by one resumable ``pairsynth.vary_dataset`` run.

    An image's variations depend on its pixels and the seed only (the generator knows no classes),
    so the images all draws label are varied once; each draw then keeps its own images' variations.
    Returns the variations (8×8 ink) by train-half row, and timing.
    """
    from pairsynth import vary_config, vary_dataset
    from pairsynth.readers import read_manifest, read_pairs

    rows = np.unique(np.concatenate([labeled_rows(split.train_labels, shots, d) for d in range(draws)]))
    folder = args.work / f"pool-{draws}draws-{shots}shots"
    write_source_folder(folder, split.train_images, rows)
    out = args.work / f"vary-{draws}draws-{shots}shots-s{strength:g}-k{args.per_image}-steps{args.steps}-g{args.guidance:g}"
    config = vary_config(model=args.model, strength=strength, per_pair=args.per_image, max_attempts=args.per_image,
                         steps=args.steps, guidance_scale=args.guidance, min_score=None, max_rank=None,
                         similarity_band=(-1.0, 1.0), seed=0, batch_size=64, device="cpu", commit_every=256)
    started = time.perf_counter()
    while args.wait_for_pool and not (out / "progress.json").exists() or args.wait_for_pool and not json.loads(
            (out / "progress.json").read_text()).get("complete"):
        time.sleep(20)
    summary = vary_dataset(folder, out, config, scorer=PixelJudge())
    source_of = {row["key"]: row["source"]["key"] for row in read_manifest(out) if row["accepted"]}
    found: dict[int, list[torch.Tensor]] = {}
    for record in read_pairs(out, layout="pairsynth"):
        if getattr(record, "key", None) in source_of:
            pixels = torch.as_tensor(np.array(record.image)).permute(2, 0, 1)[None].float() / 127.5 - 1
            found.setdefault(int(source_of[record.key].removeprefix("train")), []).append(to_digits(pixels)[0])
    info = {"sources": len(rows), "made": sum(map(len, found.values())), "seconds": round(time.perf_counter() - started),
            "vary_elapsed_s": round(summary.elapsed_s)}
    logger.info("variations: %s", info)
    return found, info


def class_filter(judge: DigitCnn, rows: np.ndarray, labels: np.ndarray, found: dict[int, list[torch.Tensor]]):
    """Keep a variation only when the draw's labeled-only classifier still gives it its source's class."""
    images, targets, made = [], [], 0
    for row in rows:
        if row not in found:
            continue
        batch = torch.stack(found[row])
        made += len(batch)
        with torch.no_grad():
            keep = judge(batch).argmax(1) == int(labels[row])
        images.append(batch[keep])
        targets += [int(labels[row])] * int(keep.sum())
    return (torch.cat(images) if images else torch.zeros(0, 8, 8)), torch.tensor(targets, dtype=torch.long), made


class Draw:
    """One (shot count, draw): its labeled rows, and each condition's test accuracy as a stored part."""

    def __init__(self, split, shots: int, draw: int, args) -> None:
        self.split, self.shots, self.draw, self.args = split, shots, draw, args
        self.here = args.work / f"shot{shots}" / f"draw{draw}"
        self.here.mkdir(parents=True, exist_ok=True)
        self.rows = labeled_rows(split.train_labels, shots, draw)
        self.train_x = torch.as_tensor(split.train_images, dtype=torch.float32)
        self.train_y = torch.as_tensor(split.train_labels)

    def test(self, model: DigitCnn) -> float:
        return accuracy(model, torch.as_tensor(self.split.test_images, dtype=torch.float32), torch.as_tensor(self.split.test_labels))

    def labeled(self) -> TrainSet:
        return TrainSet(self.train_x[self.rows], self.train_y[self.rows])

    def done(self, name: str) -> dict | None:
        path = self.here / f"{name}.json"
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored is not None and "accuracy" in stored:
            return stored
        combined = self.here / "real.json"  # the four non-synthetic conditions stored together (earlier runs)
        if name in REAL_CONDITIONS and combined.exists():
            stored = json.loads(combined.read_text())
            if "oracle_images" in stored:
                return {"accuracy": stored[name], "images": stored["oracle_images"]}
        return None

    def part(self, name: str, action) -> dict:
        """A condition's stored result, or compute it (timed) and store it atomically."""
        if (found := self.done(name)) is not None:
            return found
        started = time.perf_counter()
        result = {**action(), "seconds": round(time.perf_counter() - started, 1)}
        tmp = self.here / f"{name}.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, self.here / f"{name}.json")
        logger.info("shot %d draw %d %s: %s", self.shots, self.draw, name, result)
        return result

    def affine(self) -> dict:
        """Real + affine; the model is also the draw's labeled-only judge of variations."""
        def run() -> dict:
            judge = train_classifier(self.labeled(), self.draw, affine=True)
            torch.save(judge.state_dict(), self.here / "judge.pt")
            return {"accuracy": self.test(judge)}
        return self.part("affine", run)

    def real(self) -> dict:
        return self.part("real", lambda: {"accuracy": self.test(train_classifier(self.labeled(), self.draw))})

    def mixup(self) -> dict:
        return self.part("mixup", lambda: {"accuracy": self.test(train_classifier(self.labeled(), self.draw, mixup=True))})

    def oracle(self) -> dict:
        rows = labeled_rows(self.split.train_labels, 10 * self.shots, self.draw)
        data = TrainSet(self.train_x[rows], self.train_y[rows])
        return self.part("oracle", lambda: {"accuracy": self.test(train_classifier(data, self.draw)), "images": len(rows)})

    def synthetic(self, found: dict, strength: float, affine: bool) -> dict:
        args = self.args
        name = f"synthetic{'_affine' if affine else ''}-s{strength:g}-k{args.per_image}-steps{args.steps}-g{args.guidance:g}-p{args.p:g}"

        def run() -> dict:
            self.affine()
            judge = DigitCnn()
            judge.load_state_dict(torch.load(self.here / "judge.pt"))
            syn_x, syn_y, made = class_filter(judge.eval(), self.rows, self.split.train_labels, found)
            mixed = TrainSet(self.train_x[self.rows], self.train_y[self.rows], syn_x, syn_y, args.p)
            return {"accuracy": self.test(train_classifier(mixed, self.draw, affine=affine)), "sources": len(self.rows),
                    "made": made, "kept": len(syn_x)}
        return self.part(name, run)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--shots", default="5,10,20", help="labeled images per class (the table's rows)")
    parser.add_argument("--synthetic-shots", default="5,10")
    parser.add_argument("--strengths", default="0.5", help="SDEdit strengths, each its own synthetic row")
    parser.add_argument("--per-image", type=int, default=3, help="variations made per labeled image (before the class filter)")
    parser.add_argument("--p", type=float, default=0.5, help="DA-Fusion replacement probability")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (× strength are run)")
    parser.add_argument("--guidance", type=float, default=1.0, help="toy-digits has one caption: no guidance")
    parser.add_argument("--model", default=str(REPO / "pairsynth/zoo/weights/toy-digits"))
    parser.add_argument("--part", choices=["all", "real", "gen", "table"], default="all",
                        help="real: only the non-synthetic rows; gen: only make the variations, then stop; "
                             "table: compute nothing, print the table of the parts stored so far")
    parser.add_argument("--wait-for-pool", action="store_true",
                        help="another process (--part gen) makes the variations: wait for them instead")
    parser.add_argument("--draw-list", default=None,
                        help="compute only these draws (e.g. 5,6,7: a second process shares the work; parts meet in --work)")
    parser.add_argument("--work", type=Path, default=REPO / ".bench_runs" / "digits_utility")
    return parser.parse_args(argv)


def _fmt(values: list[float]) -> str:
    from pairsynth.probe.stats import spread

    if not values:
        return "–"
    s = spread(values)
    return (f"{s.mean:.1f} ± {s.std:.1f}" if s.std is not None else f"{s.mean:.1f}") + f" (n={s.draws})"


def _gain(a: list[float], b: list[float]) -> str:
    from pairsynth.probe.stats import paired_gain

    g = paired_gain(a, b)
    return f"{g.mean:+.1f} [{g.low:+.1f}, {g.high:+.1f}] ({g.draws} draws)" if g.low is not None else f"{g.mean:+.1f} ({g.draws} draw)"


def main(argv=None) -> None:
    args = parse_args(argv)
    start_offline_run()
    print(f"machine: {describe_machine()}")
    shots_list = [int(s) for s in args.shots.split(",")]
    synthetic_shots = [int(s) for s in args.synthetic_shots.split(",")] if args.part != "real" else []
    strengths = [float(s) for s in args.strengths.split(",")]
    split = digits_split()
    print(f"split: {len(split.train_labels)} train-half / {len(split.test_labels)} test images; CNN "
          f"{sum(p.numel() for p in DigitCnn().parameters()):,} parameters, {STEPS} AdamW steps of batch {BATCH}; "
          f"{args.draws} draws; p = {args.p}; {args.per_image} variations made per labeled image, kept when the "
          f"labeled-only classifier agrees; strengths {args.strengths}, {args.steps} steps, guidance {args.guidance}")
    started = time.perf_counter()
    draw_list = [int(d) for d in args.draw_list.split(",")] if args.draw_list else list(range(args.draws))
    first = [s for s in shots_list if s in GOALS or s in synthetic_shots]
    later = [s for s in shots_list if s not in first]
    draws = {(s, d): Draw(split, s, d, args) for s in shots_list for d in draw_list}
    # Most needed first, so a run cut short still answers the goal: the affine baseline and real only,
    # then the synthetic + affine rows, then the other conditions, then the shot counts without a goal.
    if args.part == "gen":
        for strength in strengths:
            variations(split, args, strength, args.draws, max(synthetic_shots))
        return
    for d in draw_list if args.part != "table" else []:
        for s in first:
            draws[s, d].affine()
    for d in draw_list if args.part != "table" else []:  # while another process makes the variations
        for s in first:
            draws[s, d].real()
    pools = {}
    for strength in strengths if synthetic_shots and args.part != "table" else []:
        pools[strength] = variations(split, args, strength, args.draws, max(synthetic_shots))
        for d in draw_list:
            for s in synthetic_shots:
                draws[s, d].synthetic(pools[strength][0], strength, affine=True)
    for group in (first, later) if args.part != "table" else ():
        for d in draw_list:
            for s in group:
                draws[s, d].affine(), draws[s, d].real()
                for strength in pools:
                    draws[s, d].synthetic(pools[strength][0], strength, affine=False) if s in synthetic_shots else None
                draws[s, d].mixup(), draws[s, d].oracle()

    # the table: every stored part of every draw (other processes' included), for the draws asked for
    every = {(s, d): Draw(split, s, d, args) for s in shots_list for d in range(args.draws)}

    def values(s: int, name: str) -> list[float]:
        return [p["accuracy"] for d in range(args.draws) if (p := every[s, d].done(name)) is not None]

    def paired(s: int, a: str, b: str) -> tuple[list[float], list[float]]:
        both = [(pa["accuracy"], pb["accuracy"]) for d in range(args.draws)
                if (pa := every[s, d].done(a)) is not None and (pb := every[s, d].done(b)) is not None]
        return [x for x, _ in both], [y for _, y in both]

    tag = lambda strength, affine: (f"synthetic{'_affine' if affine else ''}-s{strength:g}-k{args.per_image}-steps{args.steps}"  # noqa: E731
                                    f"-g{args.guidance:g}-p{args.p:g}")
    print(f"\nelapsed {time.perf_counter() - started:.0f} s (parts reused from {args.work} count 0 s); load after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| labeled per class | real only | + random affine | + mixup | 10× more real (oracle) |"
          + "".join(f" + synthetic s={x:g} | + synthetic + affine s={x:g} |" for x in strengths))
    print("| --- " * (5 + 2 * len(strengths)) + "|")
    for s in shots_list:
        cells = [_fmt(values(s, name)) for name in REAL_CONDITIONS]
        oracle = next((p for d in range(args.draws) if (p := every[s, d].done("oracle"))), None)
        cells[3] += f" ({oracle['images'] // 10}/class)" if oracle else ""
        for strength in strengths:
            cells += [_fmt(values(s, tag(strength, False))), _fmt(values(s, tag(strength, True)))]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("(mean ± std of test accuracy over n draws)")
    print("\npaired gains (percentage points, mean [95 % t interval] (draws)):")
    final = {}
    for s in synthetic_shots or [x for x in shots_list if x in GOALS]:
        for strength in strengths:
            syn_aff, aff = paired(s, tag(strength, True), "affine")
            if not syn_aff:
                continue
            parts = [p for d in range(args.draws) if (p := every[s, d].done(tag(strength, True)))]
            kept = sum(p["kept"] for p in parts) / sum(p["sources"] for p in parts)
            made = sum(p["made"] for p in parts) / sum(p["sources"] for p in parts)
            syn, real_only = paired(s, tag(strength, False), "real")
            print(f"  {s}/class, strength {strength:g}: {kept:.2f} of {made:.2f} variations per labeled image kept; "
                  f"syn+affine − affine {_gain(syn_aff, aff)}" + (f"; syn − real {_gain(syn, real_only)}" if syn else ""))
            mean_syn = float(np.mean(syn_aff))
            if s not in final or mean_syn > final[s][0]:
                final[s] = (mean_syn, float(np.mean(aff)), strength, len(syn_aff))
    for strength, (_, info) in pools.items():
        print(f"  variations at strength {strength:g}: {info}")
    for s, goal in GOALS.items():
        if s in final:
            syn, aff, strength, n = final[s]
            print(f"  goal {s}/class ≥ {goal}: {syn:.1f} at strength {strength:g} over {n} draws "
                  f"({'met' if syn >= goal else f'not met, short by {goal - syn:.1f}'})")
    if all(s in final for s in (5, 10)):
        met = all(final[s][0] >= goal for s, goal in GOALS.items())
        print(f"digits 5/class: {final[5][0]:.1f} (affine {final[5][1]:.1f}), "
              f"10/class: {final[10][0]:.1f} (affine {final[10][1]:.1f}) "
              f"(goal {GOALS[5]} / {GOALS[10]}: {'met' if met else 'not met'})")


if __name__ == "__main__":
    main()
