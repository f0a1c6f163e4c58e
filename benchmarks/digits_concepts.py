"""Do concept tokens learned from 5 labeled digits per class help a few-shot classifier? (issue 13's digits line)

Protocol, per draw (``--draws``, default 3), every part stored under ``--work`` and reused, so a
killed run resumes:

1. The split and the draw of ``benchmarks/digits_utility.py``: scikit-learn's digits, 50 % stratified
   test split (899 test images, never trained on, never generated from, never judged with); the
   draw's 5 labeled train-half images per class (``labeled_rows``), as 32×32 RGB (``to_pixels``).
2. Per class ``c``: ``pairsynth.concepts.learn_concept`` (textual inversion, token ``<digit-c>``,
   init ``digit``; or ``--method lora``: a LoRA on all the UNet's layers with the token, as DataDream
   fits the few shots) on the class's 5 images captioned ``a handwritten <digit-c>``, on the zoo's
   ``toy-digits`` (pretrained on the train half's pixels with one caption, no labels).
3. ``pairsynth.generate_dataset`` with a recipe naming the 10 concepts (LoRA: one run per class, its
   concept alone), captions
   ``a handwritten <digit-c>`` and ``k`` = ``--per-class`` images each, plus the plain caption
   ``a handwritten digit`` (the baseline of the steering check, not trained on). The toy zoo has no
   digits judge (its CLIP knows shapes), so everything is accepted (``accept: {retrieval: null}``);
   ``pairsynth balance`` is not used because its class-prompt retrieval check would rank digit
   prompts with the shapes CLIP, i.e. at random.
4. ``pairsynth.probe.protocol.probe_to_folder`` (what ``pairsynth probe`` runs): real = the draw's 50
   labeled images (so the probe's 5-shot draw is exactly them), ``--test`` = the fixed 899-image test
   half, synthetic = the concept-made images (labels from their captions); one probe draw per
   benchmark draw, seeded by the draw. Its table: real only, + classic (random affine/crop),
   + synthetic, + synthetic + classic.
5. Steering: the share of each class's generated images that digits_utility's labeled-only
   classifier (its real + affine CNN on the draw's 50 images) assigns to the concept's class, against
   the plain prompt's images (10 % is chance by construction: the plain images' shares sum to 1).

Gains are paired over the draws (same labeled images, same probe seed): mean and a 95 % t interval.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.digits_concepts [--draws 3 --ti-steps 400 --per-class 45] [--method lora]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import describe_machine, start_offline_run
from benchmarks.digits_utility import TrainSet, labeled_rows, train_classifier
from pairsynth_train.digits import CAPTION, digits_split, to_digits, to_pixels

logger = logging.getLogger("benchmarks.digits_concepts")
REPO = Path(__file__).resolve().parents[1]
SHOTS = 5
CLASSES = range(10)


def token(c: int) -> str:
    return f"<digit-{c}>"


def caption(c: int) -> str:
    return f"a handwritten {token(c)}"


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _pngs(images: np.ndarray) -> np.ndarray:
    """8×8 ink → (N, 32, 32, 3) uint8, the toy-digits pixels."""
    return ((to_pixels(images) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def write_labeled(folder: Path, images: np.ndarray, labels: np.ndarray, names: list[str], captions: bool) -> None:
    """An imagefolder with a ``label`` column (and the concept captions, for the real labeled images)."""
    from PIL import Image

    if (folder / "metadata.jsonl").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, image, label in zip(names, _pngs(images), labels):
        Image.fromarray(image).save(folder / f"{name}.png")
        row = {"file_name": f"{name}.png", "label": str(int(label))}
        if captions:
            row["text"] = caption(int(label))
        lines.append(json.dumps(row))
    tmp = folder / "metadata.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, folder / "metadata.jsonl")


def write_items(folder: Path, images: np.ndarray, rows: np.ndarray, c: int) -> None:
    """One class's concept items: PNGs with ``NAME.txt`` captions ``a handwritten <digit-c>``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for row, image in zip(rows, _pngs(images[rows])):
        if not (folder / f"train{row:04d}.txt").exists():
            Image.fromarray(image).save(folder / f"train{row:04d}.png")
            (folder / f"train{row:04d}.txt").write_text(caption(c) + "\n")


class Draw:
    """One draw: its labeled rows, concepts, generated images, probe and steering check, each a stored part."""

    def __init__(self, split, draw: int, args) -> None:
        from pairsynth.concepts import LearnConfig

        self.split, self.draw, self.args = split, draw, args
        self.here = args.work / f"draw{draw}"
        self.here.mkdir(parents=True, exist_ok=True)
        self.rows = labeled_rows(split.train_labels, SHOTS, draw)
        default = LearnConfig()
        self.concept_tag = f"concepts-ti{args.ti_steps}" + (f"-lr{args.ti_lr:g}" if args.ti_lr != default.lr else "") \
            + (f"-pat{args.ti_patience}" if args.ti_patience != default.patience else "") \
            + (f"-lora-r{args.lora_rank}-lr{args.lora_lr:g}" if args.method == "lora" else "")
        self.tag = self.concept_tag.removeprefix("concepts-") + f"-m{args.per_class}-steps{args.steps}-g{args.guidance:g}"

    def concepts(self) -> dict:
        """Learn the 10 tokens (``learn_concept`` resumes a killed concept and skips a finished one)."""
        from pairsynth.concepts import LearnConfig, learn_concept

        path = self.here / f"{self.concept_tag}.json"
        if path.exists():
            return json.loads(path.read_text())
        found = {}
        for c in CLASSES:
            rows = self.rows[self.split.train_labels[self.rows] == c]
            items = self.here / "items" / str(c)
            write_items(items, self.split.train_images, rows, c)
            card = learn_concept(items, self.concept_folder(c), token=token(c), init="digit", model=self.args.model,
                                 config=self.learn_config())
            evals = [loss for _, loss in card.eval_loss_curve]
            found[str(c)] = {"seconds": card.seconds, "steps": card.steps_done, "early_stop": card.stopped_early,
                             "first_eval_loss": evals[0], "best_eval_loss": min(evals),
                             "ratio": min(evals) / evals[0], "eval_every": card.config["eval_every"]}
            logger.info("draw %d concept %s: %s", self.draw, token(c), found[str(c)])
        result = {"per_class": found, "seconds": sum(v["seconds"] for v in found.values())}
        _atomic_json(path, result)
        return result

    def learn_config(self):
        """Textual inversion, or LoRA on all the UNet's layers with the token (DataDream's few-shot LoRA)."""
        from pairsynth.concepts import LearnConfig

        args = self.args
        lora = {"lora_rank": args.lora_rank, "lora_lr": args.lora_lr, "lora_layers": "all"} if args.method == "lora" else {}
        return LearnConfig(method=args.method, steps=args.ti_steps, lr=args.ti_lr, patience=args.ti_patience, **lora)

    def concept_folder(self, c: int) -> Path:
        return self.here / self.concept_tag / str(c)

    def generated(self) -> list[Path]:
        """M images per concept caption and M of the plain caption, by resumable ``generate_dataset`` runs.

        Tokens share one run. LoRA concepts get one run each, as the README's figures were made when
        a recipe's LoRAs all acted at once (each now acts on its own token's prompts only), so the
        stored runs stay valid.
        """
        if self.args.method == "lora":
            return [self._generate(f"-{c}", [caption(c)], [self.concept_folder(c)]) for c in CLASSES] + \
                [self._generate("-plain", [CAPTION], [])]
        return [self._generate("", [caption(c) for c in CLASSES] + [CAPTION], [self.concept_folder(c) for c in CLASSES])]

    def _generate(self, suffix: str, captions: list[str], concepts: list[Path]) -> Path:
        from pairsynth.generate import generate_dataset
        from pairsynth.recipe import recipe_from_dict

        out = self.here / f"generated-{self.tag}{suffix}"
        if (out / "done.json").exists():
            return out
        args = self.args
        recipe = recipe_from_dict({
            "captions": captions, "k": args.per_class, "max_attempts": args.per_class, "seed": self.draw, "device": "cpu",
            "generator": {"model": args.model, "steps": args.steps, "guidance_scale": args.guidance, "batch_size": 64},
            "accept": {"retrieval": None},
            "concepts": [str(folder) for folder in concepts],
            "output": {"formats": ["imagefolder"], "report": False, "commit_every": 128},
        }, base_dir=REPO)
        started = time.perf_counter()
        summary = generate_dataset(recipe, out)
        _atomic_json(out / "done.json", {"seconds": round(time.perf_counter() - started, 1),
                                         "elapsed_s": round(summary.elapsed_s, 1)})
        return out

    def split_generated(self, outs: list[Path]) -> tuple[Path, dict[int, np.ndarray], np.ndarray]:
        """The concept-made images as their own imagefolder (for the probe), and 8×8 ink per caption."""
        from pairsynth.readers import PairRecord, read_pairs

        by_caption: dict[str, list[np.ndarray]] = {}
        for out in outs:
            for record in read_pairs(out, layout="pairsynth"):
                if isinstance(record, PairRecord):
                    by_caption.setdefault(record.caption, []).append(np.array(record.image))
        ink = {c: to_digits(torch.as_tensor(np.stack(by_caption[caption(c)])).permute(0, 3, 1, 2).float() / 127.5 - 1)
               for c in CLASSES}
        plain = to_digits(torch.as_tensor(np.stack(by_caption[CAPTION])).permute(0, 3, 1, 2).float() / 127.5 - 1)
        folder = self.here / f"synthetic-{self.tag}"
        images = torch.cat([ink[c] for c in CLASSES]).numpy()
        labels = np.concatenate([[c] * len(ink[c]) for c in CLASSES])
        write_labeled(folder, images, labels, [f"syn{i:04d}" for i in range(len(labels))], captions=True)
        return folder, ink, plain

    def probe(self, synthetic: Path) -> dict:
        """``pairsynth probe``'s own run: real = the draw's 50 labeled images, test = the 899-image test half."""
        from pairsynth.probe.protocol import ProbeConfig, probe_to_folder

        out = self.here / f"probe-{self.tag}"
        if (out / "summary.json").exists():
            return json.loads((out / "summary.json").read_text())
        real = self.here / "labeled"
        write_labeled(real, self.split.train_images[self.rows], self.split.train_labels[self.rows],
                      [f"train{r:04d}" for r in self.rows], captions=True)
        started = time.perf_counter()
        summary = probe_to_folder(real, [synthetic], out, ProbeConfig(shots=(SHOTS,), draws=1, seed=self.draw),
                                  test=self.args.test_folder)
        logger.info("draw %d probe: %.0f s", self.draw, time.perf_counter() - started)
        return summary

    def steering(self, ink: dict[int, torch.Tensor], plain: torch.Tensor) -> dict:
        """Share of each concept's images the labeled-only classifier gives the concept's class."""
        path = self.here / f"steering-{self.tag}.json"
        if path.exists():
            return json.loads(path.read_text())
        x = torch.as_tensor(self.split.train_images[self.rows], dtype=torch.float32)
        y = torch.as_tensor(self.split.train_labels[self.rows])
        judge = train_classifier(TrainSet(x, y), self.draw, affine=True)  # digits_utility's affine condition
        with torch.no_grad():
            test_acc = float((judge(torch.as_tensor(self.split.test_images, dtype=torch.float32)).argmax(1)
                              == torch.as_tensor(self.split.test_labels)).float().mean())
            concept = {str(c): float((judge(ink[c]).argmax(1) == c).float().mean()) for c in CLASSES}
            plain_hist = np.bincount(judge(plain).argmax(1).numpy(), minlength=10) / len(plain)
        result = {"concept_share": float(np.mean(list(concept.values()))), "per_class": concept,
                  "plain_share": float(np.mean(plain_hist)), "plain_histogram": plain_hist.round(3).tolist(),
                  "judge_test_accuracy": test_acc}
        _atomic_json(path, result)
        return result

    def run(self) -> dict:
        concepts = self.concepts()
        outs = self.generated()
        folder, ink, plain = self.split_generated(outs)
        probe = self.probe(folder)
        seconds = sum(json.loads((out / "done.json").read_text())["seconds"] for out in outs)
        return {"concepts": concepts, "probe": probe, "steering": self.steering(ink, plain),
                "generate": {"seconds": seconds}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--ti-steps", type=int, default=400, help="learning steps at most, either method (early stop may end sooner)")
    parser.add_argument("--ti-lr", type=float, default=5e-3, help="learning rate of the token embedding")
    parser.add_argument("--ti-patience", type=int, default=6, help="evaluations without improvement before stopping")
    parser.add_argument("--method", choices=["textual-inversion", "lora"], default="textual-inversion",
                        help="lora: a LoRA on all of toy-digits' UNet layers per class, with its token")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--lora-lr", type=float, default=3e-3)
    parser.add_argument("--per-class", type=int, default=45, help="generated images per class (5 real + 45 = 50)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance of the generator")
    parser.add_argument("--model", default="toy-digits")
    parser.add_argument("--only-draw", type=int, default=None,
                        help="make this draw's parts and stop (draws in parallel processes; a later run prints the table)")
    parser.add_argument("--work", type=Path, default=REPO / ".bench_runs" / "digits_concepts")
    return parser.parse_args(argv)


def _fmt(values: list[float]) -> str:
    from pairsynth.probe.stats import spread

    s = spread([100 * v for v in values])
    return (f"{s.mean:.1f} ± {s.std:.1f}" if s.std is not None else f"{s.mean:.1f}") + f" (n={s.draws})"


def main(argv=None) -> None:
    from pairsynth.probe.stats import paired_gain

    args = parse_args(argv)
    start_offline_run()
    print(f"machine: {describe_machine()}; load before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    split = digits_split()
    args.work.mkdir(parents=True, exist_ok=True)
    args.test_folder = args.work / "test-half"
    write_labeled(args.test_folder, split.test_images, split.test_labels,
                  [f"test{i:04d}" for i in range(len(split.test_labels))], captions=False)
    print(f"split: {len(split.train_labels)} train-half / {len(split.test_labels)} test images; {SHOTS} labeled per "
          f"class per draw; {args.method} ≤ {args.ti_steps} steps per class on {args.model}; {args.per_class} "
          f"generated per class ({args.steps} steps, guidance {args.guidance:g}), all accepted; {args.draws} draws")
    started = time.perf_counter()
    if args.only_draw is not None:
        Draw(split, args.only_draw, args).run()
        print(f"draw {args.only_draw}: parts stored in {args.work} ({time.perf_counter() - started:.0f} s)")
        return
    results = [Draw(split, d, args).run() for d in range(args.draws)]

    table = results[0]["probe"]["results"][0]
    conditions = list(table["runs"])
    runs = {c: [r["probe"]["results"][0]["runs"][c][0] for r in results] for c in conditions}
    names = {"real": "real only", "real+classic": "+ affine (classic)"}
    print(f"\nelapsed {time.perf_counter() - started:.0f} s (parts reused from {args.work} count 0 s); load after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| labeled per class | " + " | ".join(names.get(c, c.replace("real+", "+ ").replace("+classic", " + affine"))
                                             for c in conditions) + " |")
    print("| --- " * (1 + len(conditions)) + "|")
    print(f"| {SHOTS} | " + " | ".join(_fmt(runs[c]) for c in conditions) + " |")
    print("(pairsynth probe's CNN, test accuracy on the 899-image test half, mean ± std over n draws)")
    syn, syn_aff = conditions[2], conditions[3]
    print("\npaired gains (percentage points, mean [95 % t interval]):")
    gains = {}
    for a, b in ((syn, "real"), (syn_aff, "real+classic"), (syn_aff, "real")):
        g = paired_gain([100 * v for v in runs[a]], [100 * v for v in runs[b]])
        gains[a, b] = g
        interval = f" [{g.low:+.1f}, {g.high:+.1f}]" if g.low is not None else ""
        print(f"  {a} − {b}: {g.mean:+.1f}{interval} ({g.draws} draws)")
    steer = [r["steering"] for r in results]
    share = 100 * float(np.mean([s["concept_share"] for s in steer]))
    per_draw = ", ".join(f"{100 * s['concept_share']:.1f}" for s in steer)
    per_class = ", ".join(f"{c}: {100 * np.mean([s['per_class'][str(c)] for s in steer]):.0f}" for c in CLASSES)
    print(f"\nsteering: {share:.1f} % of concept images given their concept's class by the labeled-only classifier "
          f"(per draw {per_draw}; per class {per_class}); "
          f"plain prompt: 10 % by construction, most frequent class "
          f"{100 * np.mean([max(s['plain_histogram']) for s in steer]):.0f} %; the classifier's own test accuracy "
          f"{100 * np.mean([s['judge_test_accuracy'] for s in steer]):.1f} %")
    seconds = [v["seconds"] for r in results for v in r["concepts"]["per_class"].values()]
    ratios = [v["ratio"] for r in results for v in r["concepts"]["per_class"].values()]
    steps = [v["steps"] for r in results for v in r["concepts"]["per_class"].values()]
    print(f"{args.method}: {np.mean(seconds):.0f} s per concept (min {min(seconds):.0f}, max {max(seconds):.0f}; "
          f"{np.mean(steps):.0f} steps on average), best/first evaluation loss {np.mean(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; first evaluation after {results[0]['concepts']['per_class']['0']['eval_every']} steps); "
          f"generation {np.mean([r['generate']['seconds'] for r in results]):.0f} s per draw "
          f"({11 * args.per_class} images)")
    g = gains[syn_aff, "real+classic"]
    met = g.low is not None and g.low > 0
    print(f"digits concepts 5/class: {100 * np.mean(runs[syn_aff]):.1f} (affine {100 * np.mean(runs['real+classic']):.1f}), "
          f"steering {share:.0f}% (goal: gain interval above zero: {'met' if met else 'not met'})")


if __name__ == "__main__":
    main()
