"""Names of the toy zoo's models and where their weights live inside the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pairsynth.errors import ModelRefError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True, kw_only=True)
class ZooModel:
    """One shipped toy model.

    Attributes:
        name: the name recipes use, e.g. ``toy-shapes``.
        role: what it is for: ``text-to-image``, ``clip``, ``text-to-audio`` or ``clap``.
        real_default: the hub model a GPU user would name in its place.
        description: one line for ``pairsynth models``.
    """

    name: str
    role: str
    real_default: str
    description: str

    @property
    def path(self) -> Path:
        """The folder holding the model in its real format."""
        return WEIGHTS_DIR / self.name

    @property
    def available(self) -> bool:
        """Whether the weights are present (a source checkout before training has none)."""
        return self.path.is_dir() and any(self.path.iterdir())


_MODELS = (
    ZooModel(
        name="toy-shapes",
        role="text-to-image",
        real_default="stabilityai/sd-turbo",
        description="tiny Stable Diffusion pipeline for 32x32 renders of coloured shapes",
    ),
    ZooModel(
        name="toy-digits",
        role="text-to-image",
        real_default="stabilityai/sd-turbo",
        description="tiny Stable Diffusion pipeline of real 8x8 handwritten digits "
                    "(scikit-learn train half, pixels only, no labels)",
        
    ),
    ZooModel(
        name="toy-shapes-clip",
        role="clip",
        real_default="ViT-B-32/laion2b_s34b_b79k",
        description="tiny open_clip model trained contrastively on the shapes world",
    ),
    ZooModel(
        name="toy-sounds",
        role="text-to-audio",
        real_default="cvssp/audioldm-s-full-v2",
        description="tiny AudioLDM pipeline for 1 s, 16 kHz synthesized tones, beeps, chirps and noise",
    ),
    ZooModel(
        name="toy-sounds-clap",
        role="clap",
        real_default="laion/clap-htsat-unfused",
        description="tiny transformers ClapModel trained contrastively on the sounds world",
    ),
)
_BY_NAME = {model.name: model for model in _MODELS}


def list_models(role: str | None = None) -> list[ZooModel]:
    """The zoo's models, optionally only those of one role."""
    return [model for model in _MODELS if role is None or model.role == role]


def zoo_model(name: str) -> ZooModel:
    """Look a toy model up by name; an unknown name raises, listing the known ones."""
    try:
        model = _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ModelRefError(f"unknown toy model {name!r}; the zoo has: {known}") from None
    if not model.available:
        raise ModelRefError(
            f"toy model {name!r} has no weights at {model.path}; train it with "
            f"`python -m pairsynth_train {name} --out {model.path}` from a source checkout "
            "(pairsynth_train/ is not installed)"
        )
    return model
