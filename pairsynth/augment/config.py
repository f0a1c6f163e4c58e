"""The recipe side of augmentation: pydantic models for a YAML list of transforms.

.. code-block:: yaml

    augment:
      copies: 2
      transforms:
        - {name: hflip, p: 0.5}
        - {name: crop, scale: [0.6, 1.0]}
        - {name: gain, db: [-6, 6]}
        - name: pitch_shift
          semitones: [-3, 3]
          rules: [{invalidates: [low, high], when: {param: semitones, at_least: 2, absolute: true}}]

One model per built-in transform mirrors its constructor (``extra="forbid"``: a misspelt key is an
error, not a silently ignored setting), and each item is also built once while validating, so a bad
range is reported at its item before anything runs. A name that is not built in is looked up among
the transforms registered with :func:`~pairsynth.augment.compose.register_transform`; an unknown one
is an error listing the known names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from pairsynth.augment.compose import Compose, transform_from_dict
from pairsynth.augment.transforms import Transform
from pairsynth.config_files import describe_error, read_yaml
from pairsynth.errors import RecipeError

Range = tuple[float, float]
OnCut = Literal["drop", "flag"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WhenSpec(_Strict):
    """When a caption rule fires: a bound on one drawn parameter."""

    param: str
    at_least: float | None = None
    at_most: float | None = None
    absolute: bool = Field(False, description="compare the absolute value")


class CaptionRuleSpec(_Strict):
    """One caption rule: words to swap and words the draw makes untrue."""

    swaps: dict[str, str] = Field(default_factory=dict)
    invalidates: list[str] = Field(default_factory=list)
    when: WhenSpec | None = None


class _TransformSpec(_Strict):
    p: float = Field(1.0, ge=0.0, le=1.0, description="probability that the transform runs")
    rules: list[CaptionRuleSpec] = Field(default_factory=list, description="caption rules added to the built-in ones")
    default_rules: bool = Field(True, description="keep the transform's built-in caption rules")
    on_invalid: Literal["skip", "drop", "flag"] = "skip"

    @model_validator(mode="after")
    def _buildable(self) -> _TransformSpec:
        self.build()  # the constructor's own checks (ranges, rule conflicts), reported at this item
        return self

    def build(self) -> Transform:
        """The transform this item describes."""
        return transform_from_dict(self.model_dump(mode="json"))


class HorizontalFlipSpec(_TransformSpec):
    name: Literal["hflip"]
    p: float = Field(0.5, ge=0.0, le=1.0)


class VerticalFlipSpec(_TransformSpec):
    name: Literal["vflip"]
    p: float = Field(0.5, ge=0.0, le=1.0)


class RandomCropSpec(_TransformSpec):
    name: Literal["crop"]
    scale: Range = Field((0.6, 1.0), description="window area as a fraction of the image's")
    resize: bool = Field(True, description="zoom the window back to the input size")
    min_visibility: float = Field(0.6, ge=0.0, le=1.0)
    check_side: bool = True
    on_cut: OnCut = "drop"


class ColorJitterSpec(_TransformSpec):
    name: Literal["color_jitter"]
    brightness: Range = (0.8, 1.2)
    contrast: Range = (0.8, 1.2)
    saturation: Range = (0.8, 1.2)
    hue: Range = Field((0.0, 0.0), description="rotation in turns, within [-0.5, 0.5]")


class TimeShiftSpec(_TransformSpec):
    name: Literal["time_shift"]
    shift_s: Range = (-0.1, 0.1)
    mode: Literal["pad", "roll"] = "pad"
    min_kept: float = Field(0.8, ge=0.0, le=1.0)
    on_cut: OnCut = "drop"


class TimeStretchSpec(_TransformSpec):
    name: Literal["time_stretch"]
    rate: Range = (0.9, 1.1)
    keep_length: bool = True
    min_kept: float = Field(0.8, ge=0.0, le=1.0)
    on_cut: OnCut = "drop"


class GainSpec(_TransformSpec):
    name: Literal["gain"]
    db: Range = (-6.0, 6.0)
    max_peak: float | None = Field(1.0, gt=0.0)


class PitchShiftSpec(_TransformSpec):
    name: Literal["pitch_shift"]
    semitones: Range = (-2.0, 2.0)


class CustomTransformSpec(BaseModel):
    """A transform registered from Python: its arguments are checked by its constructor."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @model_validator(mode="after")
    def _buildable(self) -> CustomTransformSpec:
        self.build()
        return self

    def build(self) -> Transform:
        return transform_from_dict(self.model_dump(mode="json"))


BUILTIN_SPECS: dict[str, type[_TransformSpec]] = {
    get_args(spec.model_fields["name"].annotation)[0]: spec
    for spec in (HorizontalFlipSpec, VerticalFlipSpec, RandomCropSpec, ColorJitterSpec, TimeShiftSpec,
                 TimeStretchSpec, GainSpec, PitchShiftSpec)
}


def _tag(value: Any) -> str:
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    return name if name in BUILTIN_SPECS else "custom"


TransformSpec = Annotated[
    Union[tuple(Annotated[spec, Tag(name)] for name, spec in BUILTIN_SPECS.items())  # type: ignore[misc]
          + (Annotated[CustomTransformSpec, Tag("custom")],)],
    Discriminator(_tag),
]


class AugmentConfig(_Strict):
    """The ``augment:`` section of a recipe: which transforms, and how many copies per pair."""

    transforms: list[TransformSpec] = Field(min_length=1)
    copies: int = Field(1, ge=1, le=10_000, description="augmented copies made of each source pair")

    def build(self) -> Compose:
        """The transform chain."""
        return Compose([spec.build() for spec in self.transforms])

    @classmethod
    def from_compose(cls, compose: Compose, copies: int = 1) -> AugmentConfig:
        """The config that rebuilds ``compose`` (what a recipe would list)."""
        return augment_config_from_dict({"transforms": compose.to_list(), "copies": copies})


def augment_config_from_dict(data: dict[str, Any] | list[Any], *, source: str = "augment") -> AugmentConfig:
    """Validate an ``augment`` section; a bare list is taken as its ``transforms``.

    Raises:
        RecipeError: One line per problem, naming the item and field (``augment: transforms[1].db: …``).
    """
    if isinstance(data, list):
        data = {"transforms": data}
    try:
        return AugmentConfig.model_validate(data)
    except ValidationError as err:
        raise RecipeError("\n".join(_describe(error, source) for error in err.errors())) from None


def load_augment_config(path: str | Path) -> AugmentConfig:
    """Read an augmentation config from YAML: a mapping (``transforms:``, ``copies:``) or a bare list."""
    path = Path(path)
    data = read_yaml(path, "augmentation config")
    if isinstance(data, dict) and "augment" in data:
        data = data["augment"]
    if not isinstance(data, (dict, list)):
        raise RecipeError(f"{path}: expected a list of transforms or a mapping with transforms:")
    return augment_config_from_dict(data, source=str(path))


def _describe(error: Any, source: str) -> str:
    loc = list(error["loc"])
    # Drop the union tag pydantic inserts after a list index (transforms.0.gain.db → transforms[0].db).
    loc = [part for i, part in enumerate(loc)
           if not (i and isinstance(loc[i - 1], int) and part in {*BUILTIN_SPECS, "custom"})]
    message = None
    if error["type"] == "model_type" and loc and loc[0] == "transforms":
        message = "each transform is a mapping such as {name: hflip, p: 0.5}"
    return describe_error(error, source, location=loc, message=message)
