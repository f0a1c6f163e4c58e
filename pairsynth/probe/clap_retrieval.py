"""The audio side of ``--task retrieval``: a tiny transformers ``ClapModel`` trained from scratch.

The model is transformers' own CLAP (an HTSAT audio tower and a RoBERTa text tower) with the toy
zoo's tiny sizes (0.46M parameters), its own ``ClapFeatureExtractor`` (16 kHz, 32 mel bins, 1 s) and
a RoBERTa-format BPE tokenizer trained on the probe's captions (:mod:`pairsynth.zoo.roberta_tokenizer`:
every caption word one token, so the embedding table stays small, as :class:`~pairsynth.probe.retrieval.CaptionTokens`
does for CLIP). Nothing is downloaded.

Clips are stored as 1 s of mono 16 kHz (centre-cropped or zero-padded): HTSAT's 64×64 input holds at
most 128 mel frames (1.27 s at hop 160). Classic augmentation (time shift, gain, noise) acts on the
waveform, then the feature extractor runs on the batch.

The loss is transformers' CLAP ``contrastive_loss`` applied both ways (caption→clip on
``logits_per_text``, clip→caption on ``logits_per_audio``), averaged. ``ClapModel(..., return_loss=True)``
itself averages ``contrastive_loss(logits_per_text)`` and ``contrastive_loss(logits_per_audio.t())``,
which are both caption→clip (transformers 5.24), so the clip→caption direction this probe measures
first would not be trained directly.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.probe.augmentation import augment_audio
from pairsynth.probe.errors import ProbeError
from pairsynth.probe.features import SAMPLE_RATE, waveform
from pairsynth.probe.retrieval import RetrievalKit
from pairsynth.readers import PairRecord
from pairsynth.torch_compat import ensure_torchvision_importable

CLIP_SECONDS = 1.0
MAX_CAPTION_TOKENS = 77
PROJECTION_DIM = 64
FEATURE_EXTRACTOR = {
    "feature_size": 32, "sampling_rate": SAMPLE_RATE, "hop_length": 160, "max_length_s": 1, "fft_window_size": 512,
    "frequency_min": 50, "frequency_max": 8000, "truncation": "rand_trunc", "padding": "repeatpad",
}
TINY_HTSAT = {
    "spec_size": 64, "num_mel_bins": 32, "window_size": 4, "patch_size": 4, "patch_stride": [4, 4],
    "patch_embeds_hidden_size": 32, "depths": [1, 1, 2], "num_attention_heads": [2, 4, 8],
    "hidden_size": 128, "num_hidden_layers": 3, "enable_fusion": False, "hidden_dropout_prob": 0.0,
    "mlp_ratio": 2.0, "projection_dim": PROJECTION_DIM,
}
TINY_TEXT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
EMBED_BATCH = 64


def tokenizer_texts(captions: Sequence[str]) -> list[str]:
    """Captions with words and punctuation spaced apart, as the byte-level pre-tokenizer splits them,
    so that every word the tokenizer is trained on can become one token ("dog," → "dog ,")."""
    return [" ".join(re.findall(r"[^\W\d_]+|\d+|[^\w\s]|_", caption)) for caption in captions]


class ClapKit(RetrievalKit):
    """Audio: a tiny ``ClapModel`` (HTSAT + RoBERTa) on 1 s clips at 16 kHz, trained from scratch."""

    def __init__(self, captions: Sequence[str]) -> None:
        ensure_torchvision_importable()  # transformers' feature extractors reach torchvision
        from transformers import ClapFeatureExtractor

        from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer

        unique = sorted(set(captions))
        with tempfile.TemporaryDirectory() as folder:
            try:
                self.tokenizer = build_roberta_tokenizer(tokenizer_texts(unique), folder,
                                                         model_max_length=MAX_CAPTION_TOKENS)
            except ValueError as err:
                raise ProbeError(f"cannot build a caption tokenizer for the audio retrieval probe: {err}") from None
        self.extractor = ClapFeatureExtractor(**FEATURE_EXTRACTOR)
        ids = self.tokenizer(unique, padding=True, truncation=True, return_tensors="pt")["input_ids"]
        self.rows = dict(zip(unique, ids))
        self.context_length = int(ids.shape[1])
        self.description = (f"transformers.ClapModel (HTSAT {TINY_HTSAT}, RoBERTa {TINY_TEXT}, "
                            f"{len(self.tokenizer)} tokens), CLAP contrastive_loss both ways, trained from scratch "
                            f"on {CLIP_SECONDS:g} s clips at {SAMPLE_RATE} Hz")

    def encode(self, pairs: Sequence[PairRecord]) -> torch.Tensor:
        return torch.stack([waveform(pair, CLIP_SECONDS) for pair in pairs])

    def tokens(self, captions: Sequence[str]) -> torch.Tensor:
        if not captions:
            return torch.zeros(0, self.context_length, dtype=torch.long)
        return torch.stack([self.rows[c] for c in captions])

    def build(self) -> torch.nn.Module:
        from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

        tokenizer = self.tokenizer
        text = ClapTextConfig(vocab_size=len(tokenizer), max_position_embeddings=MAX_CAPTION_TOKENS + 2,
                              type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              projection_dim=PROJECTION_DIM, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, **TINY_TEXT)
        config = ClapConfig(text_config=text.to_dict(), audio_config=ClapAudioConfig(**TINY_HTSAT).to_dict(),
                            projection_dim=PROJECTION_DIM)
        return ClapModel(config)

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """The feature extractor's log-mels of a ``(N, samples)`` batch."""
        batch = self.extractor(list(clips.numpy().astype(np.float32)), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return batch["input_features"]

    def loss(self, model, samples, tokens, *, augment, generator):
        from transformers.models.clap.modeling_clap import contrastive_loss

        clips = augment_audio(samples, generator) if augment else samples
        out = model(input_ids=tokens, attention_mask=self._mask(tokens), input_features=self.features(clips))
        return (contrastive_loss(out.logits_per_text) + contrastive_loss(out.logits_per_audio)) / 2

    def after_step(self, model):
        with torch.no_grad():  # as LAION-CLAP's trainer clamps its scales
            model.logit_scale_a.clamp_(0, np.log(100))
            model.logit_scale_t.clamp_(0, np.log(100))

    def embed(self, model, samples, tokens):
        audio = torch.cat([model.audio_projection(model.audio_model(input_features=self.features(part)).pooler_output)
                           for part in samples.split(EMBED_BATCH)])
        text_out = model.text_model(input_ids=tokens, attention_mask=self._mask(tokens))
        text = model.text_projection(text_out.pooler_output)
        return F.normalize(audio, dim=-1), F.normalize(text, dim=-1)

    def _mask(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens != self.tokenizer.pad_token_id).long()
