"""The SHAPES world: one coloured shape on the left or right of a grey canvas.

It is small enough for tiny models trained on two CPU cores, yet every caption word is visible and
checkable: a shape (3), a colour (4) and a side (2) give 24 captions. The side word makes horizontal
flips meaningful (a flipped image needs a flipped caption). Background greys, sizes and positions
vary but never appear in the caption, so models must learn to ignore them.

Everything derives from :data:`VOCAB`; the caption grammar, the parser and the judges' class lists
all read that one table.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import asdict, dataclass
from types import MappingProxyType

from PIL import Image, ImageDraw

# One table for the whole world. Order matters: it fixes class indices for judges.
VOCAB = MappingProxyType(
    {
        "shape": ("circle", "square", "triangle"),
        "colour": ("red", "green", "blue", "yellow"),
        "position": ("left", "right"),
    }
)
ATTRIBUTES: tuple[str, ...] = tuple(VOCAB)
COLOUR_RGB = MappingProxyType(
    {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
)
BACKGROUND_GREYS: tuple[int, ...] = (70, 110, 150, 190)
CAPTION_TEMPLATE = "a {colour} {shape} on the {position}"
_CAPTION_RE = re.compile(r"^\s*a\s+(?P<colour>\w+)\s+(?P<shape>\w+)\s+on\s+the\s+(?P<position>\w+)\s*\.?\s*$")

DEFAULT_SIZE = 32
_SUPERSAMPLE = 4  # draw large, then downsample: anti-aliased edges are easier for a tiny VAE
_HALF_EXTENT_RANGE = (0.15, 0.21)  # shape half-size as a fraction of the canvas (≈5-7 px at 32)
_MARGIN = 0.03  # keep the shape this far (fraction of canvas) from its half's borders


@dataclass(frozen=True, kw_only=True)
class ShapeScene:
    """Everything needed to render one image; geometry is in fractions of the canvas size.

    Attributes:
        shape: One of ``VOCAB["shape"]``.
        colour: One of ``VOCAB["colour"]``.
        position: ``"left"`` or ``"right"``: the half of the canvas holding the shape's centre.
        background: Grey level 0-255 of the canvas (not in the caption).
        half_extent: Half the shape's width, as a fraction of the canvas.
        cx: Horizontal centre, fraction of the canvas (inside the named half).
        cy: Vertical centre, fraction of the canvas.
    """

    shape: str
    colour: str
    position: str
    background: int = BACKGROUND_GREYS[1]
    half_extent: float = 0.18
    cx: float = 0.25
    cy: float = 0.5

    def __post_init__(self) -> None:
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if value not in VOCAB[name]:
                raise ValueError(f"ShapeScene.{name}={value!r}; accepted: {', '.join(VOCAB[name])}")
        if not 0 <= self.background <= 255:
            raise ValueError(f"ShapeScene.background={self.background}; must be 0-255")

    def attributes(self) -> dict[str, str]:
        """The captioned attributes only (what a judge must recover)."""
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def to_dict(self) -> dict:
        return asdict(self)


def caption(scene: ShapeScene) -> str:
    """The one caption of a scene, e.g. ``"a red circle on the left"``."""
    return CAPTION_TEMPLATE.format(**scene.attributes())


def all_captions() -> list[str]:
    """All 24 captions of the world, in a fixed order (shape, then colour, then position)."""
    return [
        CAPTION_TEMPLATE.format(shape=s, colour=c, position=p)
        for s, c, p in itertools.product(VOCAB["shape"], VOCAB["colour"], VOCAB["position"])
    ]


def world_words() -> list[str]:
    """Every word the caption grammar can produce (for building tokenizers)."""
    grammar_words = re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", CAPTION_TEMPLATE))
    return sorted(set(grammar_words) | {w for values in VOCAB.values() for w in values})


def parse_caption(text: str) -> dict[str, str]:
    """Recover the attributes named by a caption.

    Raises:
        ValueError: If the text does not follow the world's grammar or names an unknown value.
    """
    match = _CAPTION_RE.match(text.lower())
    if match is None:
        raise ValueError(f"caption {text!r} does not match {CAPTION_TEMPLATE!r}")
    found = match.groupdict()
    for name, value in found.items():
        if value not in VOCAB[name]:
            raise ValueError(f"caption {text!r}: unknown {name} {value!r}; accepted: {', '.join(VOCAB[name])}")
    return found


def scene_from_caption(text: str) -> ShapeScene:
    """A canonical scene for a caption: centred in its half, medium size, medium grey."""
    found = parse_caption(text)
    cx = 0.25 if found["position"] == "left" else 0.75
    return ShapeScene(**found, cx=cx)


def one_attribute_off(text: str) -> list[str]:
    """Captions that differ from ``text`` in exactly one attribute (hard negatives, 6 of them)."""
    found = parse_caption(text)
    variants = []
    for name in ATTRIBUTES:
        for value in VOCAB[name]:
            if value != found[name]:
                variants.append(CAPTION_TEMPLATE.format(**{**found, name: value}))
    return variants


def sample_scene(rng: random.Random) -> ShapeScene:
    """Draw attributes uniformly, then jitter size, position and background."""
    shape = rng.choice(VOCAB["shape"])
    colour = rng.choice(VOCAB["colour"])
    position = rng.choice(VOCAB["position"])
    half_extent = rng.uniform(*_HALF_EXTENT_RANGE)
    lo = half_extent + _MARGIN
    hi = 0.5 - half_extent - _MARGIN  # within the left half; mirrored for the right
    cx = rng.uniform(lo, hi)
    if position == "right":
        cx = 1.0 - cx
    cy = rng.uniform(lo, 1.0 - lo)
    return ShapeScene(shape=shape, colour=colour, position=position, background=rng.choice(BACKGROUND_GREYS),
                      half_extent=half_extent, cx=cx, cy=cy)


def render(scene: ShapeScene, size: int = DEFAULT_SIZE, fill: tuple[int, int, int] | None = None) -> Image.Image:
    """Draw a scene as an RGB image of ``size``×``size`` pixels (anti-aliased by supersampling).

    ``fill`` paints the shape in an RGB colour outside the world's four (new-concept renders,
    the colour-widening VAE stage); the scene's colour word is then ignored.
    """
    if size < 8:
        raise ValueError(f"render: size={size} is too small; use at least 8")
    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), (scene.background,) * 3)
    draw = ImageDraw.Draw(image)
    cx, cy, r = scene.cx * big, scene.cy * big, scene.half_extent * big
    fill = fill or COLOUR_RGB[scene.colour]
    if scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif scene.shape == "square":
        s = r * 0.88  # a square of equal area reads as bigger; shrink it a little
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    else:  # triangle, pointing up
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.85), (cx + r, cy + r * 0.85)], fill=fill)
    return image.resize((size, size), Image.Resampling.BOX)


def render_sample(seed: int, size: int = DEFAULT_SIZE) -> tuple[Image.Image, str, ShapeScene]:
    """The seed → sample contract: the same seed always gives the same image, caption and scene."""
    scene = sample_scene(random.Random(seed))
    return render(scene, size), caption(scene), scene
