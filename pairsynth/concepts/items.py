"""The few real examples a concept is learned from: one folder of images or of clips, with captions.

A caption comes from a ``NAME.txt`` beside the item or a ``metadata.jsonl`` row (``file_name`` +
``text``/``caption``); items without one are trained on prompt templates ("a photo of a <token>").
A caption that names the concept must use its token, so the new word is what carries it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pairsynth.errors import ConceptError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}  # medium → the files a concept is learned from
TEMPLATES = {  # after diffusers' examples/textual_inversion imagenet_templates_small, shortened
    "image": ("a photo of a {token}", "a rendering of a {token}", "a picture of a {token}", "an image of a {token}"),
    "audio": ("the sound of a {token}", "a recording of a {token}", "a {token}", "audio of a {token}"),
}
FEW, MANY = 5, 50  # the range few-shot concept learning is meant for


@dataclass(frozen=True)
class ConceptItem:
    """One real example: its file, its bytes' SHA-256 (recorded in the concept's card) and its caption."""

    path: Path
    sha256: str
    caption: str | None


@dataclass(frozen=True)
class ConceptItems:
    """All examples of one concept, of one medium (``image`` or ``audio``)."""

    folder: Path
    medium: str
    items: tuple[ConceptItem, ...]

    def caveats(self) -> list[str]:
        """What to warn about before learning: too few or too many items, or items in several subfolders
        (a class-per-folder dataset given whole, where one class's folder was meant)."""
        notes = []
        if not FEW <= len(self.items) <= MANY:
            notes.append(f"{self.folder}: {len(self.items)} items; concepts are meant to be learned from {FEW}–{MANY}")
        placed = [item.path.relative_to(self.folder).parts for item in self.items]
        folders = sorted({parts[0] for parts in placed if len(parts) > 1})
        if len(folders) > 1:
            shown = ", ".join(folders[:4]) + (f" and {len(folders) - 4} more" if len(folders) > 4 else "")
            notes.append(f"{self.folder}: items in {len(folders)} subfolders ({shown}) are learned as one concept; "
                         "for one class, give its folder")
        return notes

    def prompts(self, token: str) -> list[list[str]]:
        """Per item, the prompts it is trained under: its caption, or the medium's templates."""
        return [[item.caption] if item.caption else [t.format(token=token) for t in TEMPLATES[self.medium]]
                for item in self.items]

    def load_images(self, size: int) -> np.ndarray:
        """``(N, 3, size, size)`` float32 in ``[-1, 1]`` (centre crop, then resize), the VAE's input range."""
        from PIL import Image

        arrays = []
        for item in self.items:
            with Image.open(item.path) as image:
                image = image.convert("RGB")
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
                arrays.append(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0)
        return np.stack(arrays)

    def load_audio(self, sample_rate: int) -> list[np.ndarray]:
        """Mono float32 waveforms at ``sample_rate``."""
        from pairsynth.audio_io import read_audio

        return [read_audio(item.path, target_rate=sample_rate, mono=True)[0] for item in self.items]


def read_concept_items(folder: str | Path, token: str) -> ConceptItems:
    """Find and check the concept's examples.

    Raises:
        ConceptError: the folder is missing or empty, mixes images with audio, or a caption does not
            contain the token.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConceptError(f"{folder}: not a folder; give a folder of {FEW}–{MANY} images or clips of the concept")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
    if not files:
        raise ConceptError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) or clips ({', '.join(AUDIO_SUFFIXES)}) found")
    found = {name: [p for p in files if p.suffix.lower() in suffixes] for name, suffixes in SUFFIXES.items()}
    held = [name for name, paths in found.items() if paths]
    if len(held) > 1:
        images, clips = found.values()
        raise ConceptError(f"{folder}: mixes {len(images)} images (e.g. {images[0].name}) with {len(clips)} clips "
                           f"(e.g. {clips[0].name}); a concept is learned from one medium")
    medium = held[0]
    captions = _metadata_captions(folder)
    items = []
    for path in files:
        sidecar = path.with_suffix(".txt")
        caption = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else captions.get(path.resolve())
        if caption is not None and token not in caption:
            raise ConceptError(f"{sidecar if sidecar.is_file() else folder / 'metadata.jsonl'}: the caption of "
                               f"{path.name} ({caption!r}) does not contain the token {token!r}")
        items.append(ConceptItem(path, hashlib.sha256(path.read_bytes()).hexdigest(), caption or None))
    return ConceptItems(folder, medium, tuple(items))


def _metadata_captions(folder: Path) -> dict[Path, str]:
    """``metadata.jsonl`` captions (the imagefolder/audiofolder layout), keyed by resolved file path."""
    path = folder / "metadata.jsonl"
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConceptError(f"{path}:{number}: not JSON ({err.msg})") from None
        text = row.get("text", row.get("caption"))
        if "file_name" in row and isinstance(text, str):
            captions[(folder / row["file_name"]).resolve()] = text
    return captions
