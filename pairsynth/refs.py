"""Model references: one string says where a model's weights come from.

``toy-shapes``                      a model of the shipped toy zoo (offline)
``local:PATH`` or an existing path  a folder in the model's real format
``hf:ORG/NAME`` or ``ORG/NAME``     a Hugging Face hub id (needs the hub, or its local cache)
``open_clip:ARCH/TAG``              an open_clip architecture with a pretrained tag (CLIP only)
``laion-clap:PATH.pt[?OPTIONS]``    a checkpoint of LAION-CLAP's own training (CLAP only); options
                                    ``amodel=HTSAT-base``, ``fusion=true|false``, ``text=DIR`` (a
                                    RoBERTa tokenizer folder), joined by ``&``

The scheme makes the source explicit, so a typo fails here, naming the ref, instead of as a network
time-out deep inside ``from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pairsynth.errors import ModelRefError
from pairsynth.zoo.registry import zoo_model

Scheme = Literal["toy", "local", "hf", "open_clip", "laion-clap"]
LAION_CLAP_OPTIONS = ("amodel", "fusion", "text")


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A parsed model reference.

    Attributes:
        text: the reference as written, recorded in every manifest row.
        scheme: where the weights come from.
        location: a folder path, a hub id, ``ARCH/TAG`` for open_clip, or a ``.pt`` file.
        options: settings given after ``?`` (``laion-clap`` only).
    """

    text: str
    scheme: Scheme
    location: str
    options: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_local(self) -> bool:
        return self.scheme in ("toy", "local")


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference; see the module docstring for the forms."""
    text = text.strip()
    if not text:
        raise ModelRefError("empty model reference")
    if text.startswith("toy-"):
        return ModelRef(text=text, scheme="toy", location=str(zoo_model(text).path))
    scheme, sep, rest = text.partition(":")
    if sep and scheme in ("local", "local-dir"):
        path = Path(rest).expanduser()
        if not path.exists():
            raise ModelRefError(f"model folder {rest!r} (from {text!r}) does not exist")
        return ModelRef(text=text, scheme="local", location=str(path))
    if sep and scheme in ("hf", "hf-hub"):
        return ModelRef(text=text, scheme="hf", location=_check_hub_id(rest, text))
    if sep and scheme == "open_clip":
        return ModelRef(text=text, scheme="open_clip", location=rest)
    if sep and scheme == "laion-clap":
        return _laion_clap_ref(text, rest)
    if sep and len(scheme) > 1:
        raise ModelRefError(
            f"unknown scheme {scheme!r} in model reference {text!r}; use toy-NAME, local:PATH, "
            "hf:ORG/NAME, open_clip:ARCH/TAG or laion-clap:PATH.pt"
        )
    if Path(text).expanduser().exists():
        return ModelRef(text=text, scheme="local", location=str(Path(text).expanduser()))
    return ModelRef(text=text, scheme="hf", location=_check_hub_id(text, text))


def _check_hub_id(hub_id: str, text: str) -> str:
    parts = hub_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ModelRefError(
            f"{text!r} is neither an existing folder nor a hub id of the form ORG/NAME"
        )
    return hub_id


def _laion_clap_ref(text: str, rest: str) -> ModelRef:
    """``laion-clap:PATH.pt?amodel=HTSAT-base&fusion=true&text=DIR``: the file must exist, the options be known."""
    location, _, query = rest.partition("?")
    path = Path(location).expanduser()
    if not path.is_file():
        raise ModelRefError(f"LAION-CLAP checkpoint {location!r} (from {text!r}) is not a file")
    options = {}
    for item in filter(None, query.split("&")):
        name, eq, value = item.partition("=")
        if not eq or name not in LAION_CLAP_OPTIONS:
            raise ModelRefError(f"{text!r}: unknown option {item!r}; use {', '.join(o + '=...' for o in LAION_CLAP_OPTIONS)}")
        options[name] = value
    if options.get("fusion", "true").lower() not in ("true", "false", "1", "0"):
        raise ModelRefError(f"{text!r}: fusion={options['fusion']!r}; use fusion=true or fusion=false")
    return ModelRef(text=text, scheme="laion-clap", location=str(path), options=options)
