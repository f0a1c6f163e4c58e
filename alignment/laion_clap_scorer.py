"""CLAP scoring with checkpoints of LAION-CLAP's own training (``laion-clap:PATH.pt``), through ``laion_clap``.

LAION-CLAP's training writes ``.pt`` files (``630k-audioset-best.pt``, ``630k-audioset-fusion-best.pt``
and every fine-tune made with its code). This scorer loads them with the ``laion_clap`` package itself
(``pip install pairsynth[laion-clap]``, then ``pip install --no-deps laion-clap``; 1.1.7 pins numpy<2
for no reason its model code needs) and embeds clips and captions the way ``CLAP_Module``'s
``get_audio_embedding_from_data`` and ``get_text_embedding`` do, so a score here is LAION's own.

What the package cannot do offline or deterministically is handled here:

* ``CLAP_Module`` builds its text tower with ``RobertaModel.from_pretrained('roberta-base')`` and its
  tokenizer from the hub. The tower's weights are all in the checkpoint, so the scorer builds the
  RoBERTa from a config read off the checkpoint's tensor shapes (or ``config.json`` in ``text=DIR``)
  and loads the tokenizer from ``text=DIR`` (default: ``roberta-base`` from the local hub cache).
* ``enable_fusion`` and ``amodel`` come from the checkpoint (fusion layers present or not; HTS-AT
  size from its patch embedding), or from the reference's ``fusion=`` / ``amodel=`` options.
* ``rand_trunc`` and fusion crop clips longer than 10 s at random. Unfused models get such clips
  center-cropped first; fused models draw their crops from a fixed seed per clip.
* Fusion's mel spectrogram needs torchaudio, whose CPU builds for current torch cannot load. Without
  it the same mel (HTK filters, no norm, periodic Hann window, power → dB) is computed with torch.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pairsynth.alignment.clap_scorer import FUSION_SEED, AudioLike, _numpy_seed, _unpack
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.audio_io import resample, to_mono
from pairsynth.devices import resolve_device
from pairsynth.errors import ModelRefError
from pairsynth.refs import parse_ref
from pairsynth.torch_compat import ensure_torchvision_importable

logger = logging.getLogger(__name__)

CONTEXT_LENGTH = 77  # CLAP_Module.tokenizer pads and truncates every caption to 77 tokens
HTSAT_SIZES = {96: "HTSAT-tiny", 128: "HTSAT-base", 256: "HTSAT-large"}  # patch-embedding width → amodel
INSTALL_HINT = ("install it with: pip install 'pairsynth[laion-clap]' && pip install --no-deps laion-clap==1.1.7")


class LaionClapScorer(EmbeddingScorer):
    """Scores audio clips against captions with a LAION-CLAP ``.pt`` checkpoint.

    Build it with :meth:`from_checkpoint`. Samples are ``(waveform, sample_rate)`` tuples (or objects
    with ``waveform`` and ``sample_rate``), at any rate and channel count.
    """

    kind = "clap"

    def __init__(self, model: torch.nn.Module, model_cfg: dict[str, Any], tokenizer: Any, *, enable_fusion: bool,
                 model_id: str, device: torch.device, batch_size: int = 32, precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
        super().__init__(model_id=model_id, device=device, batch_size=batch_size, precision=precision,
                         context_length=CONTEXT_LENGTH)
        self.model = model.eval()
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.enable_fusion = enable_fusion

    @classmethod
    def from_checkpoint(cls, ref: str, *, device: str = "auto", batch_size: int = 32,
                        precision: str = "fp32") -> LaionClapScorer:
        """Load ``laion-clap:PATH.pt[?amodel=…&fusion=…&text=DIR]``.

        Args:
            ref: the reference; see :mod:`pairsynth.refs`.
            device: ``auto``, ``cpu``, ``cuda`` …
            batch_size: clips (or captions) per forward pass.
            precision: ``fp32``, or ``bf16``/``fp16`` autocast for the forward passes.
        """
        parsed = parse_ref(ref)
        if parsed.scheme != "laion-clap":
            raise ModelRefError(f"{ref!r} is not a laion-clap:PATH.pt reference")
        ensure_torchvision_importable()
        try:
            import laion_clap  # noqa: F401  (puts its clap_module on sys.path)
            from clap_module.factory import create_model
        except ImportError as err:
            raise ModelRefError(f"{ref!r} needs the laion_clap package ({err}); {INSTALL_HINT}") from None
        state = read_checkpoint(parsed.location)
        enable_fusion = _option_bool(parsed.options.get("fusion"), default=checkpoint_has_fusion(state))
        amodel = parsed.options.get("amodel") or checkpoint_amodel(state, ref)
        text_dir = parsed.options.get("text", "roberta-base")
        tokenizer = _tokenizer(text_dir, ref)
        torch_device = resolve_device(device)
        with local_roberta(text_dir, state):
            try:
                model, model_cfg = create_model(amodel, "roberta", precision="fp32", device=torch_device,
                                                enable_fusion=enable_fusion,
                                                fusion_type="aff_2d" if enable_fusion else "None")
            except RuntimeError as err:
                raise ModelRefError(f"{ref!r}: {err}") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ModelRefError(f"{ref!r} does not fit amodel={amodel}, fusion={enable_fusion}: {first}; "
                                "set them in the reference, e.g. ?amodel=HTSAT-base&fusion=true") from None
        _check_tokenizer(ref, tokenizer, state)
        logger.info("loaded LAION-CLAP %s (amodel %s, fusion %s)", parsed.location, amodel, enable_fusion)
        return cls(model.to(torch_device), model_cfg, tokenizer, enable_fusion=enable_fusion, model_id=ref,
                   device=torch_device, batch_size=batch_size, precision=precision)

    @property
    def sample_rate(self) -> int:
        return int(self.model_cfg["audio_cfg"]["sample_rate"])

    @property
    def window(self) -> int:
        """Samples the audio tower takes at once (10 s at 48 kHz for LAION's models)."""
        return int(self.model_cfg["audio_cfg"]["clip_samples"])

    def embed_audio(self, clips: Sequence[AudioLike]) -> np.ndarray:
        """L2-normalised audio embeddings ``(len(clips), D)``."""
        return self.embed_samples(clips)

    def prepare(self, sample: AudioLike | Any) -> np.ndarray:
        """One clip as ``get_audio_embedding_from_data`` receives it: mono float32 at 48 kHz, 16-bit quantised.

        Unfused models get clips longer than the window center-cropped to it (``rand_trunc`` would
        crop at random); fused models get the whole clip.
        """
        waveform, rate = _unpack(sample)
        clip = resample(to_mono(waveform), rate, self.sample_rate)
        if not self.enable_fusion and clip.shape[0] > self.window:
            start = (clip.shape[0] - self.window) // 2
            clip = clip[start : start + self.window]
        quantised = (np.clip(clip, -1.0, 1.0) * 32767.0).astype(np.int16)  # laion_clap's float32_to_int16
        return (quantised / 32767.0).astype(np.float32)  # and int16_to_float32, in the same precision

    def _encode_samples(self, samples: Sequence[AudioLike]) -> torch.Tensor:
        from laion_clap.training.data import get_audio_features  # laion_clap's own feature code

        features = []
        with torchaudio_free_mel():
            for sample in samples:
                clip = torch.from_numpy(self.prepare(sample).astype(np.float32))
                with _numpy_seed(FUSION_SEED):  # one seed per clip: the same crops in any batch
                    features.append(get_audio_features({}, clip, self.window,
                                                       data_truncating="fusion" if self.enable_fusion else "rand_trunc",
                                                       data_filling="repeatpad", audio_cfg=self.model_cfg["audio_cfg"]))
        return self.model.get_audio_embedding(features).float()

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding="max_length", truncation=True, max_length=CONTEXT_LENGTH,
                                return_tensors="pt")
        return self.model.get_text_embedding(dict(tokens)).float()

    def _token_count(self, text: str) -> int | None:
        return len(self.tokenizer(text)["input_ids"])


def read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The model's state dict from a LAION-CLAP training checkpoint.

    As laion_clap's ``load_state_dict`` reads it: the ``state_dict`` entry, DDP's ``module.`` prefix
    removed, and the RoBERTa ``position_ids`` buffer dropped (transformers >= 4.31 no longer stores
    it); but without failing on checkpoints that never had that buffer. The file holds the
    training arguments as pickled objects, so it loads with ``weights_only=False``: use checkpoints
    you trust, as with any ``.pt`` file.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many kinds on a file that is not a checkpoint
        raise ModelRefError(f"cannot read LAION-CLAP checkpoint {path}: {err}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelRefError(f"{path} is not a LAION-CLAP checkpoint (no state_dict of tensors)")
    if next(iter(state)).startswith("module."):
        state = {name[len("module."):]: tensor for name, tensor in state.items()}
    state.pop("text_branch.embeddings.position_ids", None)
    if "text_branch.embeddings.word_embeddings.weight" not in state:
        raise ModelRefError(f"{path}: no RoBERTa text tower in the checkpoint; pairsynth reads LAION-CLAP's "
                            "roberta checkpoints (tmodel=roberta, its default)")
    return state


def checkpoint_has_fusion(state: dict[str, torch.Tensor]) -> bool:
    """Fused models carry the fusion block and the local-crop patch embedding; unfused ones do not."""
    return any(".fusion_model." in name or ".mel_conv2d." in name for name in state)


def checkpoint_amodel(state: dict[str, torch.Tensor], ref: str) -> str:
    """The HTS-AT size from the width of its patch embedding; other audio towers must be named."""
    weight = state.get("audio_branch.patch_embed.proj.weight")
    if weight is not None and int(weight.shape[0]) in HTSAT_SIZES:
        return HTSAT_SIZES[int(weight.shape[0])]
    raise ModelRefError(f"{ref!r}: cannot tell the audio tower from the checkpoint (not an HTS-AT); name it, "
                        "e.g. laion-clap:PATH.pt?amodel=PANN-14")


def roberta_config_from_state(state: dict[str, torch.Tensor]) -> Any:
    """The text tower's ``RobertaConfig``, read off the checkpoint's tensor shapes.

    LAION-CLAP's text tower is a roberta-base (its projection takes 768 features), so the head count
    is the one shape cannot tell: 64 features per head, as in every RoBERTa.
    """
    from transformers import RobertaConfig

    prefix = "text_branch."
    words = state[prefix + "embeddings.word_embeddings.weight"]
    positions = state[prefix + "embeddings.position_embeddings.weight"]
    types = state.get(prefix + "embeddings.token_type_embeddings.weight")
    layers = {int(m.group(1)) for name in state if (m := re.match(r"text_branch\.encoder\.layer\.(\d+)\.", name))}
    intermediate = state[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[0]
    hidden = int(words.shape[1])
    return RobertaConfig(vocab_size=int(words.shape[0]), hidden_size=hidden, num_hidden_layers=len(layers),
                         num_attention_heads=hidden // 64, intermediate_size=int(intermediate),
                         max_position_embeddings=int(positions.shape[0]),
                         type_vocab_size=int(types.shape[0]) if types is not None else 1,
                         layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)


@contextlib.contextmanager
def local_roberta(text_dir: str, state: dict[str, torch.Tensor]) -> Iterator[None]:
    """While ``create_model`` runs, build its ``RobertaModel.from_pretrained('roberta-base')`` locally.

    The weights come from the checkpoint right after, so only the architecture is needed: the
    config in ``text_dir`` when it has one, else the one read off the checkpoint.
    """
    import clap_module.model as clap_model

    original = clap_model.RobertaModel
    config_file = Path(text_dir) / "config.json"

    class _LocalRoberta:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
            from transformers import RobertaConfig

            config = RobertaConfig.from_pretrained(text_dir) if config_file.is_file() else roberta_config_from_state(state)
            return original(config, add_pooling_layer=True)

    clap_model.RobertaModel = _LocalRoberta
    try:
        yield
    finally:
        clap_model.RobertaModel = original


@contextlib.contextmanager
def torchaudio_free_mel() -> Iterator[None]:
    """Give laion_clap's ``get_mel`` a torch implementation when torchaudio is not importable."""
    import laion_clap.training.data as clap_data

    if getattr(clap_data, "torchaudio", None) is not None:
        yield
        return
    original = clap_data.get_mel
    clap_data.get_mel = mel_like_torchaudio
    try:
        yield
    finally:
        clap_data.get_mel = original


def mel_like_torchaudio(audio: torch.Tensor, audio_cfg: dict[str, Any]) -> torch.Tensor:
    """``(frames, mel_bins)`` log-mel as laion_clap's torchaudio code makes it.

    torchaudio's ``MelSpectrogram(center=True, pad_mode="reflect", power=2, norm=None, mel_scale="htk")``
    then ``AmplitudeToDB(top_db=None)``: 10·log10(max(power, 1e-10)).
    """
    import librosa

    n_fft, hop = int(audio_cfg["window_size"]), int(audio_cfg["hop_size"])
    spectrum = torch.stft(audio, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                          window=torch.hann_window(n_fft, device=audio.device), center=True, pad_mode="reflect",
                          onesided=True, return_complex=True)
    filters = librosa.filters.mel(sr=int(audio_cfg["sample_rate"]), n_fft=n_fft, n_mels=int(audio_cfg["mel_bins"]),
                                  fmin=float(audio_cfg["fmin"]), fmax=float(audio_cfg["fmax"]), htk=True, norm=None)
    mel = torch.from_numpy(filters).to(audio.device, torch.float32) @ spectrum.abs().pow(2)
    return (10.0 * torch.log10(mel.clamp(min=1e-10))).T


def _option_bool(value: str | None, *, default: bool) -> bool:
    return default if value is None else value.lower() in ("true", "1")


def _tokenizer(text_dir: str, ref: str) -> Any:
    from transformers import RobertaTokenizer

    try:
        return RobertaTokenizer.from_pretrained(text_dir)
    except (OSError, ValueError) as err:
        raise ModelRefError(f"{ref!r}: cannot load the RoBERTa tokenizer from {text_dir!r} ({err}); offline, "
                            "give a folder with vocab.json + merges.txt as ?text=DIR") from None


def _check_tokenizer(ref: str, tokenizer: Any, state: dict[str, torch.Tensor]) -> None:
    """transformers 5 returns a 5-token tokenizer instead of raising when the files are missing."""
    vocab = int(state["text_branch.embeddings.word_embeddings.weight"].shape[0])
    if not vocab // 2 <= len(tokenizer) <= vocab:
        raise ModelRefError(f"{ref!r}: the RoBERTa tokenizer has {len(tokenizer)} tokens but the checkpoint's text "
                            f"tower expects {vocab}; give a folder with its vocab.json + merges.txt as ?text=DIR")
