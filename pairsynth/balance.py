"""``pairsynth balance``: fill a lopsided dataset's rare classes, up to a target count per class.

1. Read the dataset and find each item's class (a ``label`` column, the item's subfolder, or its
   caption); 2. count the classes and decide what each one misses; 3. run one unit per missing item
   on the run engine (:mod:`pairsynth.run`): text→X from the class's prompt templates, the class's
   concept token standing for its name when a concept folder of that name is given, and/or (``method``
   ``vary``/``both``) SDEdit variations of the class's own real items, prompted the same way; each
   judged like ``generate`` (the class's prompt must outrank every other class's); 4. write the new
   items laid out like the source (``<class>/`` subfolders or a label column), each row
   ``synthetic: true`` with its lineage (the method; for a variation, the item varied and the
   strength), and report the class counts before and after.

A killed run resumes from its last commit (the engine's rules): no item lost, none duplicated.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.candidates import Candidate, Condition
from pairsynth.errors import PairsynthError
from pairsynth.judges import JudgeSettings, load_judge
from pairsynth.media import medium
from pairsynth.readers import PairRecord, ReadError, read_pairs, warn_unreadable
from pairsynth.recipe import GeneratorConfig
from pairsynth.run import Backend, OutputSpec, RunSummary, run_job
from pairsynth.stages import CaptionState, Plan, StageTimes, generate_candidates, score_candidates
from pairsynth.vary import denoising_problem

logger = logging.getLogger(__name__)

ClassSource = Literal["auto", "label", "folder", "caption"]
Method = Literal["text", "vary", "both"]
"""How a missing item is made: text→X from the class's prompt, a variation of one of the class's own
items, or the two alternating (even units text, odd units variations)."""


class BalanceError(PairsynthError, ValueError):
    """The dataset or the balance settings cannot be used."""


class BalanceConfig(BaseModel):
    """What ``pairsynth balance`` takes; the CLI's flags fill it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_per_class: int | None = Field(None, ge=1, description="items wanted per class")
    target_ratio: float | None = Field(None, gt=0.0, le=1.0, description="or: this fraction of the largest class")
    class_from: ClassSource = "auto"
    templates: list[str] | None = Field(None, description="prompt templates with {label}; default by class source")
    classes: list[str] | None = Field(None, description="fill only these classes")
    concepts: list[Path] = Field(default_factory=list, description="concept folders, each named after its class")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    judges: JudgeSettings = Field(default_factory=JudgeSettings)
    method: Method = Field("text", description="text→X, variations of the class's own items, or both, alternating")
    strength: float = Field(0.35, gt=0.0, le=1.0, description="SDEdit strength of variations: 0 keeps the item, "
                            "1 ignores it")
    max_attempts: int = Field(4, ge=1, description="candidates per missing item at most")
    seed: int = Field(0, ge=0, lt=2**63)
    device: str = "auto"
    commit_every: int = Field(64, ge=1)
    report: bool = True

    @model_validator(mode="after")
    def _check(self) -> BalanceConfig:
        problem = denoising_problem(self.generator.steps, self.strength) if self.method != "text" else None
        if problem:
            raise ValueError(problem)
        return self


@dataclass(frozen=True, kw_only=True)
class VariationSettings:
    """What a medium's ``load_varier`` reads: the generator's sampling at the variations' SDEdit strength."""

    strength: float
    steps: int
    guidance_scale: float
    negative_prompt: str | None
    scheduler: str


@dataclass(frozen=True, kw_only=True)
class ClassPlan:
    """One class: how many items it has, how many it gets, and the prompts that make them."""

    name: str
    count: int
    missing: int
    prompts: tuple[str, ...]
    concept: str | None = None  # the token standing for the class name


@dataclass(kw_only=True)
class Census:
    """The dataset's classes as read: medium, where classes come from, and how they are laid out."""

    medium: str
    source: str
    counts: Counter
    subfolders: dict[str, str] = field(default_factory=dict)  # class -> its folder, for the folder layout
    label_column: str | None = None
    items: dict[str, list[PairRecord]] = field(default_factory=dict)  # class -> its readable items, in order
    unreadable: list[tuple[ReadError, str | None]] = field(default_factory=list)  # with its class when known


class BalanceJob:
    """A dataset's missing items as a run-engine job: one unit per missing item, ``k = 1`` each.

    Raises:
        BalanceError: an item a variation would be made of cannot be read.
    """

    def __init__(self, source: Path, census: Census, classes: Sequence[ClassPlan], config: BalanceConfig) -> None:
        self.source, self.classes, self.config = source, list(classes), config
        varied = variation_sources(census, self.classes, config.method)
        self.census = replace(census, items={}, unreadable=[])  # workers get only the varied items' media
        self.sources = {unit: medium(census.medium).record_input(record) for unit, record in varied.items()}
        self.varied = {unit: {"key": record.key, "file": _relative(source, record.source)}
                       for unit, record in varied.items()}
        self.k = 1
        self.batch_size = config.generator.batch_size
        self.plan = Plan(k=1, budget=config.max_attempts, seed=config.seed, chunk_size=config.commit_every)
        self.rule = AcceptanceRule({}, 1, False)  # the class's prompt must outrank every other class's
        self.output = OutputSpec(formats=[f"balanced-{census.medium}folder"], report=config.report,
                                 generation_device=config.device)
        self.distractors = {census.medium: list(dict.fromkeys(c.prompts[0] for c in self.classes))}
        self.generator: Any = None
        self.varier: Any = None
        self.scorer: Any = None
        self._given: tuple[Any, Any, Any] = (None, None, None)  # models passed in (tests): workers get them as they are
        self._by_unit = {unit: (plan, index) for plan in self.classes for index, unit in enumerate(_units(plan))}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for workers) without the models :meth:`load` made: each worker loads its own."""
        state = dict(self.__dict__)
        state["generator"], state["varier"], state["scorer"] = self._given
        return state

    def check(self, out_dir: Path) -> None:
        """The dataset, targets and concepts were checked while planning; here, the output folder."""
        from pairsynth.checks import check_output_dir

        check_output_dir(out_dir, inputs=[self.source])

    def fingerprint(self) -> str:
        import hashlib

        config = self.config.model_dump(mode="json", exclude={"device", "commit_every"})
        if config["method"] == "text":  # strength is unused; and text runs from before stay resumable
            del config["method"], config["strength"]
        data = {"source": str(self.source.resolve()), "classes": [(c.name, c.count, c.missing, c.prompts, c.concept)
                                                                  for c in self.classes],
                "config": config}
        if self.varied:
            data["varied"] = {unit: item["key"] for unit, item in self.varied.items()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def class_of(self, unit: str) -> str:
        return self._by_unit[unit][0].name

    def units(self) -> dict[str, CaptionState]:
        states = {}
        for unit, (plan, index) in self._by_unit.items():
            states[unit] = CaptionState(caption=plan.prompts[index % len(plan.prompts)], index=len(states), source=unit)
        return states

    def unit_of(self, row: Mapping[str, Any]) -> str | None:
        return (row.get("source") or {}).get("unit")

    def first_rows(self) -> list[dict[str, Any]]:
        return []

    def summarize(self, run: RunSummary) -> BalanceSummary:
        """Class counts before and after ``run``."""
        added = Counter(self.class_of(state.key) for state in run.captions if state.accepted)
        before = dict(self.census.counts)
        return BalanceSummary(before=before, after={name: count + added[name] for name, count in before.items()},
                              target=max((p.count + p.missing for p in self.classes), default=0), run=run)

    def report_run(self, summary: RunSummary) -> dict[str, Any]:
        """The report's class table, as ``balance.json`` has it."""
        return {"classes": self.summarize(summary).rows()}

    def load(self) -> None:
        """What the units need (the text→X generator, the variation model, both) with the classes'
        concepts, and the medium's judge; each unless given."""
        from pairsynth.concepts.judging import concept_judges

        config, m = self.config, medium(self.census.medium)
        model = config.generator.model or m.default_generator
        if self.generator is None and len(self.sources) < len(self._by_unit):
            self.generator = m.load_generator(model, config.generator, config.device)
            self.generator.load_concepts(config.concepts)
        if self.varier is None and self.sources:
            sampling = config.generator
            settings = VariationSettings(strength=config.strength, steps=sampling.steps,
                                         guidance_scale=sampling.guidance_scale,
                                         negative_prompt=sampling.negative_prompt, scheduler=sampling.scheduler)
            self.varier = m.load_varier(model, settings, config.device)
            self.varier.load_concepts(config.concepts)
        if self.scorer is None:
            self.scorer = load_judge(self.census.medium, config.judges, device=config.device)
        self.scorer = concept_judges({m.name: self.scorer}, {m.name: self.generator or self.varier})[m.name]

    def make(self, conditions: Sequence[Condition], times: StageTimes) -> list[Candidate]:
        name, size = self.census.medium, self.config.generator.batch_size
        varied = [c for c in conditions if c.unit in self.sources]
        texts = [c for c in conditions if c.unit not in self.sources]
        made = ((generate_candidates({name: self.varier}, varied, size, sources=self.sources) if varied else [])
                + (generate_candidates({name: self.generator}, texts, size) if texts else []))
        order = {id(condition): position for position, condition in enumerate(conditions)}
        candidates = sorted(made, key=lambda candidate: order[id(candidate.condition)])
        for candidate in candidates:
            unit = candidate.condition.unit
            plan, _ = self._by_unit[unit]
            variation = ({"item": self.varied[unit], "strength": self.config.strength} if unit in self.varied else {})
            candidate.lineage = {"unit": unit, "class": plan.name, "method": "vary" if variation else "text",
                                 **variation, "prompt": candidate.caption,
                                 **({"concept": plan.concept} if plan.concept else {}),
                                 "balance": {"class": plan.name, "subfolder": self.census.subfolders.get(plan.name),
                                             "label_column": self.census.label_column}}
        return candidates

    def judge(self, candidates: Sequence[Candidate], times: StageTimes) -> list[Decision | None]:
        return score_candidates({self.census.medium: self.scorer}, candidates, self.distractors)


@dataclass(kw_only=True)
class BalanceSummary:
    """Class counts before and after, and the run's own summary."""

    before: dict[str, int]
    after: dict[str, int]
    target: int
    run: RunSummary

    def table(self) -> list[tuple[str, int, int, int]]:
        """``(class, before, added, after)`` rows, in the dataset's order."""
        return [(name, count, self.after[name] - count, self.after[name]) for name, count in self.before.items()]

    def rows(self) -> list[dict[str, Any]]:
        """:meth:`table` as ``{"class", "before", "added", "after"}`` records (``balance.json``, the report)."""
        return [dict(zip(("class", "before", "added", "after"), row)) for row in self.table()]


def balance_dataset(source: str | Path, out_dir: str | Path, config: BalanceConfig, *, overwrite: bool = False,
                    generator: Any = None, varier: Any = None, scorer: Any = None, backend: Backend | None = None,
                    on_progress: Any = None) -> BalanceSummary:
    """Generate what the rare classes of ``source`` miss; see the module docstring.

    Args:
        source: an imagefolder/audiofolder (or a folder of media with ``.txt`` captions).
        out_dir: the new items (laid out like ``source``), the manifest and the report; re-run to resume.
        config: targets, class source, templates, concepts, method, generator and judges.
        generator, varier, scorer: already-loaded models to use instead of the configured ones (tests).
        backend: where the models run (default: this process; see :mod:`pairsynth.backends`).
    """
    # 1.-2. Read the dataset, count classes, decide what each misses (before any model loads).
    source = Path(source)
    census = read_census(source, config.class_from)
    plans = plan_classes(census, config)
    job = BalanceJob(source, census, plans, config)
    job.generator, job.varier, job.scorer = job._given = generator, varier, scorer
    # 3. Run the missing items on the engine.
    summary = run_job(job, out_dir, overwrite=overwrite, backend=backend, on_progress=on_progress)
    # 4. Count what was added, per class; write the before/after table.
    result = job.summarize(summary)
    (Path(out_dir) / "balance.json").write_text(json.dumps(
        {"class_from": census.source, "target": result.target, "classes": result.rows()}, indent=2) + "\n")
    for name, count, new, total in result.table():
        logger.debug("class %s: %d → %d (+%d)", name, count, total, new)  # the CLI prints the table
    return result


def read_census(source: Path, class_from: ClassSource) -> Census:
    """Read ``source`` and count its classes.

    Raises:
        BalanceError: nothing readable, images mixed with audio, or no class source that fits.
    """
    items = list(read_pairs(source, folder_captions=True))  # class subfolders need no captions
    records = [item for item in items if not isinstance(item, ReadError)]
    unreadable = [item for item in items if isinstance(item, ReadError)]
    if not records:
        raise BalanceError(f"{source}: no readable pairs; balance reads an imagefolder/audiofolder "
                           "(metadata.jsonl), class subfolders, or media files with .txt captions")
    warn_unreadable(source, unreadable)  # not counted in any class
    media = Counter(record.modality for record in records)
    if len(media) > 1 or "triplet" in media:
        raise BalanceError(f"{source}: mixes {', '.join(f'{n} {m}' for m, n in media.items())} items; "
                           "balance fills one medium's classes")
    name = next(iter(media))
    folders = {record.key: _folder(source, record) for record in records}
    if class_from == "auto":
        class_from = ("label" if all(r.label is not None for r in records)
                      else "folder" if all(folders.values()) else "caption")
    if class_from == "label":
        missing = [r.key for r in records if r.label is None]
        if missing:
            raise BalanceError(f"{source}: item {missing[0]} has no label/class/category column; "
                               "use --class-from folder or caption")
        classes = [str(r.label) for r in records]
        column = next(c for c in ("label", "class", "category") if _has_column(source, c))
        return Census(medium=name, source="label", counts=Counter(classes), label_column=column,
                      items=_by_class(records, classes), unreadable=[(error, None) for error in unreadable])
    if class_from == "folder":
        missing = [r.key for r in records if not folders[r.key]]
        if missing:
            raise BalanceError(f"{source}: item {missing[0]} is not in a class subfolder; use --class-from label or caption")
        classes = [folders[r.key] for r in records]
        return Census(medium=name, source="folder", counts=Counter(classes), subfolders={c: c for c in classes},
                      items=_by_class(records, classes),
                      unreadable=[(error, _folder(source, error)) for error in unreadable])
    classes = [r.caption for r in records]
    return Census(medium=name, source="caption", counts=Counter(classes), items=_by_class(records, classes),
                  unreadable=[(error, None) for error in unreadable])


def plan_classes(census: Census, config: BalanceConfig) -> list[ClassPlan]:
    """What each class misses, and its prompts (a concept's token standing for the class name)."""
    if (config.target_per_class is None) == (config.target_ratio is None):
        raise BalanceError("give one of --target-per-class N or --target-ratio R")
    largest = max(census.counts.values())
    target = config.target_per_class or math.ceil(config.target_ratio * largest)  # type: ignore[operator]
    known = list(census.counts)
    for name in config.classes or []:
        if name not in census.counts:
            raise BalanceError(f"--class {name!r}: no such class in the dataset; classes: {', '.join(known)}")
    tokens = _concept_tokens(config.concepts, known)
    templates = config.templates or [medium(census.medium).class_templates[census.source]]
    for template in templates:
        if "{label}" not in template:
            raise BalanceError(f"--template {template!r}: a template must contain {{label}}")
    plans = []
    for name, count in census.counts.items():
        wanted = config.classes is None or name in config.classes
        word = tokens.get(name, name.replace("_", " "))
        prompts = tuple(t.replace("{label}", word) for t in templates)
        plans.append(ClassPlan(name=name, count=count, missing=max(0, target - count) if wanted else 0, prompts=prompts,
                               concept=tokens.get(name)))
    return plans


def variation_sources(census: Census, plans: Sequence[ClassPlan], method: Method) -> dict[str, PairRecord]:
    """Unit → the class's real item it is a variation of (none for text→X units).

    A class's n-th variation varies its items round-robin, in dataset order: with ``vary`` every unit
    is a variation (n = the unit's index), with ``both`` the odd units are (n = index // 2) and the
    even ones text→X.

    Raises:
        BalanceError: an item of a class to vary (or of no class known) cannot be read.
    """
    if method == "text":
        return {}
    filled = {plan.name for plan in plans if plan.missing}
    for error, name in census.unreadable:
        if name is None or name in filled or name not in census.counts:  # its class's only items, perhaps
            raise BalanceError(f"--method {method} varies each class's own items, and {error.source} cannot be read "
                               f"({error.reason}); fix or remove it, or use --method text")
    sources = {}
    for plan in plans:
        items = census.items[plan.name]
        for index, unit in enumerate(_units(plan)):
            if method == "vary" or index % 2:
                sources[unit] = items[(index if method == "vary" else index // 2) % len(items)]
    return sources


def _units(plan: ClassPlan) -> list[str]:
    return [f"balance\x1f{plan.name}\x1f{index}" for index in range(plan.missing)]


def _by_class(records: Sequence[PairRecord], classes: Sequence[str]) -> dict[str, list[PairRecord]]:
    grouped: dict[str, list[PairRecord]] = {}
    for record, name in zip(records, classes):
        grouped.setdefault(name, []).append(record)
    return grouped


def _relative(root: Path, source: str) -> str:
    """An item's file relative to the dataset root (as the source's own rows name it), when inside it."""
    path, _, member = source.partition("#")
    try:
        relative = Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return source
    return f"{relative}#{member}" if member else relative


def _concept_tokens(folders: Sequence[Path], classes: Sequence[str]) -> dict[str, str]:
    """Class → token of the concept folder named after it; a folder naming no class is an error."""
    from pairsynth.concepts.card import ConceptCard

    tokens = {}
    for folder in folders:
        card = ConceptCard.read(folder)
        name = next((c for c in classes if c in (folder.name, card.words, card.token.strip("<>"))), None)
        if name is None:
            raise BalanceError(f"--concepts {folder}: no class named {folder.name!r} (or {card.words!r}) in the "
                               f"dataset; classes: {', '.join(classes)}")
        tokens[name] = card.token
    return tokens


def _folder(root: Path, record: PairRecord | ReadError) -> str | None:
    """The class subfolder an item sits in, directly under the dataset root (``None`` if at the root)."""
    path = Path(record.source.split("#", 1)[0])
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


def _has_column(root: Path, column: str) -> bool:
    for metadata in root.rglob("metadata.jsonl"):
        with open(metadata, encoding="utf-8") as handle:
            first = handle.readline()
        if first.strip() and column in json.loads(first):
            return True
    return False
