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

from benchmarks.common import describe_machine
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
        return [PairScores(self.kind, self.model_id, float(f @ t)) for f, t in zip(features, self.embed_texts(captions))]


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
    summary = vary_dataset(folder, out, config, scorer=PixelJudge())
    source_of = {row["key"]: row["source"]["key"] for row in read_manifest(out) if row["accepted"]}
    found: dict[int, list[torch.Tensor]] = {}
    for record in read_pairs(out, layout="pairsynth"):
        if getattr(record, "key", None) in source_of:
            pixels = torch.as_tensor(record.image).permute(2, 0, 1)[None].float() / 127.5 - 1
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


def run_part(path: Path, action) -> dict:
    """Reuse a finished part's JSON, or compute it and store it atomically."""
    if path.exists():
        return json.loads(path.read_text())
    result = action()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return result


def real_part(split, shots: int, draw: int, work: Path) -> dict:
    """The four non-synthetic conditions of one (shot, draw); saves the judge (the real + affine model)."""
    test_x, test_y = torch.as_tensor(split.test_images, dtype=torch.float32), torch.as_tensor(split.test_labels)
    train_x, train_y = torch.as_tensor(split.train_images, dtype=torch.float32), torch.as_tensor(split.train_labels)
    rows = labeled_rows(split.train_labels, shots, draw)
    labeled = TrainSet(train_x[rows], train_y[rows])
    oracle_rows = labeled_rows(split.train_labels, 10 * shots, draw)
    started = time.perf_counter()
    result = {"labeled": len(rows), "oracle_images": len(oracle_rows)}
    result["real"] = accuracy(train_classifier(labeled, draw), test_x, test_y)
    judge = train_classifier(labeled, draw, affine=True)
    result["affine"] = accuracy(judge, test_x, test_y)
    result["mixup"] = accuracy(train_classifier(labeled, draw, mixup=True), test_x, test_y)
    result["oracle"] = accuracy(train_classifier(TrainSet(train_x[oracle_rows], train_y[oracle_rows]), draw), test_x, test_y)
    torch.save(judge.state_dict(), work / f"shot{shots}" / f"draw{draw}" / "judge.pt")
    result["seconds"] = round(time.perf_counter() - started, 1)
    logger.info("shot %d draw %d: %s", shots, draw, result)
    return result


def synthetic_part(split, shots: int, draw: int, work: Path, args, strength: float, found) -> dict:
    test_x, test_y = torch.as_tensor(split.test_images, dtype=torch.float32), torch.as_tensor(split.test_labels)
    train_x, train_y = torch.as_tensor(split.train_images, dtype=torch.float32), torch.as_tensor(split.train_labels)
    rows = labeled_rows(split.train_labels, shots, draw)
    judge = DigitCnn()
    judge.load_state_dict(torch.load(work / f"shot{shots}" / f"draw{draw}" / "judge.pt"))
    syn_x, syn_y, made = class_filter(judge.eval(), rows, split.train_labels, found)
    mixed = TrainSet(train_x[rows], train_y[rows], syn_x, syn_y, args.p)
    result = {"sources": len(rows), "made": made, "kept": len(syn_x), "strength": strength, "p": args.p,
              "synthetic": accuracy(train_classifier(mixed, draw), test_x, test_y),
              "synthetic_affine": accuracy(train_classifier(mixed, draw, affine=True), test_x, test_y)}
    logger.info("shot %d draw %d strength %g: %s", shots, draw, strength, result)
    return result


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
    parser.add_argument("--part", choices=["all", "real"], default="all", help="real: only the non-synthetic rows")
    parser.add_argument("--draw-list", default=None,
                        help="compute only these draws (e.g. 5,6,7: a second process shares the work; parts meet in --work)")
    parser.add_argument("--work", type=Path, default=REPO / ".bench_runs" / "digits_utility")
    return parser.parse_args(argv)


def _fmt(values: list[float]) -> str:
    from pairsynth.probe.stats import spread

    s = spread(values)
    return f"{s.mean:.1f} ± {s.std:.1f}" if s.std is not None else f"{s.mean:.1f}"


def _gain(a: list[float], b: list[float]) -> str:
    from pairsynth.probe.stats import paired_gain

    g = paired_gain(a, b)
    return f"{g.mean:+.1f} [{g.low:+.1f}, {g.high:+.1f}] ({g.draws} draws)" if g.low is not None else f"{g.mean:+.1f} ({g.draws} draw)"


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(1)
    print(f"machine: {describe_machine()}")
    shots_list = [int(s) for s in args.shots.split(",")]
    synthetic_shots = [int(s) for s in args.synthetic_shots.split(",")] if args.part == "all" else []
    strengths = [float(s) for s in args.strengths.split(",")]
    split = digits_split()
    print(f"split: {len(split.train_labels)} train-half / {len(split.test_labels)} test images; CNN "
          f"{sum(p.numel() for p in DigitCnn().parameters()):,} parameters, {STEPS} AdamW steps of batch {BATCH}; "
          f"{args.draws} draws; p = {args.p}; {args.per_image} variations made per labeled image, kept when the "
          f"labeled-only classifier agrees; strengths {args.strengths}, {args.steps} steps, guidance {args.guidance}")
    started = time.perf_counter()
    real: dict[int, list[dict]] = {}
    synthetic: dict[tuple[int, float], list[dict]] = {}
    pools = {s: variations(split, args, s, args.draws, max(synthetic_shots)) for s in strengths} if synthetic_shots else {}
    # draws outer, shot counts inner: a run cut short still has whole draws; the 20/class row comes last
    first = [s for s in shots_list if s in GOALS or s in synthetic_shots]
    draw_list = [int(d) for d in args.draw_list.split(",")] if args.draw_list else list(range(args.draws))
    for group in (first, [s for s in shots_list if s not in first]):
        for draw in draw_list:
            for shots in group:
                here = args.work / f"shot{shots}" / f"draw{draw}"
                here.mkdir(parents=True, exist_ok=True)
                real.setdefault(shots, []).append(run_part(here / "real.json", lambda: real_part(split, shots, draw, args.work)))
                for strength in strengths if shots in synthetic_shots else []:
                    name = f"synthetic-s{strength:g}-k{args.per_image}-steps{args.steps}-g{args.guidance:g}-p{args.p:g}.json"
                    synthetic.setdefault((shots, strength), []).append(run_part(
                        here / name, lambda: synthetic_part(split, shots, draw, args.work, args, strength, pools[strength][0])))

    print(f"\nelapsed {time.perf_counter() - started:.0f} s (parts reused from {args.work} count 0 s); load after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| labeled per class | real only | + random affine | + mixup | 10× more real (oracle) |"
          + "".join(f" + synthetic s={s:g} | + synthetic + affine s={s:g} |" for s in strengths))
    print("| --- " * (5 + 2 * len(strengths)) + "|")
    for shots, parts in real.items():
        cells = [_fmt([p[c] for p in parts]) for c in REAL_CONDITIONS]
        cells[3] += f" ({parts[0]['oracle_images'] // 10}/class)"
        for strength in strengths:
            syn = synthetic.get((shots, strength))
            cells += [_fmt([p["synthetic"] for p in syn]), _fmt([p["synthetic_affine"] for p in syn])] if syn else ["–", "–"]
        print(f"| {shots} | " + " | ".join(cells) + " |")
    print("\npaired gains (percentage points, mean [95 % t interval]):")
    final = {}
    for (shots, strength), syn in synthetic.items():
        parts = real[shots]
        kept = sum(p["kept"] for p in syn) / sum(p["sources"] for p in syn)
        made = sum(p["made"] for p in syn) / sum(p["sources"] for p in syn)
        aff = [p["affine"] for p in parts[:len(syn)]]
        print(f"  {shots}/class, strength {strength:g}: {kept:.2f} kept of {made:.2f} made per labeled image; "
              f"syn+affine − affine {_gain([p['synthetic_affine'] for p in syn], aff)}; "
              f"syn − real {_gain([p['synthetic'] for p in syn], [p['real'] for p in parts[:len(syn)]])}")
    for strength, (_, info) in pools.items():
        print(f"  variations at strength {strength:g}: {info}")
        mean_syn = float(np.mean([p["synthetic_affine"] for p in syn]))
        if shots not in final or mean_syn > final[shots][0]:
            final[shots] = (mean_syn, float(np.mean(aff)), strength)
    for shots, goal in GOALS.items():
        if shots in final:
            syn, aff, strength = final[shots]
            print(f"  goal {shots}/class: ≥ {goal} — best strength {strength:g}: {syn:.1f} "
                  f"({'met' if syn >= goal else f'not met, short by {goal - syn:.1f}'})")
    if all(s in final for s in (5, 10)):
        print(f"digits 5/class: {final[5][0]:.1f} (affine {final[5][1]:.1f}), "
              f"10/class: {final[10][0]:.1f} (affine {final[10][1]:.1f})")


if __name__ == "__main__":
    main()
