"""Do pairsynth's pairs raise held-out audio retrieval over a few real pairs? The toy sounds world, end to end.

Real pairs: renders of the sounds world (`pairsynth/world/sounds.py`: 8 captions, 1 s at 16 kHz,
random pitch, timing and loudness per seed), ``--real-per-caption`` per caption, half held out.
Synthetic pairs: a ``pairsynth generate pairsynth/examples/sounds.yaml`` output (generated here when
``--synthetic`` does not exist). Then ``pairsynth probe --task retrieval``: a tiny transformers
``ClapModel`` trained from scratch on ``--shots`` real pairs per caption, with and without the
synthetic pairs mixed in (p = 0.5), R@1/R@5 on the held-out real renders, paired over the draws.

    .venv/bin/python benchmarks/probe_sounds_retrieval.py --out out/probe-sounds

Last line: ``sounds retrieval R@1 (audio→caption), SHOTS/caption: best non-synthetic …, real+NAME … (gain G [LOW, HIGH]), …
(goal: a gain interval above zero: met|not met)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.probe_shapes_retrieval import run_world_probe  # noqa: E402


def write_real_sounds(root: Path, per_caption: int, seed: int) -> Path:
    """``per_caption`` renders of every sounds-world caption as an audiofolder (``file_name``, ``text``).

    Render seeds start at ``seed × 1,000,000``, so two folders with different ``seed`` share no clip.
    """
    from pairsynth.audio_io import write_flac
    from pairsynth.world import sounds

    folder = root / "audiofolder"
    if (folder / "metadata.jsonl").is_file():
        return folder
    folder.mkdir(parents=True)
    counts = {caption: 0 for caption in sounds.all_captions()}
    rows, render_seed = [], seed * 1_000_000
    while min(counts.values()) < per_caption:
        wave, caption, _ = sounds.render_sample(render_seed)
        render_seed += 1
        if counts[caption] >= per_caption:
            continue
        name = f"{len(rows):05d}.flac"
        write_flac(folder / name, wave, sounds.SAMPLE_RATE)
        rows.append({"file_name": name, "text": caption})
        counts[caption] += 1
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def main() -> None:
    run_world_probe(world="sounds", write_real=write_real_sounds, example="sounds.yaml", steps=200,
                    title="sounds retrieval R@1 (audio→caption)")


if __name__ == "__main__":
    main()
