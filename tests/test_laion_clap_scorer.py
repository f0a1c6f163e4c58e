"""LAION-CLAP `.pt` checkpoints as a CLAP judge: pairsynth's embeddings are laion_clap's own.

Offline: laion_clap's CLAP_Module is built with its text tower from a tiny local RoBERTa config and a
tokenizer trained in the test (its constructor would fetch roberta-base), a random checkpoint is
saved in its training layout, and pairsynth's scorer loads that file through `laion-clap:PATH.pt`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pairsynth.torch_compat import ensure_torchvision_importable  # noqa: E402

ensure_torchvision_importable()  # laion_clap imports timm, which imports torchvision
pytest.importorskip("laion_clap", reason="laion-clap is not installed (scripts/setup.sh installs it)")

from pairsynth.alignment.clap_scorer import ClapScorer  # noqa: E402
from pairsynth.alignment.laion_clap_scorer import LaionClapScorer, mel_like_torchaudio, torchaudio_free_mel  # noqa: E402
from pairsynth.errors import ModelRefError  # noqa: E402
from pairsynth.refs import parse_ref  # noqa: E402
from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer  # noqa: E402

RATE = 48_000
CAPTIONS = ["a dog barking far away", "rain on a tin roof", "a low steady hum", "birds at dawn"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roberta")
    build_roberta_tokenizer(CAPTIONS + ["a cat", "an engine idling", "applause in a hall"], folder)
    return folder


def build_laion_module(tokenizer_dir, *, enable_fusion: bool):
    """laion_clap's own CLAP_Module, its RoBERTa from a tiny local config instead of the hub."""
    import clap_module.model as clap_model
    import laion_clap
    import laion_clap.hook as hook
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    tokenizer = RobertaTokenizer.from_pretrained(str(tokenizer_dir))
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                           intermediate_size=128, max_position_embeddings=80, type_vocab_size=1,
                           layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)

    class LocalRoberta:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            assert name == "roberta-base"
            return RobertaModel(config)

    class LocalTokenizer:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return RobertaTokenizer.from_pretrained(str(tokenizer_dir))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clap_model, "RobertaModel", LocalRoberta)
        patch.setattr(hook, "RobertaTokenizer", LocalTokenizer)
        torch.manual_seed(3 if enable_fusion else 2)
        module = laion_clap.CLAP_Module(enable_fusion=enable_fusion, device="cpu", amodel="HTSAT-tiny")
    return module.eval()


@pytest.fixture(scope="module")
def checkpoints(tokenizer_dir, tmp_path_factory):
    """A random unfused and a random fused model (HTS-AT tiny), each with its saved checkpoint."""
    torch.set_num_threads(1)
    built = {}
    for fusion in (False, True):
        module = build_laion_module(tokenizer_dir, enable_fusion=fusion)
        path = tmp_path_factory.mktemp("ckpt") / "epoch_1.pt"
        save_training_checkpoint(module, path)
        built[fusion] = module, path
    return built


def save_training_checkpoint(module, path):
    """As LAION-CLAP's training saves: DDP prefix, the RoBERTa position_ids buffer, training args."""
    state = {f"module.{name}": tensor for name, tensor in module.model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]
    torch.save({"epoch": 1, "state_dict": state, "name": "random"}, path)


def clips(seconds=(3.0, 1.5)):
    rng = np.random.default_rng(0)
    t = [np.arange(int(s * RATE)) / RATE for s in seconds]
    return [(0.4 * np.sin(2 * np.pi * (200 + 300 * i) * x) + 0.05 * rng.standard_normal(x.size)).astype(np.float32)
            for i, x in enumerate(t)]


@pytest.mark.parametrize("enable_fusion", [False, True], ids=["unfused", "fused"])
def test_scores_equal_laion_clap_own_embeddings(enable_fusion, checkpoints, tokenizer_dir):
    module, path = checkpoints[enable_fusion]

    scorer = ClapScorer.from_pretrained(f"laion-clap:{path}?text={tokenizer_dir}", device="cpu")
    assert isinstance(scorer, LaionClapScorer)
    assert scorer.enable_fusion is enable_fusion  # read off the checkpoint: no option given

    waves = clips()
    with torch.no_grad(), torchaudio_free_mel():  # laion_clap's fusion mel needs torchaudio otherwise
        theirs_audio = module.get_audio_embedding_from_data(waves)
        theirs_text = module.get_text_embedding(CAPTIONS[:2])
    ours_audio = scorer.embed_audio([(w, RATE) for w in waves])
    ours_text = scorer.embed_texts(CAPTIONS[:2])
    np.testing.assert_allclose(ours_audio, theirs_audio, atol=2e-5)
    np.testing.assert_allclose(ours_text, theirs_text, atol=2e-5)
    assert np.abs(ours_audio[0] - ours_audio[1]).max() > 1e-3  # different clips, different embeddings

    scores = scorer.score_pairs([(w, RATE) for w in waves], CAPTIONS[:2], distractors=CAPTIONS)
    expected = np.einsum("nd,nd->n", theirs_audio, theirs_text)
    np.testing.assert_allclose([s.cosine for s in scores], expected, atol=2e-5)
    assert all(s.distractors == 3 for s in scores)


def test_a_long_clip_is_center_cropped_and_any_rate_resampled(checkpoints, tokenizer_dir):
    module, path = checkpoints[False]
    scorer = LaionClapScorer.from_checkpoint(f"laion-clap:{path}?text={tokenizer_dir}&amodel=HTSAT-tiny",
                                             device="cpu", batch_size=1)
    long_clip = clips((11.0,))[0]
    start = (long_clip.size - 10 * RATE) // 2
    with torch.no_grad():  # rand_trunc would crop at random; pairsynth center-crops first
        theirs = module.get_audio_embedding_from_data([long_clip[start : start + 10 * RATE]])
    np.testing.assert_allclose(scorer.embed_audio([(long_clip, RATE)]), theirs, atol=2e-5)
    short = clips((2.0,))[0]
    at_16k = short[::3].copy()
    assert scorer.embed_audio([(at_16k, 16_000)]).shape == theirs.shape  # any rate: resampled to 48 kHz


def test_bad_references_fail_in_one_line(tokenizer_dir, tmp_path):
    with pytest.raises(ModelRefError, match="is not a file"):
        parse_ref(f"laion-clap:{tmp_path / 'missing.pt'}")
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelRefError, match="unknown option 'fuse=1'"):
        parse_ref(f"laion-clap:{tmp_path / 'x.pt'}?fuse=1")
    with pytest.raises(ModelRefError, match="cannot read LAION-CLAP checkpoint"):
        LaionClapScorer.from_checkpoint(f"laion-clap:{tmp_path / 'x.pt'}")
    assert parse_ref(f"laion-clap:{tmp_path / 'x.pt'}?amodel=HTSAT-base&fusion=true").options == {
        "amodel": "HTSAT-base", "fusion": "true"}


def test_the_torch_mel_is_torchaudios_recipe():
    """Centered, reflect-padded frames, a periodic Hann window, |rfft|², HTK filters without norm, dB."""
    import librosa

    cfg = {"sample_rate": RATE, "window_size": 1024, "hop_size": 480, "mel_bins": 64, "fmin": 50, "fmax": 14000}
    wave = clips((0.2,))[0]
    ours = mel_like_torchaudio(torch.from_numpy(wave), cfg).numpy()
    padded = np.pad(wave.astype(np.float64), 512, mode="reflect")
    frames = np.stack([padded[i : i + 1024] for i in range(0, padded.size - 1024 + 1, 480)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    filters = librosa.filters.mel(sr=RATE, n_fft=1024, n_mels=64, fmin=50, fmax=14000, htk=True, norm=None)
    expected = 10 * np.log10(np.maximum(power @ filters.T, 1e-10))
    assert ours.shape == expected.shape == (1 + wave.size // 480, 64)
    np.testing.assert_allclose(ours, expected, atol=2e-3)
