"""Chaining, seeding and serializing transforms, and handing results to the scoring stages.

:func:`augment` is the one way in: a sample, the transforms and a seed give an :class:`Augmented`
(the new sample, or ``None`` with a reason when a transform dropped the pair, plus the record of
every draw). Everything random is drawn from the seed, so the same seed gives the same output.

Seeds are the caller's business, as for generation: derive one per (source pair, copy) with
:func:`derive_augment_seed`, so a pair's augmentations do not depend on batch order, worker count or
which other pairs are in the dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pairsynth.augment.audio_transforms import Gain, PitchShift, TimeShift, TimeStretch
from pairsynth.augment.sample import Applied, AugmentRecord, Augmented, Drop, Sample, as_float_image
from pairsynth.augment.transforms import ColorJitter, HorizontalFlip, RandomCrop, Transform, VerticalFlip

if TYPE_CHECKING:
    from pairsynth.candidates import Candidate

_BUILTIN: dict[str, type[Transform]] = {
    cls.name: cls
    for cls in (HorizontalFlip, VerticalFlip, RandomCrop, ColorJitter, TimeShift, TimeStretch, Gain, PitchShift)
}
_REGISTERED: dict[str, type[Transform]] = {}


def register_transform(cls: type[Transform]) -> type[Transform]:
    """Make a user-defined transform class loadable by name (``from_dict``, recipes); usable as a decorator.

    Raises:
        ValueError: If the name is taken by another class.
    """
    known = {**_BUILTIN, **_REGISTERED}
    if known.get(cls.name, cls) is not cls:
        raise ValueError(f"transform name {cls.name!r} is already taken by {known[cls.name].__name__}")
    _REGISTERED[cls.name] = cls
    return cls


def list_transforms() -> list[str]:
    """The names ``from_dict`` and recipes accept."""
    return sorted({**_BUILTIN, **_REGISTERED})


def transform_from_dict(data: Mapping[str, Any]) -> Transform:
    """Build a transform from its dict form (``{"name": "gain", "db": [-6, 6]}``).

    Raises:
        ValueError: On an unknown name (listing the known ones) or an unknown or invalid argument.
    """
    settings = dict(data)
    name = settings.pop("name", None)
    known = {**_BUILTIN, **_REGISTERED}
    if name not in known:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(sorted(known))}")
    try:
        return known[name](**settings)
    except TypeError as err:
        raise ValueError(f"transform {name!r}: {err}") from None


class Compose:
    """An ordered chain of transforms, applied with one seed.

    Args:
        transforms: the transforms, or their dict forms.
    """

    def __init__(self, transforms: Sequence[Transform | Mapping[str, Any]]) -> None:
        self.transforms: tuple[Transform, ...] = tuple(
            t if isinstance(t, Transform) else transform_from_dict(t) for t in transforms)

    def __call__(self, sample: Sample, seed: int) -> Augmented:
        return augment(sample, self, seed)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Compose) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"Compose({list(self.transforms)!r})"

    def to_list(self) -> list[dict[str, Any]]:
        """The chain as a recipe lists it: one dict per transform."""
        return [transform.to_dict() for transform in self.transforms]

    def to_dict(self) -> dict[str, Any]:
        return {"transforms": self.to_list()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Compose:
        """Rebuild from :meth:`to_dict` or :meth:`to_list` output."""
        return cls(data["transforms"] if isinstance(data, Mapping) else data)


def augment(sample: Sample, transforms: Transform | Sequence[Transform] | Compose, seed: int) -> Augmented:
    """Apply ``transforms`` in order to every modality of ``sample``, drawing everything from ``seed``.

    Each transform gets its own random stream, spawned from ``seed`` by its position in the chain:
    its draws do not depend on what the transforms before it drew or whether they ran, so changing
    one transform's range leaves the others' draws as they were. Per transform: skip it if it does
    not apply to these modalities, draw ``p``, draw the params once, check the caption rules, then
    apply the params to image, audio, boxes and caption together.

    Returns:
        The augmented sample and its :class:`AugmentRecord`; when a transform drops the pair, the
        sample is ``None`` and the record says which transform and why.
    """
    # 1. Check inputs
    chain = [transforms] if isinstance(transforms, Transform) else list(transforms)
    for position, transform in enumerate(chain):
        if not isinstance(transform, Transform):
            raise ValueError(f"augment: transforms[{position}] is a {type(transform).__name__}, not a Transform")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"augment: seed={seed!r}; must be an int in [0, 2**63)")
    seed = int(seed)
    # 2. Run the chain, one spawned stream per transform
    current, steps = sample, []
    for position, transform in enumerate(chain):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(position,)))
        result, step = _run_one(transform, current, rng)
        steps.append(step)
        if isinstance(result, Drop):
            record = AugmentRecord(seed=seed, caption_before=sample.caption, caption_after=sample.caption,
                                   steps=tuple(steps), modality=sample.modality, status="dropped",
                                   reason=result.reason, detail=f"{transform.name}: {result.detail}",
                                   flags=current.flags[len(sample.flags):])
            return Augmented(None, record)
        current = result
    # 3. Record
    flags = current.flags[len(sample.flags):]
    record = AugmentRecord(seed=seed, caption_before=sample.caption, caption_after=current.caption, steps=tuple(steps),
                           modality=sample.modality, status="flagged" if flags else "ok", flags=flags)
    return Augmented(current.replace(history=sample.history + tuple(steps)), record)


def _run_one(transform: Transform, sample: Sample, rng: np.random.Generator) -> tuple[Sample | Drop, Applied]:
    reason = transform.not_applicable(sample)
    if reason is not None:
        return sample, Applied(name=transform.name, applied=False, note=f"not applicable: {reason}")
    if rng.random() >= transform.p:
        return sample, Applied(name=transform.name, applied=False, note=f"not drawn (p={transform.p:g})")
    params = transform.get_params(rng, sample)
    edit = transform.edit_caption(sample.caption, params)
    note = transform.unchecked(sample)
    if edit.invalidated:
        words = ", ".join(repr(word) for word in edit.invalidated)
        message = f"this draw makes {words} untrue"
        if transform.on_invalid == "skip":
            return sample, Applied(name=transform.name, params=params, applied=False, note=f"skipped: {message}")
        if transform.on_invalid == "drop":
            return Drop("caption_invalidated", message), Applied(name=transform.name, params=params, note=message)
        sample = sample.replace(flags=sample.flags + (f"caption_invalidated: {message} ({transform.name})",))
    result = transform.apply(sample, params)
    if isinstance(result, Drop):
        return result, Applied(name=transform.name, params=params, note=f"{result.reason}: {result.detail}")
    return result, Applied(name=transform.name, params=params, caption_swaps=edit.swaps, note=note)


def derive_augment_seed(seed: int, key: str, copy_index: int) -> int:
    """The seed of one augmented copy, from the run's seed, the source pair's key and the copy index.

    Like :func:`pairsynth.candidates.derive_seed`, it depends on the pair's identity rather than its
    position, so batching, ordering and the rest of the dataset never change a pair's augmentations.
    """
    digest = hashlib.sha256(f"{seed}\x1faugment\x1f{key}\x1f{copy_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def augment_copies(sample: Sample, transforms: Transform | Sequence[Transform] | Compose, *, seed: int, key: str,
                   copies: int) -> list[Augmented]:
    """``copies`` independent augmentations of one pair, seeded by :func:`derive_augment_seed`."""
    if copies < 1:
        raise ValueError(f"augment_copies: copies={copies}; must be >= 1")
    return [augment(sample, transforms, derive_augment_seed(seed, key, i)) for i in range(copies)]


def to_candidate(result: Augmented, *, source_key: str, caption_index: int = 0, sample_index: int = 0,
                 provenance: Mapping[str, Any] | None = None) -> Candidate:
    """Wrap an augmentation result as a :class:`~pairsynth.candidates.Candidate`.

    A kept result can then go through the run's own stages (``score_candidates``,
    ``accept_candidates``, ``write_candidates``) and be re-scored by CLIP/CLAP exactly like a generated
    pair. A dropped result becomes an already-rejected candidate without media, with the drop's
    reason: write it to the manifest only, never to the score stage. Either way the manifest row
    carries the whole :class:`AugmentRecord` under ``augment``.

    Args:
        result: what :func:`augment` returned.
        source_key: the key of the pair that was augmented; part of the new key.
        caption_index: position of the caption among the run's captions, for the manifest.
        sample_index: which copy this is, for the manifest.
        provenance: extra provenance (the source's model, revision …) to keep in the row.
    """
    from pairsynth.alignment.acceptance import Decision
    from pairsynth.candidates import Candidate, Condition, sample_key

    record = result.record
    provenance = {**(provenance or {}), "augment": record.as_dict()}
    identity = {"source_key": source_key, "augment": [step.as_dict() for step in record.steps]}
    key = sample_key(record.caption_after, identity, record.seed)
    condition = Condition(caption=record.caption_after, caption_index=caption_index, sample_index=sample_index,
                          seed=record.seed, source=source_key)
    candidate = Candidate(condition=condition, key=key, provenance=provenance, lineage={"key": source_key})
    sample = result.sample
    if sample is None:
        # No media, so Candidate.modality cannot tell; the row's provenance keys override it.
        candidate.provenance["modality"] = record.modality
        candidate.decision = Decision.reject(record.reason or "dropped", record.detail or "")
        return candidate
    candidate.image = None if sample.image is None else as_float_image(sample.image)
    candidate.audio, candidate.sample_rate = sample.audio, sample.sample_rate
    candidate.notes.extend(f"augmentation flag: {flag}" for flag in record.flags)
    return candidate
