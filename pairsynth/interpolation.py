"""A recipe's ``interpolate:`` as run units: points on the path between two captions' samples.

For each caption pair ``[a, b]`` and each weight ``w`` of ``steps`` evenly spaced ones (0 and 1
included), one unit asks for ``k`` accepted samples like a caption does. Sample ``j`` of every point
of a pair uses the same two seeds, those of sample ``j`` of captions ``a`` and ``b`` in a plain run
(:func:`pairsynth.candidates.derive_seed`), so the points of one ``j`` form one path whose ends are
the plain samples.

The caption set a point is judged against (and stored with) is defined as its **nearer endpoint's
caption** (``a`` for ``w < 0.5``, else ``b``), with both endpoints among the retrieval distractors:
a point is accepted when the judge places it on the side of the path it is nearer to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pairsynth.candidates import Condition, derive_seed
from pairsynth.modalities.noise_paths import Blend
from pairsynth.recipe import InterpolateConfig


@dataclass(frozen=True, kw_only=True)
class PathPoint:
    """One unit of an interpolation: a caption pair and a weight."""

    caption_a: str
    caption_b: str
    weight: float
    what: str

    @property
    def unit(self) -> str:
        """The run unit's key (what ``k`` counts per, and what the manifest row records)."""
        return f"interpolate\x1f{self.caption_a}\x1f{self.caption_b}\x1f{self.weight:.6f}\x1f{self.what}"

    @property
    def caption(self) -> str:
        return self.caption_a if self.weight < 0.5 else self.caption_b


def path_points(config: InterpolateConfig | None) -> list[PathPoint]:
    """Every point of every path the recipe asks for, in order."""
    if config is None:
        return []
    weights = [i / (config.steps - 1) for i in range(config.steps)]
    return [PathPoint(caption_a=a, caption_b=b, weight=w, what=config.what) for a, b in config.between for w in weights]


def endpoint_captions(config: InterpolateConfig | None) -> list[str]:
    """The endpoints' captions, distractors of every point's retrieval check."""
    return list(dict.fromkeys(c for pair in (config.between if config else []) for c in pair))


def attach_blends(conditions: Sequence[Condition], points: Sequence[PathPoint], seed: int) -> list[Condition]:
    """Give each interpolation point's condition its two endpoint seeds and weight (plain ones pass unchanged)."""
    by_unit = {point.unit: point for point in points}
    attached = []
    for condition in conditions:
        point = by_unit.get(condition.source) if condition.source else None
        if point is None:
            attached.append(condition)
            continue
        blend = Blend(prompt_a=point.caption_a, prompt_b=point.caption_b,
                      seed_a=derive_seed(seed, point.caption_a, condition.sample_index),
                      seed_b=derive_seed(seed, point.caption_b, condition.sample_index), weight=point.weight,
                      what=point.what)  # type: ignore[arg-type]
        attached.append(dataclasses.replace(condition, seed=blend.generator_seed, blend=blend))
    return attached


def generate_batch(generator: Any, prompts: Sequence[str], seeds: Sequence[int],
                   blends: Sequence[Blend | None]) -> list[Any]:
    """Plain conditions through ``generate``, interpolation points through ``generate_blended``, in order."""
    if not any(blends):
        return generator.generate(prompts, seeds)
    if not hasattr(generator, "generate_blended"):
        raise ValueError(f"{type(generator).__name__} cannot interpolate between samples")
    plain = [i for i, blend in enumerate(blends) if blend is None]
    mixed = [i for i, blend in enumerate(blends) if blend is not None]
    outputs: list[Any] = [None] * len(blends)
    for i, output in zip(plain, generator.generate([prompts[i] for i in plain], [seeds[i] for i in plain]) if plain else []):
        outputs[i] = output
    for i, output in zip(mixed, generator.generate_blended([blends[i] for i in mixed])):
        outputs[i] = output
    return outputs


def blend_record(blend: Blend, unit: str) -> dict[str, Any]:
    """What the manifest records of a point: both endpoints' captions and seeds, the weight, what was mixed."""
    return {"between": [blend.prompt_a, blend.prompt_b], "seeds": [blend.seed_a, blend.seed_b],
            "weight": blend.weight, "what": blend.what, "unit": unit}
