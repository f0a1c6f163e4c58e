"""The concept card: ``concept.json`` (read back by recipes and ``balance``) and a README a person reads.

It records what the concept was learned from (every item's SHA-256), how (method, steps, settings),
how it went (training and evaluation loss curves, early stop, seconds, peak memory) and which files
hold it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pairsynth.errors import ConceptError

CARD_FILE = "concept.json"


def default_words(token: str) -> str:
    """What a token means to the judges when no ``--words`` are given: ``<sea_lion-2>`` → ``sea lion 2``."""
    return token.strip("<>").replace("-", " ").replace("_", " ")
CARD_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class ConceptCard:
    """What ``concept.json`` holds."""

    token: str
    init: str
    words: str  # what the token stands for in plain words: what CLIP/CLAP judges read instead of it
    method: str
    medium: str
    base_model: str
    pipeline: str
    fingerprint: str
    files: dict[str, str]
    items: list[dict[str, Any]]
    steps_planned: int
    steps_done: int
    best_step: int
    stopped_early: bool
    loss_curve: list[list[float]] = field(default_factory=list)
    eval_loss_curve: list[list[float]] = field(default_factory=list)
    validation_curve: list[list[float | None]] = field(default_factory=list)  # [step, fidelity, following]
    config: dict[str, Any] = field(default_factory=dict)
    latents: str = "sample"  # what the items were trained as: posterior samples or its mode
    seconds: float = 0.0
    threads: int = 1
    peak_rss_mb: float = 0.0
    format: int = CARD_FORMAT

    @classmethod
    def read(cls, folder: str | Path) -> ConceptCard:
        """Read a concept folder's card; a folder without one is not a concept."""
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            raise ConceptError(f"{folder}: not a concept folder (no {CARD_FILE}); make one with pairsynth learn-concept")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data.setdefault("words", default_words(str(data.get("token", ""))))
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (json.JSONDecodeError, TypeError) as err:
            raise ConceptError(f"{path}: not a valid concept card ({err})") from None


def write_card(folder: Path, card: ConceptCard) -> None:
    """Write ``concept.json`` and ``README.md``."""
    (folder / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(_readme(card), encoding="utf-8")


def _readme(card: ConceptCard) -> str:
    loader = ("pipe.load_textual_inversion(FOLDER)" if card.method == "textual-inversion"
              else "pipe.load_textual_inversion(FOLDER)\npipe.load_lora_weights(FOLDER)")
    curve = " → ".join(f"{loss:.4f}" for _, loss in card.eval_loss_curve)
    chosen_by = "validation score" if card.config.get("select") == "samples" else "evaluation loss"
    validation = " → ".join(f"{fidelity:.3f}" + ("" if following is None else f"/{following:.0%}")
                            for _, fidelity, following in card.validation_curve)
    rows = [("token", f"`{card.token}` (initialised from `{card.init}`)"), ("method", card.method),
            ("base model", f"`{card.base_model}` ({card.pipeline})"), ("items", f"{len(card.items)} {card.medium}s"),
            ("steps", f"{card.steps_done} of {card.steps_planned}" + (" (early stop)" if card.stopped_early else "")),
            ("item latents", card.latents), (f"best {chosen_by}", f"step {card.best_step}"), ("evaluation loss", curve or "—"),
            *([("validation (fidelity/following)", validation)] if validation else []),
            *([("weights", f"moving average of the steps, decay {card.config['ema']}")] if card.config.get("ema") else []),
            *([("LoRA layers", _lora_layers(card.config))] if card.method == "lora" else []),
            ("time", f"{card.seconds:.0f} s on {card.threads} thread(s), peak RSS {card.peak_rss_mb:.0f} MB"),
            ("files", ", ".join(f"`{name}`" for name in card.files.values()))]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    hashes = "\n".join(f"- `{item['file']}` sha256 `{item['sha256'][:16]}…`" for item in card.items)
    return (f"# Concept {card.token}\n\n| key | value |\n| --- | --- |\n{table}\n\n## Use\n\n"
            f"In a pairsynth recipe: `concepts: [FOLDER]`, then write `{card.token}` in captions. With diffusers:\n\n"
            f"```python\n{loader}\n```\n\n## Source items\n\n{hashes}\n")


def _lora_layers(config: dict) -> str:
    trained, kept = config.get("lora_layers", "attention"), config.get("keep_layers")
    return f"trained {trained}, written {kept}" if kept and kept != trained else f"{trained} (trained and written)"
