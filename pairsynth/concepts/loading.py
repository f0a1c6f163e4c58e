"""Load learned concepts into a diffusers pipeline, the way diffusers' own loaders do.

Pipelines with the loader mixins (Stable Diffusion) get ``pipe.load_textual_inversion(folder)`` and
``pipe.load_lora_weights(folder)``. AudioLDM's pipeline has neither mixin, so the same files go in
through the lower-level calls those loaders make: ``load_textual_inversion_state_dicts`` and the mixin's
token helpers, then the same resize-and-set of the input embeddings, and ``unet.load_lora_adapter`` (diffusers'
``PeftAdapterMixin``) for the LoRA layers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pairsynth.concepts.card import ConceptCard
from pairsynth.concepts.lora import peft_naming
from pairsynth.concepts.textual_inversion import EMBEDS_FILE
from pairsynth.errors import ConceptError

logger = logging.getLogger(__name__)
T = TypeVar("T")

MEDIUM_OF_PIPELINE = {"StableDiffusionPipeline": "image", "StableDiffusionImg2ImgPipeline": "image",
                      "AudioLDMPipeline": "audio"}


def load_concepts(pipeline: Any, folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Load each concept folder into ``pipeline``; return their provenance records.

    A record names the token, method, base model and the SHA-256 of the weight files, so a sample's
    key changes when a concept is retrained.

    Raises:
        ConceptError: a folder is not a concept, is of the other medium, or its token is already loaded.
    """
    records, adapters = [], []
    for folder in map(Path, folders):
        card = ConceptCard.read(folder)
        medium = MEDIUM_OF_PIPELINE.get(type(pipeline).__name__)
        if medium is not None and medium != card.medium:
            raise ConceptError(f"{folder}: a {card.medium} concept ({card.token}) cannot load into a {medium} "
                               f"pipeline ({type(pipeline).__name__})")
        if card.token in pipeline.tokenizer.get_vocab():
            raise ConceptError(f"{folder}: token {card.token!r} is already in the pipeline's vocabulary "
                               "(loaded twice, or a word the model has)")
        _load_embedding(pipeline, folder / card.files["textual_inversion"])
        if "lora" in card.files:
            name = _adapter_name(card.token)
            _load_lora(pipeline, folder, card.files["lora"], name)
            adapters.append(name)
        records.append({"token": card.token, "words": card.words, "method": card.method, "base_model": card.base_model,
                        "sha256": {kind: _sha256(folder / file) for kind, file in sorted(card.files.items())}})
        logger.info("loaded concept %s (%s) from %s", card.token, card.method, folder)
    if len(adapters) > 1:
        pipeline.unet.set_adapters(adapters)  # a bare pipeline: each loaded adapter active at weight 1
    return records


def lora_adapters(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Token → UNet adapter name, for the LoRA concepts among :func:`load_concepts`' records."""
    return {record["token"]: _adapter_name(record["token"]) for record in records if "lora" in record["sha256"]}


def activate_loras(pipeline: Any, adapter_names: Sequence[str]) -> None:
    """Only ``adapter_names``' LoRA layers act in the UNet; none: the base model's weights alone."""
    if adapter_names:
        pipeline.unet.enable_adapters()  # set_adapters picks adapters but does not undo disable_adapters
        pipeline.unet.set_adapters(list(adapter_names))
    else:
        pipeline.unet.disable_adapters()


def by_lora_concept(pipeline: Any, records: Sequence[dict[str, Any]], prompts: Sequence[str],
                    run: Callable[[list[int]], list[T]]) -> list[T]:
    """``run(rows)`` once per group of rows whose prompts name the same LoRA concepts, only theirs active.

    A LoRA concept is its token's: ten per-class LoRAs summed would draw no class in particular, and
    a prompt naming none gets the base model. A token counts where it appears in the prompt, as the
    tokenizer splits out an added token wherever it stands. Each sample has its own generator, so
    splitting a batch changes no sample.
    """
    adapters = lora_adapters(records)
    if not adapters:
        return run(list(range(len(prompts))))
    groups: dict[tuple[str, ...], list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(tuple(name for token, name in adapters.items() if token in prompt), []).append(row)
    results: list[Any] = [None] * len(prompts)
    for names, rows in groups.items():
        activate_loras(pipeline, names)
        for row, result in zip(rows, run(rows), strict=True):
            results[row] = result
    return results


def _load_embedding(pipeline: Any, path: Path) -> None:
    if hasattr(pipeline, "load_textual_inversion"):
        pipeline.load_textual_inversion(str(path.parent), weight_name=path.name)
        return
    # Steps 1-7 of TextualInversionLoaderMixin.load_textual_inversion, without its pipeline-only checks.
    from diffusers.loaders import TextualInversionLoaderMixin as Loader
    from diffusers.loaders.textual_inversion import load_textual_inversion_state_dicts

    tokenizer, text_encoder = pipeline.tokenizer, pipeline.text_encoder
    state_dicts = load_textual_inversion_state_dicts([str(path.parent)], weight_name=path.name)
    tokens, embeddings = Loader._retrieve_tokens_and_embeddings([None], state_dicts, tokenizer)
    tokens, embeddings = Loader._extend_tokens_and_embeddings(tokens, embeddings, tokenizer)
    text_encoder.resize_token_embeddings(len(tokenizer) + len(tokens), mean_resizing=False)
    weights = text_encoder.get_input_embeddings().weight
    for token, embedding in zip(tokens, embeddings):
        tokenizer.add_tokens(token)
        weights.data[tokenizer.convert_tokens_to_ids(token)] = embedding.to(weights)


def _load_lora(pipeline: Any, folder: Path, file: str, adapter_name: str) -> None:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    state, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(str(folder), weight_name=file)
    state = peft_naming(state)
    if hasattr(pipeline, "load_lora_weights"):
        pipeline.load_lora_weights(state, adapter_name=adapter_name)
        return
    pipeline.unet.load_lora_adapter(state, network_alphas=alphas, prefix="unet", adapter_name=adapter_name)


def _adapter_name(token: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in token).strip("_") or "concept"


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise ConceptError(f"{path}: missing; the concept folder is incomplete (re-run pairsynth learn-concept)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


__all__ = ["EMBEDS_FILE", "activate_loras", "by_lora_concept", "load_concepts", "lora_adapters"]
