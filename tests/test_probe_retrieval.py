"""`--task retrieval`: a tiny open_clip CLIP on a few shapes-world pairs, and the recall maths on known features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.probe_shapes_retrieval import write_real_renders
from pairsynth.probe.classifiers import TrainSettings
from pairsynth.probe.errors import MixedMediaError
from pairsynth.probe.features import PixelSpace
from pairsynth.probe.protocol import ProbeConfig, probe_to_folder
from pairsynth.probe.retrieval import recall_at_k, run_retrieval


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
    metrics = recall_at_k(FixedFeatures(images, texts), PixelSpace(8), torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
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


def test_retrieval_on_audio_says_it_is_not_supported(tmp_path, shapes_pairs):
    import json

    import soundfile

    clips = tmp_path / "clips"
    clips.mkdir()
    soundfile.write(clips / "a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    (clips / "metadata.jsonl").write_text(json.dumps({"file_name": "a.wav", "text": "a tone"}) + "\n")
    with pytest.raises(MixedMediaError, match="audio–caption retrieval is not supported"):
        run_retrieval(clips, [shapes_pairs[1]], ProbeConfig(shots=(1,), draws=1))


def test_caption_tokens_are_renumbered_with_end_of_text_still_the_largest_id():
    from pairsynth.probe.retrieval import caption_tokens

    tokens = caption_tokens(["a red circle on the left", "a blue square", "a red square"])
    rows = tokens(["a red circle on the left", "a blue square"])
    assert tokens.context_length == 8 and rows.shape == (2, 8)  # <start> + 6 words + <end>
    assert tokens.vocab_size == 11  # padding, start, end and 8 distinct words
    assert (rows.argmax(dim=1) == torch.tensor([7, 4])).all()  # argmax pooling finds <end>
    assert rows[1, 5:].tolist() == [0, 0, 0] and rows[0, 1] == rows[1, 1]  # padding 0, "a" shared
