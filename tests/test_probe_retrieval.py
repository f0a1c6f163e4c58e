"""`--task retrieval`: a tiny open_clip CLIP on a few shapes-world pairs, a tiny transformers CLAP on a few
sounds-world pairs, and the recall maths on known features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.probe_shapes_retrieval import write_real_renders
from benchmarks.probe_sounds_retrieval import write_real_sounds
from pairsynth.probe.classifiers import TrainSettings
from pairsynth.probe.errors import MixedMediaError, ProbeError
from pairsynth.probe.features import PixelSpace
from pairsynth.probe.protocol import ProbeConfig, probe_to_folder
from pairsynth.probe.retrieval import ClipKit, recall_at_k, run_retrieval


class FixedFeatures(torch.nn.Module):
    """A "model" whose image and text embeddings are given, to check the ranking arithmetic."""

    def __init__(self, images: list[list[float]], texts: list[list[float]]) -> None:
        super().__init__()
        self.images, self.texts = torch.tensor(images, dtype=torch.float32), torch.tensor(texts, dtype=torch.float32)

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        return self.images[: len(batch)]

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.texts[: len(tokens)]


def test_recall_counts_the_own_caption_and_any_image_of_a_caption():
    texts = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    # image 0 matches caption 0; image 1 (caption 1) looks like caption 0; image 2 matches caption 2;
    # image 3 (caption 1) matches caption 1
    images = [[1, 0.1, 0], [1, 0.5, 0], [0, 0, 1], [0.1, 1, 0]]
    kit = ClipKit(8, ["a", "b", "c"])
    metrics = recall_at_k(FixedFeatures(images, texts), kit, torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
                          torch.zeros(3, 4, dtype=torch.long), np.array([0, 1, 2, 1]))
    assert metrics["i2t_r1"] == pytest.approx(3 / 4)  # image 1 ranks caption 1 second
    assert metrics["i2t_r5"] == 1.0
    assert metrics["t2i_r1"] == 1.0  # caption 1's best image is image 3, one of its own
    assert metrics["t2i_r5"] == 1.0


@pytest.fixture(scope="module")
def shapes_pairs(tmp_path_factory):
    base = tmp_path_factory.mktemp("shapes")
    return write_real_renders(base / "real", 3, seed=0), write_real_renders(base / "synthetic", 2, seed=1)


def test_retrieval_probe_on_the_shapes_world(shapes_pairs, tmp_path):
    real, synthetic = shapes_pairs
    config = ProbeConfig(shots=(1,), draws=2, test_fraction=0.34, image_size=16, train=TrainSettings(steps=2, batch_size=16))
    summary = probe_to_folder(real, [synthetic], tmp_path / "probe", config, task="retrieval")
    assert summary["task"] == "retrieval" and summary["captions"] == 24
    assert summary["test"]["examples"] == 24 and summary["real"]["training_pool"] == 48
    result = summary["results"][0]
    for metric in ("i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5"):
        for spread in result["metrics"][metric].values():
            assert 0.0 <= spread["mean"] <= 1.0 and spread["draws"] == 2
    gain = result["gains"]["i2t_r1"]["real+synthetic+classic"]
    assert gain["draws"] == 2 and gain["over"] in ("real", "real+classic")
    assert 0.0 < result["synthetic_share"]["real+synthetic"] < 1.0
    page = (tmp_path / "probe" / "index.html").read_text()
    assert "image" in page and "R@1" in page


@pytest.fixture(scope="module")
def sounds_pairs(tmp_path_factory):
    base = tmp_path_factory.mktemp("sounds")
    return write_real_sounds(base / "real", 3, seed=0), write_real_sounds(base / "synthetic", 2, seed=1)


AUDIO_FAST = ProbeConfig(shots=(1,), draws=2, test_fraction=0.34, train=TrainSettings(steps=3, batch_size=16))


def test_retrieval_probe_on_the_sounds_world_trains_a_tiny_clap(sounds_pairs, tmp_path):
    real, synthetic = sounds_pairs
    summary = probe_to_folder(real, [synthetic], tmp_path / "probe", AUDIO_FAST, task="retrieval")
    assert summary["task"] == "retrieval" and summary["medium"] == "audio" and summary["captions"] == 8
    assert summary["model"].startswith("transformers.ClapModel")
    assert summary["test"]["examples"] == 8 and summary["real"]["training_pool"] == 16
    result = summary["results"][0]
    assert set(result["metrics"]) == {"i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5"}
    for metric in result["metrics"].values():
        for spread in metric.values():
            assert 0.0 <= spread["mean"] <= 1.0 and spread["draws"] == 2
    gain = result["gains"]["i2t_r1"]["real+synthetic+classic"]
    assert gain["draws"] == 2 and gain["over"] in ("real", "real+classic")
    page = (tmp_path / "probe" / "index.html").read_text()
    assert "audio" in page and "ClapModel" in page and "R@1" in page


def test_mixing_puts_synthetic_clips_into_the_clap_training_set(sounds_pairs):
    from pairsynth.probe.clap_retrieval import ClapKit
    from pairsynth.probe.retrieval import _train, read_caption_pairs

    real, synthetic = (read_caption_pairs(path)[0] for path in sounds_pairs)
    kit = ClapKit([p.caption for p in real])
    real_part = (kit.encode(real[:8]), kit.tokens([p.caption for p in real[:8]]), [p.caption for p in real[:8]])
    synthetic_part = (kit.encode(synthetic), kit.tokens([p.caption for p in synthetic]), [p.caption for p in synthetic])
    settings = ProbeConfig(train=TrainSettings(steps=2, batch_size=8))
    alone, none = _train(kit, real_part, None, p=0.5, augment=False, config=settings, seed=3)
    mixed, share = _train(kit, real_part, synthetic_part, p=1.0, augment=False, config=settings, seed=3)
    assert none == 0.0 and share == 1.0  # p = 1: every real clip replaced by a synthetic one of its caption
    weights = [dict(model.named_parameters())["audio_projection.linear1.weight"] for model in (alone, mixed)]
    assert not torch.equal(*weights)  # same seed, different training clips


def test_audio_retrieval_refuses_images_mixed_in_and_clips_without_captions(sounds_pairs, shapes_pairs, tmp_path):
    import soundfile

    real, _ = sounds_pairs
    one_medium = r"holds image but the real data .* holds audio; --task retrieval trains on one medium"
    with pytest.raises(MixedMediaError, match=one_medium):
        run_retrieval(real, [shapes_pairs[1]], AUDIO_FAST)
    bare = tmp_path / "bare"
    bare.mkdir()
    soundfile.write(bare / "a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    with pytest.raises(ProbeError, match=r"no readable caption pairs \(1 unreadable; first: .*a\.wav: no caption"):
        run_retrieval(bare, [real], AUDIO_FAST)


def test_retrieval_command_refuses_mixed_media_in_one_line(sounds_pairs, shapes_pairs, tmp_path):
    from typer.testing import CliRunner

    from pairsynth.cli import app

    refused = CliRunner().invoke(app, ["probe", "--task", "retrieval", "--real", str(sounds_pairs[0]),
                                       "--synthetic", str(shapes_pairs[1]), "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2
    assert "--task retrieval trains on one medium" in refused.output and "Traceback" not in refused.output


def test_caption_tokens_are_renumbered_with_end_of_text_still_the_largest_id():
    from pairsynth.probe.retrieval import caption_tokens

    tokens = caption_tokens(["a red circle on the left", "a blue square", "a red square"])
    rows = tokens(["a red circle on the left", "a blue square"])
    assert tokens.context_length == 8 and rows.shape == (2, 8)  # <start> + 6 words + <end>
    assert tokens.vocab_size == 11  # padding, start, end and 8 distinct words
    assert (rows.argmax(dim=1) == torch.tensor([7, 4])).all()  # argmax pooling finds <end>
    assert rows[1, 5:].tolist() == [0, 0, 0] and rows[0, 1] == rows[1, 1]  # padding 0, "a" shared
