"""Text→audio adapter over diffusers' AudioLDM, AudioLDM 2 and Stable Audio (Open) pipelines.

``DiffusionPipeline.from_pretrained`` reads the folder's ``model_index.json`` and builds whichever of
the three it names, so ``cvssp/audioldm-s-full-v2``, ``cvssp/audioldm2``,
``stabilityai/stable-audio-open-1.0`` and the toy zoo's ``toy-sounds`` all load through the same line.

Three things about the installed diffusers/transformers pair are handled here, each where it arises:

* AudioLDM (1) lives in diffusers' ``deprecated`` folder. With diffusers 0.42.1 importing it warns
  nothing, but *building* it logs "The AudioLDMPipeline has been deprecated …" through diffusers'
  logger (not ``warnings``). A pairsynth user cannot act on that, so :func:`_quiet_deprecation` drops
  exactly that record while the pipeline loads, and ignores ``FutureWarning``/``DeprecationWarning``
  raised during the import and load in case a release adds them; all other log records pass.
* AudioLDM 2 encodes a batch of prompts with T5 padded to the *longest prompt in the batch*, and its
  GPT-2 then sees those padding positions: a clip's conditioning, and so the clip, would depend on
  which other prompts share its batch (measured: differences of ~10% of the signal). The adapter
  therefore encodes each prompt on its own and pads the T5 states itself, with an attention mask,
  before one batched denoising call (see :meth:`TextToAudio._audioldm2_embeddings`).
* AudioLDM 2 folders that store a bare ``GPT2Model`` fail under transformers 5 (diffusers issue
  #12630); :func:`_ensure_generation_helpers` puts the same weights in a ``GPT2LMHeadModel``.
* Stable Audio pads every prompt to the T5 tokenizer's full length, so its conditioning never
  depends on the batch; the adapter runs T5 once per distinct prompt and once for the negative
  prompt, and hands the states back as ``prompt_embeds`` (see :meth:`TextToAudio._stable_audio_embeddings`).
  Its clips are stereo at the VAE's rate (44.1 kHz for Stable Audio Open), ``duration_s`` sets
  ``audio_end_in_s``, and each clip's noise and SDE noise come from its own seed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from pairsynth.modalities.noise_paths import Blend, early_stop, initial_noise, latent_shape, mix_embeddings, slerp
from pairsynth.modalities.pipelines import PipelineAdapter, load_pipeline, provenance, seeded_generators, select_rows
from pairsynth.modalities.screening import ScreenRequest, screened
from pairsynth.torch_compat import ensure_torchvision_importable

logger = logging.getLogger(__name__)

SUPPORTED_PIPELINES = ("AudioLDMPipeline", "AudioLDM2Pipeline", "StableAudioPipeline")
_DEPRECATION_NOTICE = "has been deprecated and will not receive bug fixes"
# transformers 5 warns about the cache keyword diffusers' AudioLDM 2 passes to GPT-2 on every step.
_GPT2_CACHE_WARNING = r".*`past_key_values` is deprecated"


@dataclass(frozen=True, kw_only=True)
class AudioSampling:
    """How the pipeline samples; everything here goes into each sample's provenance.

    Attributes:
        duration_s: clip length in seconds; ``None`` keeps the model's own default length, the
            UNet's ``sample_size`` worth of frames (5.12 s for AudioLDM, 10.24 s for AudioLDM 2), or
            Stable Audio's longest clip (47.55 s for Stable Audio Open).
    """

    steps: int = 50
    guidance_scale: float = 2.5
    negative_prompt: str | None = None
    scheduler: str = "default"
    duration_s: float | None = None
    stop_at: float | None = None  # stop after this fraction of the steps, decoding the predicted x0


@dataclass(frozen=True)
class GeneratedAudio:
    """One clip: float32 ``(samples,)`` mono or ``(channels, samples)``, NaN kept for the quality check."""

    waveform: np.ndarray
    sample_rate: int
    modality: ClassVar[str] = "audio"


class TextToAudio(PipelineAdapter):
    """Generates audio clips from prompts, one ``torch.Generator`` per clip.

    Each clip's initial noise (and any ancestral-sampler noise) comes from its own CPU generator, and
    its text conditioning is computed without the rest of the batch, so a clip is the same whatever
    batch it is generated in.
    """

    def __init__(self, pipeline: Any, *, model_id: str, revision: str | None = None,
                 sampling: AudioSampling = AudioSampling()) -> None:
        _check_pipeline(pipeline, model_id)
        _check_sampling(sampling, pipeline)
        super().__init__(pipeline, model_id=model_id, revision=revision, sampling=sampling)
        if self._is_audioldm2:
            _ensure_generation_helpers(pipeline)

    @classmethod
    def from_pretrained(cls, ref: str, *, revision: str | None = None, sampling: AudioSampling = AudioSampling(),
                        device: str = "auto", dtype: str | None = None, concepts: Sequence[Any] = ()) -> TextToAudio:
        """Load an AudioLDM, AudioLDM 2 or Stable Audio pipeline.

        Args:
            ref: ``toy-sounds``, ``local:PATH``, a folder, or a hub id such as ``cvssp/audioldm-s-full-v2``,
                ``cvssp/audioldm2`` or ``stabilityai/stable-audio-open-1.0``.
            revision: a hub revision (branch, tag or commit), recorded in the provenance.
            sampling: steps, guidance, scheduler, negative prompt and duration.
            device: ``auto`` picks CUDA when present, else the CPU.
            dtype: ``fp32``/``fp16``/``bf16``; by default half precision on CUDA, fp32 on the CPU.
            concepts: concept folders (``pairsynth learn-concept``) to load; recorded in the provenance.
        """
        ensure_torchvision_importable()
        with _quiet_deprecation():
            from diffusers import DiffusionPipeline

            pipeline = load_pipeline(DiffusionPipeline, ref, revision=revision, device=device, dtype=dtype)
        adapter = cls(pipeline, model_id=ref, revision=revision, sampling=sampling)
        adapter.load_concepts(concepts)
        return adapter

    @property
    def sample_rate(self) -> int:
        """The output rate: the vocoder's (16 kHz for AudioLDM and AudioLDM 2) or Stable Audio's VAE's (44.1 kHz)."""
        if self._is_stable_audio:
            return int(self.pipeline.vae.config.sampling_rate)
        return int(self.pipeline.vocoder.config.sampling_rate)

    @property
    def provenance(self) -> dict[str, Any]:
        """What made the samples: recorded with every candidate and hashed into its key."""
        return provenance(self.pipeline, self.model_id, self.revision, self.sampling, sample_rate=self.sample_rate,
                          **self.concept_provenance)

    @torch.inference_mode()  # lighter than the pipeline's own no_grad, and covers encode_prompt, which has none
    def generate(self, prompts: Sequence[str], seeds: Sequence[int], *,
                 screen: ScreenRequest | None = None) -> list[GeneratedAudio | None]:
        """Generate one clip per prompt, the i-th from ``seeds[i]``, in a single denoising call.

        With ``screen``, every clip is previewed part-way and only those the screen keeps are
        finished (:mod:`pairsynth.modalities.screening`); the others come back as ``None``.
        """
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        return self.by_concept(prompts, self._generate, prompts=list(prompts), seeds=list(seeds), screen=screen)

    def _generate(self, prompts: list[str], seeds: list[int], screen: ScreenRequest | None) -> list[GeneratedAudio | None]:
        s = self.sampling
        if self._is_stable_audio:
            arguments = self._stable_audio_embeddings(list(prompts))
        elif self._is_audioldm2:
            arguments = self._audioldm2_embeddings(list(prompts))
        else:
            arguments = {"prompt": list(prompts),
                         "negative_prompt": [s.negative_prompt] * len(prompts) if s.negative_prompt else None}
        generators = seeded_generators(seeds)
        if screen is None:
            return self._call(arguments, generators)
        return screened(self.pipeline, len(prompts), screen, lambda rows, controls: self._call(
            select_rows(arguments, rows), [generators[row] for row in rows], **controls))

    def _call(self, arguments: dict[str, Any], generators: list[torch.Generator], **extra: Any) -> list[GeneratedAudio]:
        """One denoising call of the pipeline family's own form, over per-sample ``arguments``."""
        s = self.sampling
        common = {"num_inference_steps": s.steps, "guidance_scale": s.guidance_scale, "generator": generators,
                  "output_type": "np", **extra}
        length = {"audio_end_in_s" if self._is_stable_audio else "audio_length_in_s": s.duration_s}
        with early_stop(self.pipeline, s.stop_at, s.steps) as stopping, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_GPT2_CACHE_WARNING, category=FutureWarning)  # AudioLDM 2
            output = self.pipeline(**arguments, **common, **length, **stopping)
        return [GeneratedAudio(np.asarray(audio, dtype=np.float32), self.sample_rate) for audio in output.audios]

    @torch.inference_mode()
    def generate_blended(self, blends: Sequence[Blend]) -> list[GeneratedAudio]:
        """One clip per point between two samples: slerped initial noise and/or mixed CLAP text embeddings.

        AudioLDM (1) only: its conditioning is one unit vector per prompt, mixed and renormalised here.
        """
        if self._is_audioldm2:
            raise ValueError("interpolation supports AudioLDM pipelines; AudioLDM 2's conditioning is a "
                             "GPT-2-generated sequence with no straight line between two prompts")
        if not blends:
            return []
        return self.by_concept([f"{b.prompt_a} {b.prompt_b}" for b in blends], self._generate_blended, blends=list(blends))

    def _generate_blended(self, blends: list[Blend]) -> list[GeneratedAudio]:
        s, pipe = self.sampling, self.pipeline
        shape = latent_shape(pipe, duration_s=s.duration_s)
        noise = torch.cat([slerp(initial_noise(shape, b.seed_a), initial_noise(shape, b.seed_b), b.noise_weight)
                           for b in blends])
        guided = s.guidance_scale > 1.0
        negative = [s.negative_prompt] * len(blends) if s.negative_prompt else None
        ends = [pipe._encode_prompt([getattr(b, f"prompt_{end}") for b in blends], pipe._execution_device, 1, guided,
                                    negative) for end in ("a", "b")]  # with guidance: [negatives, prompts]
        weights = torch.tensor([b.prompt_weight for b in blends])
        mixed = mix_embeddings(ends[0][-len(blends):], ends[1][-len(blends):], weights, renormalise=True)
        extra = {"negative_prompt_embeds": ends[0][: len(blends)]} if guided else {}
        with early_stop(pipe, s.stop_at, s.steps) as stopping:
            output = pipe(prompt_embeds=mixed, **extra, num_inference_steps=s.steps, guidance_scale=s.guidance_scale,
                          audio_length_in_s=s.duration_s, latents=noise.to(pipe._execution_device, pipe.unet.dtype),
                          generator=seeded_generators([b.generator_seed for b in blends]), output_type="np",
                          **stopping)
        return [GeneratedAudio(np.asarray(audio, dtype=np.float32), self.sample_rate) for audio in output.audios]

    @property
    def _is_audioldm2(self) -> bool:
        return hasattr(self.pipeline, "language_model")

    @property
    def _is_stable_audio(self) -> bool:
        return is_stable_audio(self.pipeline)

    def _stable_audio_embeddings(self, prompts: list[str]) -> dict[str, Any]:
        """Stable Audio's T5 states: each distinct prompt, and the negative prompt, encoded once.

        These are what the pipeline's ``encode_prompt`` computes before its projection, which it
        still applies to ``prompt_embeds``; padding to the tokenizer's full length makes every row
        independent of the batch. A negative prompt's padded positions are zeroed, as
        ``encode_prompt`` does when it encodes the negative itself.
        """
        s = self.sampling
        distinct = list(dict.fromkeys(prompts))
        states, mask = self._t5_states(distinct)
        rows = torch.tensor([distinct.index(prompt) for prompt in prompts], device=states.device)
        arguments: dict[str, Any] = {"prompt_embeds": states.index_select(0, rows),
                                     "attention_mask": mask.index_select(0, rows)}
        if s.negative_prompt and s.guidance_scale > 1.0:
            negative, negative_mask = self._t5_states([s.negative_prompt])
            negative = torch.where(negative_mask.bool().unsqueeze(2), negative, 0.0)
            arguments["negative_prompt_embeds"] = negative.expand(len(prompts), -1, -1)
            arguments["negative_attention_mask"] = negative_mask.expand(len(prompts), -1)
        return arguments

    def _t5_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer, device = self.pipeline.tokenizer, self.pipeline._execution_device
        tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        mask = tokens.attention_mask.to(device)
        self.pipeline.text_encoder.eval()
        return self.pipeline.text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0], mask

    def _audioldm2_embeddings(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Per-prompt AudioLDM 2 conditioning, padded to a common length with masks.

        ``encode_prompt`` is called with one prompt at a time, so the T5 length and the GPT-2 positions
        a prompt sees depend on that prompt alone. Padding the T5 states afterwards is exact: the UNet's
        cross-attention gives masked positions zero weight.
        """
        s = self.sampling
        guided = s.guidance_scale > 1.0  # the pipeline's own rule for classifier-free guidance
        encoded = {}  # each distinct prompt once: k samples of a caption share a batch, and GPT-2 decoding is slow
        for prompt in dict.fromkeys(prompts):
            # With guidance, encode_prompt stacks [negative, positive] along the batch.
            encoded[prompt] = self.pipeline.encode_prompt(
                [prompt], self.pipeline._execution_device, 1, guided,
                negative_prompt=[s.negative_prompt] if s.negative_prompt else None)
        parts = [encoded[prompt] for prompt in prompts]
        length = max(embeds.shape[1] for embeds, _, _ in parts)
        embeds = torch.cat([_pad_time(e, length) for e, _, _ in parts])
        masks = torch.cat([_pad_time(m, length) for _, m, _ in parts])
        generated = torch.cat([g for _, _, g in parts])
        if not guided:
            return {"prompt_embeds": embeds, "attention_mask": masks, "generated_prompt_embeds": generated}
        return {
            "prompt_embeds": embeds[1::2], "attention_mask": masks[1::2], "generated_prompt_embeds": generated[1::2],
            "negative_prompt_embeds": embeds[0::2], "negative_attention_mask": masks[0::2],
            "negative_generated_prompt_embeds": generated[0::2],
        }


def is_stable_audio(pipeline: Any) -> bool:
    """Stable Audio denoises with a DiT (``transformer``); AudioLDM 2 also has a ``projection_model``, but a UNet."""
    return hasattr(pipeline, "transformer") and hasattr(pipeline, "projection_model")


def _pad_time(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad dimension 1 (tokens) to ``length``; zeros in a mask mean "not attended"."""
    missing = length - tensor.shape[1]
    if missing == 0:
        return tensor
    padding = tensor.new_zeros((tensor.shape[0], missing, *tensor.shape[2:]))
    return torch.cat([tensor, padding], dim=1)


def _check_pipeline(pipeline: Any, model_id: str) -> None:
    """Only the two pipelines this adapter drives; AudioLDM 2's speech variant needs transcripts."""
    names = {cls.__name__ for cls in type(pipeline).__mro__}
    if not names & set(SUPPORTED_PIPELINES):
        raise ValueError(f"{model_id!r} loads a {type(pipeline).__name__}; the text-to-audio adapter drives "
                         f"{' and '.join(SUPPORTED_PIPELINES)}")
    if type(getattr(pipeline, "text_encoder_2", None)).__name__ == "VitsModel":
        raise ValueError(f"{model_id!r} is AudioLDM 2's text-to-speech variant, which needs a transcript per "
                         "prompt; pairsynth's captions are descriptions, not transcripts")


def _check_sampling(sampling: AudioSampling, pipeline: Any) -> None:
    """Reject settings the pipeline would only refuse after loading text encoders and noise."""
    if sampling.steps < 1:
        raise ValueError(f"sampling.steps must be at least 1, got {sampling.steps}")
    if is_stable_audio(pipeline) and sampling.scheduler != "default":
        raise ValueError(f"scheduler {sampling.scheduler!r}: Stable Audio samples with its own "
                         f"{type(pipeline.scheduler).__name__} (v-prediction on a cosine schedule); "
                         "use scheduler: default")
    if sampling.duration_s is None:
        return
    if is_stable_audio(pipeline):  # the transformer's sample_size bounds the length
        longest = pipeline.transformer.config.sample_size * pipeline.vae.hop_length / pipeline.vae.config.sampling_rate
        shortest = 1.0 / pipeline.vae.config.sampling_rate
        if not shortest <= sampling.duration_s <= longest:
            raise ValueError(f"sampling.duration_s must be at most {longest:g} s for this model, "
                             f"got {sampling.duration_s!r}")
        return
    vocoder = pipeline.vocoder.config
    vae_scale = 2 ** (len(pipeline.vae.config.block_out_channels) - 1)
    shortest = float(np.prod(vocoder.upsample_rates)) / vocoder.sampling_rate * vae_scale
    if not sampling.duration_s >= shortest:
        raise ValueError(f"sampling.duration_s must be at least {shortest:g} s for this model, "
                         f"got {sampling.duration_s!r}")


def _ensure_generation_helpers(pipeline: Any) -> None:
    """Give AudioLDM 2 a language model with transformers' generation helpers.

    AudioLDM 2 drives GPT-2 through ``_update_model_kwargs_for_generation``, which transformers 5
    keeps on ``GenerationMixin`` models only. Folders that store a bare ``GPT2Model`` (diffusers' own
    tests, some hub repos; diffusers issue #12630) would fail on the first prompt. The same weights
    in the matching ``…LMHeadModel`` give identical hidden states; its head is never used.
    """
    model = pipeline.language_model
    if hasattr(model, "_update_model_kwargs_for_generation"):
        return
    from transformers import AutoModelForCausalLM

    wrapped = AutoModelForCausalLM.from_config(model.config)
    wrapped.base_model.load_state_dict(model.state_dict())
    pipeline.language_model = wrapped.to(device=model.device, dtype=model.dtype).eval()
    logger.info("wrapped AudioLDM 2's %s in %s for generation", type(model).__name__, type(wrapped).__name__)


class _DropDeprecationNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _DEPRECATION_NOTICE not in record.getMessage()


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """Hide diffusers' "AudioLDMPipeline has been deprecated" notice while a pipeline loads.

    Only that notice: a logging filter on the logger that emits it, plus deprecation-category
    ``warnings`` raised during the import and load. Both are undone on exit.
    """
    emitter = logging.getLogger("diffusers.pipelines.pipeline_utils")
    notice_filter = _DropDeprecationNotice()
    emitter.addFilter(notice_filter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        emitter.removeFilter(notice_filter)
