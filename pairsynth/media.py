"""Media as data: one table says, per medium, what judges it, which models it defaults to, how its
adapters load, how its samples are checked and turned into judge input, and where it is written.

Everything else (the run engine, ``vary``, ``score``, writers, the report) looks a medium up here
instead of branching on its name, so a new medium is one :class:`Medium` entry. Also here: what
adapters, judges, readers and writers must agree on (how pixels round, what a pair's modality is).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pairsynth.errors import PairsynthError

if TYPE_CHECKING:
    from pairsynth.candidates import Candidate
    from pairsynth.readers import PairRecord

Problem = tuple[str, str]
"""A machine-readable reason (``blank_image`` …) and a detail for people."""


@dataclass(frozen=True, kw_only=True)
class Medium:
    """One medium and everything the toolkit needs to know about it.

    Attributes:
        name: ``image`` or ``audio``; the candidate attribute that holds it.
        plural: what people call many of its samples, in messages (``images``, ``audio``).
        judge: the judge kind that scores it (``clip``, ``clap``): the key of its scores.
        folder: its Hugging Face folder layout (``imagefolder``).
        default_generator: the toy zoo's text→X model (the variation model too).
        default_judge: the toy zoo's judge.
        settings: generator settings that apply to this medium only (``height``, ``duration_s``).
        load_generator: ``(ref, settings, device) -> adapter`` for text→X; settings has steps,
            guidance_scale, negative_prompt, scheduler, revision and the medium's own settings.
        load_varier: ``(ref, settings, device) -> adapter`` for X→X variations; settings has strength,
            steps, guidance_scale, negative_prompt and scheduler.
        attach: puts an adapter's output on a candidate.
        problem: why a candidate's sample must not be scored or written (NaN, blank, silent …).
        judge_input: the candidate's sample as it will be stored (8-bit, 16-bit), for the judge.
        record_input: a read record's sample as judge input, ``None`` when it has none.
        record_problem: the problem of a read record's sample, as :attr:`problem`.
        class_templates: ``balance``'s default prompt template per class source (``label``,
            ``folder``, ``caption``), with ``{label}`` for the class name.
        mirrors: whether its samples have a left and a right that a mirror swaps (images; clips as
            learned from are mono), e.g. for ``learn-concept --mirror``.
        probe: ``module:attribute`` of the probe's hooks for this medium (a
            :class:`pairsynth.probe.features.MediumProbe`: its CNN input space, judge samples, their
            augmentation, a blank sample, and the tiny CLIP/CLAP ``--task retrieval`` trains); a
            name, so that importing the registry imports no torch.
    """

    name: str
    judge: str
    folder: str
    default_generator: str
    default_judge: str
    settings: tuple[str, ...]
    load_generator: Callable[[str, Any, str], Any]
    load_varier: Callable[[str, Any, str], Any]
    attach: Callable[[Candidate, Any], None]
    problem: Callable[[Candidate], Problem | None]
    judge_input: Callable[[Candidate], Any]
    record_input: Callable[[PairRecord], Any]
    record_problem: Callable[[PairRecord], Problem | None]
    plural: str
    class_templates: Mapping[str, str]
    mirrors: bool
    probe: str

    def probe_hooks(self) -> Any:
        """The probe's hooks for this medium (imported on first use: they need torch)."""
        module, _, attribute = self.probe.partition(":")
        return getattr(importlib.import_module(module), attribute)


def medium(name: str) -> Medium:
    """The registry entry of ``name``; an unknown medium raises with the known ones."""
    try:
        return MEDIA[name]
    except KeyError:
        raise PairsynthError(f"unknown medium {name!r}; known media: {', '.join(MEDIA)}") from None


def media_of(modality: str) -> list[str]:
    """The media of a modality: ``image`` → ``["image"]``, ``triplet`` → ``["image", "audio"]``."""
    try:
        return list(MODALITIES[modality])
    except KeyError:
        raise PairsynthError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}") from None


def folder_format(modality: str) -> str:
    """The Hugging Face folder layout of a modality (``imagefolder``, ``tripletfolder`` …)."""
    media = media_of(modality)
    return MEDIA[media[0]].folder if len(media) == 1 else f"{modality}folder"


def judge_media(judge: str) -> list[str]:
    """The media a judge kind scores (``clip`` → ``["image"]``)."""
    return [m.name for m in MEDIA.values() if m.judge == judge]


def media_held(sample: object) -> list[str]:
    """The media ``sample`` (a candidate, read record or probe example) holds, in registry order:
    the registry's names whose attribute on it is set."""
    return [name for name in MEDIA if getattr(sample, name, None) is not None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit pixels from float ``[0, 1]`` (rounded as diffusers' ``numpy_to_pil`` does); uint8 as is.

    NaN becomes 0: callers that must not emit NaN images check for them first.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    return (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image, uint8 pixels or float pixels in ``[0, 1]``."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(to_uint8(image)).convert("RGB")


def modality_of(image: object, audio: object) -> str:
    """``image``, ``audio`` or ``triplet`` (an image and a clip with one caption), as manifests name it."""
    present = tuple(name for name, sample in (("image", image), ("audio", audio)) if sample is not None)
    return next((modality for modality, media in MODALITIES.items() if media == present), "image")


# --- image ---------------------------------------------------------------------------------------

def _load_text_to_image(ref: str, settings: Any, device: str) -> Any:
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

    sampling = ImageSampling(steps=settings.steps, guidance_scale=settings.guidance_scale,
                             negative_prompt=settings.negative_prompt, scheduler=settings.scheduler,
                             height=settings.height, width=settings.width, stop_at=settings.stop_at)
    return TextToImage.from_pretrained(ref, revision=settings.revision, sampling=sampling, device=device,
                                       dtype=getattr(settings, "dtype", None))


def _load_image_to_image(ref: str, settings: Any, device: str) -> Any:
    from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling

    sampling = VariationSampling(strength=settings.strength, steps=settings.steps,
                                 guidance_scale=settings.guidance_scale,
                                 negative_prompt=settings.negative_prompt, scheduler=settings.scheduler)
    return ImageToImage.from_pretrained(ref, sampling=sampling, device=device)


def _attach_image(candidate: Candidate, output: Any) -> None:
    candidate.image = output.pixels
    if output.flagged_nsfw:
        candidate.notes.append("the pipeline's safety checker flagged this image")


def _image_problem(candidate: Candidate) -> Problem | None:
    from pairsynth.alignment.image_checks import image_problem

    return image_problem(candidate.image)


def _record_image_problem(record: PairRecord) -> Problem | None:
    from pairsynth.alignment.image_checks import image_problem

    return image_problem(record.image.astype(np.float32) / 255.0)


# --- audio ---------------------------------------------------------------------------------------

def _load_text_to_audio(ref: str, settings: Any, device: str) -> Any:
    from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio

    sampling = AudioSampling(steps=settings.steps, guidance_scale=settings.guidance_scale,
                             negative_prompt=settings.negative_prompt, scheduler=settings.scheduler,
                             duration_s=settings.duration_s, stop_at=settings.stop_at)
    return TextToAudio.from_pretrained(ref, revision=settings.revision, sampling=sampling, device=device,
                                       dtype=getattr(settings, "dtype", None))


def _load_audio_to_audio(ref: str, settings: Any, device: str) -> Any:
    from pairsynth.modalities.audio_to_audio import AudioToAudio, AudioVariationSampling

    # AudioLDM's own scheduler is the tested default for mel-latent SDEdit; dpm++ is the image default.
    scheduler = "default" if settings.scheduler == "dpm++" else settings.scheduler
    sampling = AudioVariationSampling(strength=settings.strength, steps=settings.steps,
                                      guidance_scale=settings.guidance_scale,
                                      negative_prompt=settings.negative_prompt, scheduler=scheduler)
    return AudioToAudio.from_pretrained(ref, sampling=sampling, device=device)


def _attach_audio(candidate: Candidate, output: Any) -> None:
    candidate.audio, candidate.sample_rate = output.waveform, output.sample_rate


def _audio_problem(candidate: Candidate) -> Problem | None:
    from pairsynth.alignment.audio_checks import audio_problem

    return audio_problem(candidate.audio, candidate.sample_rate)


def _audio_judge_input(candidate: Candidate) -> tuple[np.ndarray, int]:
    from pairsynth.audio_io import as_written

    return as_written(candidate.audio, candidate.sample_rate), candidate.sample_rate


def _record_audio_problem(record: PairRecord) -> Problem | None:
    from pairsynth.alignment.audio_checks import audio_problem

    return audio_problem(record.audio, record.sample_rate)


MEDIA: dict[str, Medium] = {
    "image": Medium(
        name="image", judge="clip", folder="imagefolder", default_generator="toy-shapes",
        default_judge="toy-shapes-clip", settings=("height", "width"),
        load_generator=_load_text_to_image, load_varier=_load_image_to_image, attach=_attach_image,
        problem=_image_problem, judge_input=lambda candidate: candidate.image_uint8(),
        record_input=lambda record: record.image, record_problem=_record_image_problem,
        plural="images", mirrors=True,
        class_templates={"label": "a photo of a {label}", "folder": "a photo of a {label}", "caption": "{label}"},
        probe="pairsynth.probe.features:IMAGE_PROBE",
    ),
    "audio": Medium(
        name="audio", judge="clap", folder="audiofolder", default_generator="toy-sounds",
        default_judge="toy-sounds-clap", settings=("duration_s",),
        load_generator=_load_text_to_audio, load_varier=_load_audio_to_audio, attach=_attach_audio,
        problem=_audio_problem, judge_input=_audio_judge_input,
        record_input=lambda record: None if record.audio is None else (record.audio, record.sample_rate),
        record_problem=_record_audio_problem, plural="audio", mirrors=False,
        class_templates={"label": "the sound of a {label}", "folder": "the sound of a {label}", "caption": "{label}"},
        probe="pairsynth.probe.features:AUDIO_PROBE",
    ),
}
"""Every medium pairsynth generates, judges and writes."""

MODALITIES: dict[str, tuple[str, ...]] = {"image": ("image",), "audio": ("audio",), "triplet": ("image", "audio")}
"""What a pair holds besides its caption; a triplet is an image and a clip of one scene."""
