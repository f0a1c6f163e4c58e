"""Write every output format with pairsynth's writers, read each back with whatever `datasets` is installed.

Run in-process by tests/test_datasets_versions.py with the project's datasets (3.x), and as a script
(``python tests/datasets_readback.py OUT``) in a second venv with the current release (5.x), where it
prints one JSON object: what was read, and whether audio decodes (datasets >= 4 needs torchcodec).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16_000
CAPTIONS = ["a red circle on the left", "a blue square on the right", "a low steady tone"]


def candidates(kind: str) -> list[Any]:
    from pairsynth.alignment.scores import PairScores
    from pairsynth.candidates import Candidate, Condition

    made = []
    for index, caption in enumerate(CAPTIONS):
        image = audio = None
        if kind in ("image", "triplet"):
            image = np.zeros((16, 16, 3), np.float32)
            image[:, : 4 + 4 * index, index] = 1.0
        if kind in ("audio", "triplet"):
            t = np.arange(RATE // 8) / RATE
            audio = (0.5 * np.sin(2 * np.pi * (200 + 100 * index) * t)).astype(np.float32)
        candidate = Candidate(condition=Condition(caption=caption, caption_index=index, sample_index=0, seed=index), key=f"{kind[0]}{index:019x}",
                              provenance={"model": "test"}, image=image, audio=audio, sample_rate=RATE)
        candidate.scores["clip" if image is not None else "clap"] = PairScores(judge="clip", model="t", cosine=0.3)
        made.append(candidate)
    return made


def write_all(out: Path) -> None:
    """One committed part per modality and format."""
    from pairsynth.output_dir import OutputDir, Progress
    from pairsynth.writers import dataset_writers

    layouts = {"image": ["webdataset", "imagefolder", "parquet"], "audio": ["audiofolder", "parquet"],
               "triplet": ["tripletfolder", "parquet"]}
    for kind, formats in layouts.items():
        root = out / kind
        writers = dataset_writers(root, formats)
        for candidate in candidates(kind):
            for writer in writers:
                writer.write(candidate)
        OutputDir(root).commit(Progress(fingerprint="test"), writers)


def read_all(out: Path) -> dict[str, Any]:
    """What datasets makes of each output: row counts, captions, image sizes, audio as bytes or arrays."""
    import datasets
    import soundfile
    from datasets import Audio, load_dataset

    report: dict[str, Any] = {"datasets": datasets.__version__}
    image = load_dataset("imagefolder", data_dir=str(out / "image" / "imagefolder"), split="train")
    report["imagefolder"] = {"rows": len(image), "text": sorted(image["text"]), "size": list(image[0]["image"].size)}
    shards = sorted(str(p) for p in (out / "image" / "shards").glob("*.tar"))
    web = load_dataset("webdataset", data_files={"train": shards}, split="train")
    report["webdataset"] = {"rows": len(web), "text": sorted(web["txt"]), "size": list(web[0]["png"].size)}
    parquet = load_dataset("parquet", data_dir=str(out / "image" / "parquet"), split="train")
    report["parquet_image"] = {"rows": len(parquet), "feature": type(parquet.features["image"]).__name__,
                               "size": list(parquet[0]["image"].size), "text": sorted(parquet["text"])}

    def audio_report(dataset, column: str) -> dict[str, Any]:
        raw = dataset.cast_column(column, Audio(decode=False))
        wave, rate = soundfile.read(io.BytesIO(raw[0][column]["bytes"] or Path(raw[0][column]["path"]).read_bytes()))
        entry: dict[str, Any] = {"rows": len(dataset), "text": sorted(dataset["text"]), "bytes_rate": rate,
                                 "bytes_samples": len(wave)}
        try:
            decoded = dataset[0][column]
            array = decoded["array"] if isinstance(decoded, dict) else decoded.get_all_samples().data.numpy()
            entry["decoded_samples"] = int(np.asarray(array).shape[-1])
        except (ImportError, RuntimeError) as err:
            entry["decode_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        return entry

    try:  # datasets >= 4 encodes audiofolder files while loading them: that alone needs torchcodec
        folder = load_dataset("audiofolder", data_dir=str(out / "audio" / "audiofolder"), split="train")
        report["audiofolder"] = audio_report(folder, "audio")
    except Exception as err:  # DatasetGenerationError, its cause the ImportError naming torchcodec
        cause = err.__cause__ or err
        report["audiofolder"] = {"load_error": f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}"}
    report["parquet_audio"] = audio_report(
        load_dataset("parquet", data_dir=str(out / "audio" / "parquet"), split="train"), "audio")
    triplet = load_dataset("parquet", data_dir=str(out / "triplet" / "parquet"), split="train")
    report["parquet_triplet"] = {"rows": len(triplet), "columns": sorted(triplet.features),
                                 "size": list(triplet.select_columns(["image"])[0]["image"].size)}  # a row would decode the audio too
    return report


if __name__ == "__main__":
    target = Path(sys.argv[1])
    write_all(target)
    print(json.dumps(read_all(target)))
