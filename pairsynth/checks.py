"""Checks that run before any model loads, so a bad input costs milliseconds, not a model load.

Like diffusers' ``check_inputs``: each check raises a :class:`~pairsynth.errors.PairsynthError` naming
the field, the value and what would be accepted. Model folders are recognised by their small JSON
files (``model_index.json``'s ``_class_name``, ``open_clip_config.json``, ``config.json``), never by
loading weights; hub models by the same file fetched from the hub or, offline, from its local cache.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairsynth.errors import ModelRefError, OutputDirError, PairsynthError
from pairsynth.refs import ModelRef, parse_ref

if TYPE_CHECKING:
    from pairsynth.recipe import Recipe
    from pairsynth.score import ScoreSettings
    from pairsynth.vary import VaryConfig

AUDIO_PIPELINES = frozenset({"AudioLDMPipeline", "AudioLDM2Pipeline", "MusicLDMPipeline", "StableAudioPipeline",
                             "AudioDiffusionPipeline", "DanceDiffusionPipeline", "SpectrogramDiffusionPipeline"})
"""diffusers pipelines whose output is sound; every other pipeline class is taken to make images."""

ROLES = {
    "text-to-image": "a text→image diffusers pipeline (e.g. StableDiffusionPipeline)",
    "image-to-image": "an image diffusers pipeline (e.g. StableDiffusionPipeline)",
    "text-to-audio": "an AudioLDMPipeline or AudioLDM2Pipeline",
    "audio-to-audio": "an AudioLDMPipeline",
    "clip": "an open_clip model (open_clip_config.json, or ARCH/TAG)",
    "clap": "a transformers ClapModel (config.json)",
}
"""What each role accepts, as the error messages say it."""

_PIPELINES_FOR = {"text-to-audio": ("AudioLDMPipeline", "AudioLDM2Pipeline"), "audio-to-audio": ("AudioLDMPipeline",)}
_KIND_FILE = {"clip": "open_clip_config.json", "clap": "config.json"}  # what a hub repo of the role holds
MIN_FREE_BYTES = 16 * 2**20
"""Less free space than this on the output's disk is refused at once: the first shard would not fit."""


@dataclass(frozen=True)
class ModelKind:
    """What a model folder holds, read from its small JSON files.

    Attributes:
        family: ``pipeline`` (diffusers), ``open_clip``, ``transformers`` or ``unknown``.
        name: the pipeline class (``_class_name``) or the transformers architecture.
    """

    family: str
    name: str = ""

    def describe(self) -> str:
        return {"pipeline": f"a diffusers {self.name}", "open_clip": "an open_clip model",
                "transformers": f"a transformers {self.name or 'model'}"}.get(self.family, "not a model folder")


def check_generate(recipe: Recipe, out_dir: str | Path, *, generators: Collection[str] | None = None,
                   scorers: Collection[str] | None = None) -> None:
    """Step 1 of ``generate``: the recipe's models and the output folder (the recipe checked itself).

    Args:
        recipe: the validated recipe.
        out_dir: the output folder.
        generators, scorers: the media whose models the caller passes in already loaded.
    """
    check_recipe_models(recipe, generators=generators or (), scorers=scorers or ())
    check_device(recipe.device, "device")
    check_output_dir(out_dir)


def check_vary(config: VaryConfig, source: str | Path, out_dir: str | Path, *, varier: object = None,
               scorer: object = None) -> None:
    """Step 1 of ``vary``, before the sources are read: the output folder, the model and both judges."""
    check_output_dir(out_dir, inputs=[source])
    check_vary_models(config, model_loaded=varier is not None, judges_loaded=scorer is not None)
    check_device(config.device, "--device")


def check_score(settings: ScoreSettings, dataset: str | Path, out: str | Path, *,
                scorers: Collection[str] | None = None) -> None:
    """Step 1 of ``score``: both judges (whichever media the dataset holds) and the report folder."""
    check_score_models(settings, loaded=scorers or ())
    check_device(settings.device, "--device")
    check_output_dir(out, inputs=[dataset])


def check_device(spec: str, where: str) -> None:
    """The device exists on this machine (a CUDA or MPS device asked for where there is none fails here)."""
    from pairsynth.devices import resolve_device

    try:
        device = resolve_device(spec)
    except PairsynthError as err:
        raise type(err)(f"{where}: {err}") from None
    import torch

    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PairsynthError(f"{where}: device {spec!r} asked for, but this machine has no Apple MPS device")


def check_recipe_models(recipe: Recipe, *, generators: Collection[str] = (), scorers: Collection[str] = ()) -> None:
    """Every model reference in a recipe, used or not, names a model of the kind its field needs.

    Args:
        recipe: the validated recipe.
        generators, scorers: media (``image``, ``audio``) whose generator or judge the caller passes
            in already loaded; those references are not used and not checked.
    """
    loaded = set(scorers)
    for medium in recipe.media:
        if medium not in generators:
            where = "generator" if recipe.modality != "triplet" else f"generators.{medium}"
            config = recipe.generator_configs[medium]
            ref = check_model_ref(recipe.generator_model(medium), f"text-to-{medium}", f"{where}.model",
                                  revision=config.revision)
            if config.duration_s is not None and ref.is_local:
                check_duration(Path(ref.location), config.duration_s, f"{where}.duration_s")
    if not _judge_loaded("clip", loaded):
        check_model_ref(recipe.scorer.clip, "clip", "scorer.clip", unused=not _scores_any(recipe.media, "clip"))
        check_pretrained(recipe.scorer.pretrained, "scorer.pretrained")
    if not _judge_loaded("clap", loaded):
        check_model_ref(recipe.scorer.clap, "clap", "scorer.clap", unused=not _scores_any(recipe.media, "clap"))


def check_vary_models(config: VaryConfig, modality: str | None = None, *, model_loaded: bool = False,
                      judges_loaded: bool = False) -> None:
    """``vary``'s model and both judges before the dataset is read; with ``modality``, the model's medium.

    Args:
        config: the variation settings.
        modality: ``None`` before the sources are read (the model may be an image or an audio
            pipeline; the judges are checked); ``image`` or ``audio`` once they are (the model only).
        model_loaded, judges_loaded: the caller passes the varier / the judge in already loaded.
    """
    from pairsynth.media import MEDIA

    if modality is None:
        if config.model is not None and not model_loaded:
            check_model_ref(config.model, "image-to-image", "--model", any_medium=True)
        if not judges_loaded:
            check_model_ref(config.clip, "clip", "--clip")
            check_model_ref(config.clap, "clap", "--clap")
    elif not model_loaded:
        check_model_ref(config.model or MEDIA[modality].default_generator, f"{modality}-to-{modality}", "--model")


def check_score_models(settings: ScoreSettings, *, loaded: Collection[str] = ()) -> None:
    """``score``'s judges, both of them, whichever media the dataset turns out to hold."""
    if not _judge_loaded("clip", loaded):
        check_model_ref(settings.clip, "clip", "--clip")
        check_pretrained(settings.pretrained, "pretrained")
    if not _judge_loaded("clap", loaded):
        check_model_ref(settings.clap, "clap", "--clap")


def _scores_any(media: Collection[str], judge: str) -> bool:
    """Whether ``judge`` (a judge kind) scores any of ``media``."""
    from pairsynth.media import judge_media

    return bool(set(judge_media(judge)) & set(media))


def _judge_loaded(judge: str, loaded: Collection[str]) -> bool:
    """Whether the caller passes ``judge`` in loaded: every medium it scores is in ``loaded``."""
    from pairsynth.media import judge_media

    return set(judge_media(judge)) <= set(loaded)


def check_model_ref(text: str, role: str, where: str, *, revision: str | None = None, unused: bool = False,
                    any_medium: bool = False) -> ModelRef:
    """Parse a model reference and check that it names a model fit for ``role``, without loading it.

    Args:
        text: the reference as written.
        role: one of :data:`ROLES`.
        where: the field or flag it came from, for the message.
        revision: a hub revision to look the model up at.
        unused: the run does not use this reference; the message says so (fix or remove it).
        any_medium: accept an image or an audio pipeline (the medium is not known yet).
    """
    hint = " (this run does not use it: fix it or leave the field out)" if unused else ""
    try:
        ref = _parse(text, role)
        kind = _kind(ref, role, revision)
    except ModelRefError as err:
        raise ModelRefError(f"{where}: {err}{hint}") from None
    problem = _role_problem(kind, role, any_medium)
    if problem:
        raise ModelRefError(f"{where}: {text!r} is {kind.describe()}; {problem}{hint}")
    return ref


def check_duration(folder: Path, duration_s: float, where: str) -> None:
    """A clip must span at least one latent frame of the pipeline's VAE (the adapter's own check, from the JSON files)."""
    try:
        vocoder = json.loads((folder / "vocoder" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        hop = math.prod(vocoder["upsample_rates"]) / vocoder["sampling_rate"]
        shortest = hop * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return  # an unusual folder: the adapter checks again once it has loaded the pipeline
    if duration_s < shortest:
        raise PairsynthError(f"{where}: {duration_s:g} s is shorter than this model's shortest clip, "
                             f"{shortest:g} s; give at least {shortest:g}")


def check_pretrained(pretrained: str | None, where: str) -> None:
    """An open_clip ``pretrained`` that looks like a checkpoint path must exist (a tag is looked up at load)."""
    if pretrained and (Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors") or os.sep in pretrained):
        if not Path(pretrained).expanduser().is_file():
            raise ModelRefError(f"{where}: checkpoint {pretrained!r} does not exist; give an open_clip tag "
                                "(laion2b_s34b_b79k) or the path of a checkpoint file")


def check_output_dir(path: str | Path, *, inputs: Iterable[str | Path] = (), flag: str = "--out") -> None:
    """The output folder can be created and written, holds no input, and its disk has room.

    Args:
        path: the output folder; it need not exist yet.
        inputs: datasets the run reads; the output must not be one of them or inside one.
        flag: how the user named the folder, for the message.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{flag} {out} is a file; give a folder (it is created when missing)")
    existing = next(parent for parent in (out, *out.absolute().parents) if parent.exists())
    if not existing.is_dir():
        raise OutputDirError(f"{flag} {out} cannot be created: {existing} is a file, not a folder")
    for source in inputs:
        _check_outside(out, Path(source).expanduser(), flag)
    _check_writable(existing, out, flag)
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise OutputDirError(f"{flag} {out}: the disk holding {existing} is full ({free / 2**20:.1f} MiB free; "
                             f"at least {MIN_FREE_BYTES // 2**20} MiB needed): free some space or choose another folder")


def _check_outside(out: Path, source: Path, flag: str) -> None:
    """The output is not the dataset, nor inside it where reading the dataset again would find it.

    A pairsynth output reads only its dataset folders, so its ``report/`` (or any other new folder) may sit inside.
    """
    resolved, root = out.resolve(), source.resolve()
    if resolved == root:
        raise OutputDirError(f"{flag} {out} is the dataset itself; give another folder for the output")
    if not root.is_dir() or not resolved.is_relative_to(root):
        return
    inside = resolved.relative_to(root).parts[0]
    if (root / "manifest.jsonl").is_file() and inside not in ("imagefolder", "audiofolder", "tripletfolder", "shards"):
        return
    raise OutputDirError(f"{flag} {out} is inside the dataset {source}: reading the dataset again would read "
                         "this output as data; give a folder outside it")


def _check_writable(existing: Path, out: Path, flag: str) -> None:
    """Create and delete a file where the run will write: the only test that holds for root, ACLs and read-only mounts."""
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(f"{flag} {out} cannot be written: permission denied on {existing}")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".pairsynth-check-"):
            pass
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputDirError(f"{flag} {out}: the disk holding {existing} is full; free some space or choose "
                                 "another folder") from None
        raise OutputDirError(f"{flag} {out} cannot be written: {err.strerror or err} ({existing})") from None


def _parse(text: str, role: str) -> ModelRef:
    if role == "clip":
        arch, _, tag = text.removeprefix("open_clip:").partition("/")
        if not text.startswith(("toy-", "local", "hf", "/", ".", "~")) and _is_open_clip_arch(arch):
            _check_open_clip_tag(text, arch, tag)
            return ModelRef(text=text, scheme="open_clip", location=text.removeprefix("open_clip:"))
    ref = parse_ref(text)
    if ref.scheme == "open_clip" and role != "clip":
        raise ModelRefError(f"{text!r} names an open_clip model; expected {ROLES[role]}")
    return ref


def _is_open_clip_arch(arch: str) -> bool:
    """Whether open_clip knows ``arch`` (imported only for references that may be one: ``ViT-B-32/…``)."""
    if not arch or "/" in arch:
        return False
    from pairsynth.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip

    return arch in open_clip.list_models()


def _check_open_clip_tag(text: str, arch: str, tag: str) -> None:
    """A known tag, and, offline, weights in the local hub cache (open_clip would fail on them after the generator loaded)."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tag or Path(tag).expanduser().is_file():
        return
    if tag not in tags:
        raise ModelRefError(f"{text!r}: open_clip has no pretrained tag {tag!r} for {arch}; "
                            f"its tags are: {', '.join(tags) or 'none'}")
    hub = open_clip.get_pretrained_cfg(arch, tag).get("hf_hub", "")
    if not hub or not _offline():
        return
    import huggingface_hub

    repo_id, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if not any(isinstance(huggingface_hub.try_to_load_from_cache(repo_id, name), str) for name in names):
        raise ModelRefError(f"{text!r}: its weights ({repo_id}) are not in the local cache and the hub is off "
                            "(HF_HUB_OFFLINE=1): download them once with the hub on, or set HF_HUB_OFFLINE=0")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _kind(ref: ModelRef, role: str, revision: str | None) -> ModelKind:
    """What the reference names: its folder's JSON files, or the hub repo's."""
    if ref.scheme == "open_clip":
        return ModelKind("open_clip")
    if ref.scheme in ("toy", "local"):
        folder = Path(ref.location)
        if not folder.is_dir():
            raise ModelRefError(f"{ref.text!r} is a file; a model is a folder (saved with save_pretrained)")
        return folder_kind(folder)
    filename = _KIND_FILE.get(role, "model_index.json")
    return _file_kind(filename, _hub_file(ref, filename, revision), f"hub model {ref.location}")


def folder_kind(folder: Path) -> ModelKind:
    """What a model folder holds, from its JSON files; no weights are read."""
    for name in ("model_index.json", "open_clip_config.json", "config.json"):
        if (folder / name).is_file():
            return _file_kind(name, folder / name, str(folder))
    return ModelKind("unknown")


def _file_kind(name: str, path: Path | None, where: str) -> ModelKind:
    if path is None:
        return ModelKind("unknown")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelRefError(f"{where}/{name} is not readable JSON ({err})") from None
    data = data if isinstance(data, dict) else {}
    if name == "model_index.json":
        return ModelKind("pipeline", str(data.get("_class_name", "")))
    if name == "open_clip_config.json":
        return ModelKind("open_clip")
    architectures = data.get("architectures") or [data.get("model_type", "")]
    return ModelKind("transformers", str(architectures[0]))


def _hub_file(ref: ModelRef, filename: str, revision: str | None) -> Path | None:
    """A hub repo's small file, from the hub or (offline) the local cache; ``None`` when the repo lacks it."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    if _offline():
        cached = huggingface_hub.try_to_load_from_cache(ref.location, filename, revision=revision)
        if isinstance(cached, str):
            return Path(cached)
        if cached is not None:  # the cache remembers the repo has no such file
            return None
        raise ModelRefError(f"hub model {ref.location!r} is not in the local cache and the hub is off "
                            "(HF_HUB_OFFLINE=1): download it once with the hub on, or set HF_HUB_OFFLINE=0")
    try:
        return Path(huggingface_hub.hf_hub_download(ref.location, filename, revision=revision))
    except hub_errors.RepositoryNotFoundError:
        raise ModelRefError(f"hub model {ref.location!r} does not exist (or is private: log in with `hf auth login`)") from None
    except hub_errors.RevisionNotFoundError:
        raise ModelRefError(f"hub model {ref.location!r} has no revision {revision!r}") from None
    except hub_errors.EntryNotFoundError as err:
        if isinstance(err, hub_errors.LocalEntryNotFoundError):
            raise ModelRefError(f"hub model {ref.location!r} cannot be reached and is not in the local cache: "
                                "check the connection") from None
        return None
    except (hub_errors.HfHubHTTPError, OSError) as err:
        raise ModelRefError(f"hub model {ref.location!r} cannot be reached: {err}") from None


def _role_problem(kind: ModelKind, role: str, any_medium: bool) -> str | None:
    """Why a model of ``kind`` cannot fill ``role``; ``None`` when it can."""
    expected = f"expected {ROLES[role]}"
    if role == "clip":
        return None if kind.family == "open_clip" else expected
    if role == "clap":
        return None if kind.family == "transformers" and kind.name in ("ClapModel", "clap") else expected
    if kind.family != "pipeline":
        return f"expected {ROLES[role]}: a folder with model_index.json"
    if any_medium:
        return None
    if role in _PIPELINES_FOR:
        if kind.name in _PIPELINES_FOR[role]:
            return None
        made = "images" if kind.name not in AUDIO_PIPELINES else "a kind of audio pairsynth does not drive"
        return f"it makes {made}; {expected}"
    return f"it makes audio; {expected}" if kind.name in AUDIO_PIPELINES else None
