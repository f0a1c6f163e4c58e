"""Tiny random-weight audio models built from configs, saved, and loaded back through the public paths.

The audio counterpart of :mod:`tests.dummy_components`, shaped after diffusers' own
``tests/pipelines/audioldm/test_audioldm.py`` and ``tests/pipelines/audioldm2/test_audioldm2.py``
``get_dummy_components()`` (2 UNet levels, 2-layer text encoders, a 4x-upsampling HiFi-GAN at
16 kHz), but narrower and with every tokenizer trained here: diffusers' tests load theirs from
``hf-internal-testing/...``, which cannot be reached offline. Every component is built after
``torch.manual_seed(0)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pairsynth.torch_compat import ensure_torchvision_importable

WORDS = ("a the of on left right sound low high steady beeping rising tone chirp noise burst "
         "dog barking cat meowing hammer hitting wooden surface").split()
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]  # T5's ids 0, 1, 2
TEXT_CONTEXT = 77  # AudioLDM's tokenizers are used with padding="max_length" to this many tokens
VOCODER_RATE = 16_000
VOCODER_GAIN = 3e4


def build_roberta_tokenizer(out_dir: Path):
    """CLAP's text tokenizer: the zoo's offline RoBERTa BPE over the test words, every word one token."""
    from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer as build

    return build(WORDS, out_dir, model_max_length=TEXT_CONTEXT)


def build_t5_tokenizer(out_dir: Path):
    """A Unigram tokenizer in T5's layout (``<pad>``=0, ``</s>``=1, ``<unk>``=2), reloaded from disk."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=T5_SPECIALS, unk_token="<unk>",
                                      show_progress=False)
    unigram.train_from_iterator([" ".join(WORDS)] * 8 + WORDS, trainer=trainer)
    pieces = [tuple(piece) for piece in json.loads(unigram.to_str())["model"]["vocab"]]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=TEXT_CONTEXT)
    return _save_and_reload(tokenizer, out_dir, len(pieces))


def _save_and_reload(tokenizer, out_dir: Path, expected: int):
    tokenizer.save_pretrained(out_dir)
    reloaded = type(tokenizer).from_pretrained(str(out_dir))
    if len(reloaded) != expected:
        raise ValueError(f"tokenizer in {out_dir} reloaded with {len(reloaded)} tokens, expected {expected}")
    return reloaded


def _clap_text_config(vocab_size: int, hidden_size: int = 16):
    from transformers import ClapTextConfig

    return ClapTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=vocab_size, hidden_size=hidden_size,
        intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=2, num_hidden_layers=2, projection_dim=16,
        max_position_embeddings=TEXT_CONTEXT + 2,  # RoBERTa positions start after the padding id
    )


def _clap_model(vocab_size: int, *, enable_fusion: bool = False):
    """A ``ClapModel`` whose HTSAT audio branch takes 64 frames of 64 mel bins (``spec_size`` 64)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapModel

    audio = ClapAudioConfig(
        spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, layer_norm_eps=1e-05, depths=[2, 2],
        num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=32, patch_embeds_hidden_size=16,
        projection_dim=16, patch_size=2, patch_stride=2, patch_embed_input_channels=1,
        enable_fusion=enable_fusion, fusion_type="aff_2d" if enable_fusion else None,
    )
    torch.manual_seed(0)
    return ClapModel(ClapConfig(text_config=_clap_text_config(vocab_size).to_dict(), audio_config=audio.to_dict(),
                                projection_dim=16)).eval()


def _clap_feature_extractor(*, truncation: str = "rand_trunc"):
    """LAION's front end at 48 kHz, but 1 s long and with a hop that gives 61 frames (<= 64)."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=800, max_length_s=1,
                                fft_window_size=1024, truncation=truncation, padding="repeatpad")


def _vocoder(real_front_end: bool = False):
    """A 4x-upsampling HiFi-GAN at 16 kHz whose output is loud enough to pass the silence check.

    Random init gives waveforms near 1e-6 (about -120 dBFS); scaling the last convolution brings
    them to roughly -20 dBFS, still under the vocoder's final ``tanh``.
    """
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    rates = [5, 4, 4, 2] if real_front_end else [2, 2]  # AudioLDM's hop of 160 samples per mel frame
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64 if real_front_end else 8, sampling_rate=VOCODER_RATE, upsample_initial_channel=16,
        upsample_rates=rates, upsample_kernel_sizes=[2 * rate for rate in rates], resblock_kernel_sizes=[3, 7],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False,
    ))
    with torch.no_grad():
        vocoder.conv_post.weight.mul_(VOCODER_GAIN * (3e4 if real_front_end else 1.0))  # 4 upsampling stages shrink it more
    return vocoder


def _vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1, latent_channels=4,
                         norm_num_groups=4, down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2)


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False)


def save_tiny_audioldm_pipeline(folder: Path, *, real_front_end: bool = False) -> Path:
    """An ``AudioLDMPipeline`` folder: 0.016 s (256 samples) at 16 kHz by default.

    ``real_front_end`` gives it AudioLDM's real mel geometry (64 bins, 160 samples per frame), which
    audio→audio variation needs to encode source clips.
    """
    ensure_torchvision_importable()
    from diffusers import AudioLDMPipeline, UNet2DConditionModel
    from transformers import ClapTextModelWithProjection

    tokenizer = build_roberta_tokenizer(folder / "_roberta")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(8, 16), attention_head_dim=4, norm_num_groups=4,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16, class_embeddings_concat=True,
    )
    torch.manual_seed(0)
    text_encoder = ClapTextModelWithProjection(_clap_text_config(len(tokenizer)))
    pipeline = AudioLDMPipeline(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                scheduler=_scheduler(), vocoder=_vocoder(real_front_end))
    pipeline.save_pretrained(folder / "audioldm")
    return folder / "audioldm"


def save_tiny_audioldm2_pipeline(folder: Path, *, language_model: str = "GPT2LMHeadModel") -> Path:
    """An ``AudioLDM2Pipeline`` folder (CLAP + T5 + GPT-2 + projection), 256 samples at 16 kHz by default.

    ``language_model="GPT2Model"`` saves the bare GPT-2 that diffusers' own tests and some hub repos
    use; with transformers 5 it has no generation helpers, which the adapter must work around.
    """
    ensure_torchvision_importable()
    import transformers
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
    from transformers import GPT2Config, T5Config, T5EncoderModel

    tokenizer = build_roberta_tokenizer(folder / "_roberta")
    tokenizer_2 = build_t5_tokenizer(folder / "_t5")
    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]), attention_head_dim=4, norm_num_groups=4,
    )
    text_encoder = _clap_model(len(tokenizer))
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_ff=37, d_kv=8, num_heads=2,
                                             num_layers=2, pad_token_id=0, eos_token_id=1))
    torch.manual_seed(0)
    gpt2 = getattr(transformers, language_model)(GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=99, n_ctx=99,
                                                            n_positions=99, bos_token_id=0, eos_token_id=0))
    gpt2.config.max_new_tokens = 8  # AudioLDM2 reads its default from the language model's config
    torch.manual_seed(0)
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
    pipeline = AudioLDM2Pipeline(
        vae=_vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2, projection_model=projection_model,
        language_model=gpt2, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        feature_extractor=_clap_feature_extractor(), unet=unet, scheduler=_scheduler(), vocoder=_vocoder(),
    )
    target = folder / ("audioldm2" if language_model == "GPT2LMHeadModel" else f"audioldm2-{language_model}")
    pipeline.save_pretrained(target)
    return target


def save_tiny_clap(folder: Path, *, enable_fusion: bool = False) -> Path:
    """A ``ClapModel`` + ``ClapProcessor`` folder, as LAION's HF checkpoints are laid out.

    ``enable_fusion=False`` mirrors ``laion/clap-htsat-unfused``; ``True`` mirrors the fused models.
    """
    ensure_torchvision_importable()
    from transformers import ClapProcessor

    target = folder / ("clap-fused" if enable_fusion else "clap")
    tokenizer = build_roberta_tokenizer(folder / "_roberta")
    processor = ClapProcessor(feature_extractor=_clap_feature_extractor(
        truncation="fusion" if enable_fusion else "rand_trunc"), tokenizer=tokenizer)
    _clap_model(len(tokenizer), enable_fusion=enable_fusion).save_pretrained(target)
    processor.save_pretrained(target)
    return target
