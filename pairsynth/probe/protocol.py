"""``pairsynth probe``: does the synthetic data help a classifier trained on a few real examples?

The protocol, top to bottom (:func:`run_probe`):

1. Check inputs — read the real data, the optional test set and every synthetic set; every real
   class must have a label, a synthetic example and a test example, or the run stops here.
2. Split — hold out a stratified real test split (or use ``--test``) and draw the few-shot training
   subsets (``draws`` per shot count, nested over shots).
3. Encode — tiny images / clips for the CNN, or frozen judge embeddings for the linear probe.
4. Train — per shot count and draw, every condition on the same draw with the same seed:
   ``real``, ``real+classic``, and per synthetic set ``real+NAME`` and ``real+NAME+classic``, mixing by
   DA-Fusion's rule through :class:`~pairsynth.probe.mixing.MixingSampler`.
5. Summarise and report — accuracy mean ± std per condition, the paired gain of each synthetic
   condition over the best non-synthetic one with a 95 % t interval, per-class accuracy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pairsynth.probe.classifiers import CLASSIFIERS, TrainSettings, build_model, train_and_predict
from pairsynth.probe.errors import MissingClassError, ProbeError
from pairsynth.probe.features import EmbeddingSpace, InputSpace
from pairsynth.probe.labeled import (LabeledExample, LabeledSet, check_same_medium, read_labeled, read_synthetic,
                                     synthetic_name)
from pairsynth.probe.splits import check_test_set, few_shot_draws, stratified_split
from pairsynth.probe.stats import condition_table, spread

logger = logging.getLogger(__name__)

REAL, CLASSIC = "real", "real+classic"


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """How the probe runs.

    Attributes:
        shots: real training examples per class, one probe per value.
        draws: training subsets per shot count (and so the number of paired differences per gain).
        classifier: ``cnn`` (from scratch) or ``linear`` (on frozen judge embeddings).
        p: DA-Fusion's replacement probability for the synthetic conditions.
        test_fraction: the held-out share of the real data, when no test set is given.
        seed: fixes the split, the draws, every initialisation and every mixing plan.
        image_size: the CNN's input side, in pixels.
        cnn_width: channels of the CNN's first block (the others have twice as many); 32 ≈ 57k parameters.
        judge: the CLIP/CLAP model of the linear probe (default: the toy zoo's for the medium).
        views: augmented copies embedded per example for the linear probe's classic condition.
        train: steps, batch size, learning rate.
    """

    shots: tuple[int, ...] = (5, 10, 20)
    draws: int = 10
    classifier: str = "cnn"
    p: float = 0.5
    test_fraction: float = 0.5
    seed: int = 0
    image_size: int = 32
    cnn_width: int = 32
    judge: str | None = None
    views: int = 4
    train: TrainSettings = field(default_factory=TrainSettings)

    def check(self) -> None:
        """Raise :class:`ProbeError` naming the first bad setting."""
        if not self.shots or min(self.shots) < 1:
            raise ProbeError(f"--shots must be positive counts per class, got {list(self.shots)}")
        if self.draws < 1:
            raise ProbeError(f"--draws must be at least 1, got {self.draws}")
        if self.classifier not in CLASSIFIERS:
            raise ProbeError(f"--classifier {self.classifier!r} is unknown; use one of {', '.join(CLASSIFIERS)}")
        if not 0.0 <= self.p <= 1.0:
            raise ProbeError(f"--p must lie in [0, 1], got {self.p}")
        if self.train.steps < 1 or self.train.batch_size < 1:
            raise ProbeError("--steps and --batch-size must be at least 1")


@dataclass(kw_only=True)
class ProbeData:
    """Everything read and checked before training: real, test and synthetic sets, split and draws."""

    real: LabeledSet
    test: list[LabeledExample]
    pool: list[LabeledExample]
    synthetic: dict[str, LabeledSet]
    classes: list[str]
    draws: dict[int, list[np.ndarray]]  # per shot count, positions into ``pool``
    test_source: str


def load_probe_data(real: str | Path | LabeledSet, synthetic: Sequence[str | Path | LabeledSet], config: ProbeConfig,
                    *, test: str | Path | LabeledSet | None = None,
                    label_map: Mapping[str, str] | None = None) -> ProbeData:
    """Steps 1–2: read and check every dataset, split the real data and draw the training subsets.

    Each dataset may be a path or an already-read :class:`LabeledSet` (a script's own arrays).

    Raises:
        ProbeError: a missing label, a class absent from a synthetic set or the test set, too few
            test or training examples, or datasets of different media.
    """
    config.check()
    if not synthetic:
        raise ProbeError("give at least one --synthetic dataset to compare with the real data")
    real_set = real if isinstance(real, LabeledSet) else read_labeled(real, label_map=label_map)
    classes = real_set.classes
    if len(classes) < 2:
        raise ProbeError(f"{real_set.path}: one class ({classes[0]!r}); a classifier needs at least two")
    test_set = test if isinstance(test, LabeledSet) or test is None else read_labeled(test, label_map=label_map)
    synthetic_sets = {}
    for part in synthetic:
        name = synthetic_name(Path(part.path if isinstance(part, LabeledSet) else part), synthetic_sets)
        synthetic_sets[name] = part if isinstance(part, LabeledSet) else read_synthetic(part, real_set, label_map=label_map)
    check_same_medium(real_set, [*([test_set] if test_set else []), *synthetic_sets.values()])
    for name, part in synthetic_sets.items():
        missing = [c for c in classes if c not in set(part.labels)]
        if missing:
            raise MissingClassError(f"{part.path}: no synthetic example of class {missing[0]!r} "
                                    f"({len(missing)} of {len(classes)} classes missing); every real class needs some")
        extra = sorted(set(part.labels) - set(classes))
        if extra:
            logger.warning("%s: classes not in the real data are ignored: %s", part.path, ", ".join(extra[:5]))
    if test_set is not None:
        test_examples = [e for e in test_set.examples if e.label in set(classes)]
        check_test_set([e.label for e in test_examples], classes, test_set.path)
        pool = real_set.examples
        test_source = f"given: {test_set.path}"
    else:
        split = stratified_split(real_set.labels, test_fraction=config.test_fraction, seed=config.seed)
        test_examples = [real_set.examples[i] for i in split.test]
        pool = [real_set.examples[i] for i in split.train]
        test_source = f"held out: {config.test_fraction:g} of {real_set.path}, stratified, seed {config.seed}"
    draws = few_shot_draws([e.label for e in pool], np.arange(len(pool)), config.shots, config.draws, config.seed)
    return ProbeData(real=real_set, test=test_examples, pool=pool, synthetic=synthetic_sets, classes=classes,
                     draws=draws, test_source=test_source)


def run_probe(real: str | Path | LabeledSet, synthetic: Sequence[str | Path | LabeledSet], config: ProbeConfig, *,
              test: str | Path | LabeledSet | None = None, label_map: Mapping[str, str] | None = None,
              space: InputSpace | None = None, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the whole probe and return its summary (what ``summary.json`` holds).

    Args:
        real: the labeled real dataset (a path, or a :class:`LabeledSet` built in a script).
        synthetic: one or more synthetic datasets (pairsynth outputs, labeled folders or :class:`LabeledSet`\ s).
        config: shots, draws, classifier, ``p`` …
        test: a labeled real test set; default: a stratified split of ``real``.
        label_map: caption → label, for datasets labeled through their captions.
        space: the input space (default: from ``config``; tests pass a prepared one).
        on_progress: called with (runs done, runs in all) after each training run.
    """
    started = time.perf_counter()
    # 1–2. Check inputs, split, draw
    data = load_probe_data(real, synthetic, config, test=test, label_map=label_map)
    # 3. Encode
    space = space or _input_space(config, data)
    index = {c: i for i, c in enumerate(data.classes)}
    used = np.unique(np.concatenate([d for per_shot in data.draws.values() for d in per_shot]))
    stored_pool = dict(zip(used.tolist(), space.encode([data.pool[i] for i in used])))
    test_x = space.encode(data.test)
    test_y = np.array([index[e.label] for e in data.test])
    synthetic_stored = {}
    for name, part in data.synthetic.items():
        kept = [e for e in part.examples if e.label in index]
        synthetic_stored[name] = (space.encode(kept), np.array([index[e.label] for e in kept]))
    dimension = int(test_x.shape[-1]) if config.classifier == "linear" else None
    # 4. Train every condition on every draw
    conditions = [(REAL, None, False), (CLASSIC, None, True)]
    for name in data.synthetic:
        conditions += [(f"real+{name}", name, False), (f"real+{name}+classic", name, True)]
    total, done = len(config.shots) * config.draws * len(conditions), 0
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {n: {c[0]: [] for c in conditions} for n in config.shots}
    for shots in config.shots:
        for draw, rows in enumerate(data.draws[shots]):
            real_x = torch.stack([stored_pool[i] for i in rows.tolist()])
            real_y = np.array([index[data.pool[i].label] for i in rows])
            seed = int(np.random.SeedSequence([config.seed, shots, draw]).generate_state(1)[0])
            for condition, source, augment in conditions:
                def make_model() -> torch.nn.Module:
                    return build_model(config.classifier, space, len(data.classes), dimension, width=config.cnn_width)

                run = train_and_predict(make_model, space, (real_x, real_y), synthetic_stored.get(source), test_x,
                                        p=config.p, augment=augment, settings=config.train, seed=seed)
                runs[shots][condition].append(_scored(run.predictions, test_y, len(data.classes), run.synthetic_share))
                done += 1
                if on_progress:
                    on_progress(done, total)
            logger.info("%d shots, draw %d: %s", shots, draw,
                        ", ".join(f"{c} {runs[shots][c][-1]['accuracy']:.3f}" for c, _, _ in conditions))
    # 5. Summarise
    return summarise(runs, data, config, [c[0] for c in conditions], time.perf_counter() - started)


def summarise(runs: Mapping[int, Mapping[str, list[dict[str, Any]]]], data: ProbeData, config: ProbeConfig,
              conditions: Sequence[str], elapsed_s: float) -> dict[str, Any]:
    """The probe's numbers, every one with the number of draws it rests on."""
    per_shot = []
    for shots, by_condition in runs.items():
        table = condition_table(by_condition, ["accuracy"], [REAL, CLASSIC])
        per_class = {c: {name: spread([r["per_class"][i] for r in by_condition[c]]).as_dict()
                         for i, name in enumerate(data.classes)} for c in conditions}
        shares = {c: float(np.mean([r["synthetic_share"] for r in by_condition[c]])) for c in conditions}
        per_shot.append({"shots": shots, **table, "per_class": per_class, "synthetic_share": shares,
                         "runs": {c: [r["accuracy"] for r in by_condition[c]] for c in conditions}})
    return {
        "task": "classify",
        "metrics": ["accuracy"],
        "config": {**asdict(config), "shots": list(config.shots)},
        "medium": data.real.modality,
        "classes": data.classes,
        "conditions": list(conditions),
        "baselines": [REAL, CLASSIC],
        "real": {"path": data.real.path, "examples": len(data.real.examples), "unreadable": len(data.real.unreadable),
                 "training_pool": len(data.pool)},
        "test": {"source": data.test_source, "examples": len(data.test),
                 "per_class": {c: sum(e.label == c for e in data.test) for c in data.classes}},
        "synthetic": {name: {"path": part.path, "examples": len(part.examples), "per_class": part.class_counts(),
                             "unreadable": len(part.unreadable)} for name, part in data.synthetic.items()},
        "results": per_shot,
        "elapsed_s": round(elapsed_s, 2),
    }


def _scored(predictions: np.ndarray, truth: np.ndarray, classes: int, synthetic_share: float) -> dict[str, Any]:
    correct = predictions == truth
    per_class = [float(correct[truth == c].mean()) if (truth == c).any() else float("nan") for c in range(classes)]
    return {"accuracy": float(correct.mean()), "per_class": per_class, "synthetic_share": synthetic_share}


def _input_space(config: ProbeConfig, data: ProbeData) -> InputSpace:
    from pairsynth.media import medium

    name = data.real.modality
    if config.classifier == "linear":
        return EmbeddingSpace(judge=load_judge(name, config.judge), modality=name, views=config.views, seed=config.seed)
    return medium(name).probe_hooks().cnn_space(config.image_size, data.pool)


def load_judge(medium: str, ref: str | None):
    """The CLIP (images) or CLAP (audio) judge whose frozen embeddings the linear probe trains on:
    :func:`pairsynth.judges.load_judge`, the loader every command uses, with ``ref`` as that judge."""
    from pairsynth.judges import JudgeSettings
    from pairsynth.judges import load_judge as load
    from pairsynth.media import medium as spec

    settings = JudgeSettings(**({spec(medium).judge: ref} if ref else {}))
    return load(medium, settings, device="cpu")


def probe_to_folder(real: str | Path, synthetic: Sequence[str | Path], out: str | Path, config: ProbeConfig, *,
                    task: str = "classify", test: str | Path | None = None, labels: str | Path | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """What ``pairsynth probe`` does: run the probe for ``task`` and write ``summary.json`` + ``index.html`` to ``out``.

    Args:
        real, synthetic, config, test: as for :func:`run_probe`.
        out: the report folder.
        task: ``classify`` (labeled data) or ``retrieval`` (caption ↔ sample, for pair datasets).
        labels: a caption → label map file (JSON or CSV), for ``classify``.
        on_progress: called with (runs done, runs in all).
    """
    from pairsynth.probe.labeled import read_label_map
    from pairsynth.probe.report import write_report

    if task == "classify":
        label_map = read_label_map(labels) if labels is not None else None
        summary = run_probe(real, synthetic, config, test=test, label_map=label_map, on_progress=on_progress)
    elif task == "retrieval":
        from pairsynth.probe.retrieval import run_retrieval

        summary = run_retrieval(real, synthetic, config, test=test, on_progress=on_progress)
    else:
        raise ProbeError(f"--task {task!r} is unknown; use classify or retrieval")
    write_report(summary, out)
    return summary
