"""A small offline RoBERTa byte-level BPE tokenizer, in the real ``RobertaTokenizer`` file format.

CLAP's text tower (and AudioLDM's text encoder, which is CLAP's) reads RoBERTa tokens. The toy zoo
cannot download ``roberta-base``'s tokenizer, and its 50,265 tokens would dominate a tiny model's
size through the embedding table. So we learn a byte-level BPE on the toy world's captions (``tokenizers``'
pre-tokenizer, :mod:`pairsynth.zoo.bpe`'s merges) and lay it out as RoBERTa does: ``<s>``=0, ``<pad>``=1, ``</s>``=2,
``<unk>``=3, then the 256 byte-level characters and the learned merges, and ``<mask>`` last.
The files are ``vocab.json`` + ``merges.txt`` (+ configs), exactly what ``RobertaTokenizer`` reads.

Words are learned both at the start of a caption and after a space (``Ġword``), so every world word
is one token in either place; unknown words still tokenize through the byte-level alphabet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import pre_tokenizers

from pairsynth.zoo.bpe import learn_merges

logger = logging.getLogger(__name__)

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK_TOKEN = "<mask>"
DEFAULT_MAX_LENGTH = 32  # the toy captions need < 12; CLAP's real tokenizer uses 512


def build_roberta_tokenizer(texts: Iterable[str], out_dir: str | Path, model_max_length: int = DEFAULT_MAX_LENGTH):
    """Train a RoBERTa-format BPE tokenizer in which every word of ``texts`` is one token.

    Args:
        texts: Sentences (captions) to cover; their words become single tokens.
        out_dir: Folder to write ``vocab.json``, ``merges.txt`` and the tokenizer configs into.
        model_max_length: Padding / truncation length the pipelines use.

    Returns:
        A ``transformers.RobertaTokenizer`` loaded back from ``out_dir`` with ``from_pretrained``.

    Raises:
        ValueError: If ``texts`` is empty, a word would not become one token, or the folder reloads
            with a different vocabulary size (transformers 5 silently falls back to a tiny
            vocabulary when files are missing).
    """
    sentences = sorted({t.strip() for t in texts if t.strip()})
    if not sentences:
        raise ValueError("build_roberta_tokenizer: `texts` is empty")
    words = sorted({w for s in sentences for w in s.split()})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    vocab, merges = _train(sentences + words + [" " + w for w in words])
    vocab[MASK_TOKEN] = len(vocab)
    _write_files(out, vocab, merges, model_max_length)

    from transformers import RobertaTokenizer

    tokenizer = RobertaTokenizer.from_pretrained(str(out))
    if len(tokenizer) != len(vocab):
        raise ValueError(f"tokenizer in {out} reloaded with {len(tokenizer)} tokens, expected {len(vocab)}")
    for word in words:
        for form in (word, " " + word):
            if len(tokenizer.tokenize(form)) != 1:
                raise ValueError(f"word {form!r} tokenizes into {tokenizer.tokenize(form)}, not a single token")
    logger.info("built RoBERTa tokenizer with %d tokens (%d merges) in %s", len(vocab), len(merges), out)
    return tokenizer


def _train(corpus: list[str]) -> tuple[dict[str, int], list[str]]:
    """Byte-level BPE until each word is one token; specials take ids 0-3 as in RoBERTa, then the
    byte alphabet, then each merge's token in rank order (deterministic: :mod:`pairsynth.zoo.bpe`)."""
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    merges = learn_merges(piece for text in corpus for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    tokens = [*SPECIALS, *sorted(pre_tokenizers.ByteLevel.alphabet())]
    tokens += [left + right for left, right in merges]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}, [f"{a} {b}" for a, b in merges]


def _write_files(out: Path, vocab: dict[str, int], merges: list[str], model_max_length: int) -> None:
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "cls_token": "<s>", "pad_token": "<pad>", "mask_token": MASK_TOKEN}
    config = {"tokenizer_class": "RobertaTokenizer", **special, "model_max_length": model_max_length,
              "add_prefix_space": False, "errors": "replace", "clean_up_tokenization_spaces": False}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")


def copy_tokenizer_files(source: str | Path, target: str | Path) -> None:
    """Put ``vocab.json`` + ``merges.txt`` beside a saved tokenizer (transformers 5 saves only ``tokenizer.json``)."""
    import shutil

    for name in ("vocab.json", "merges.txt"):
        if (Path(source) / name).exists():
            shutil.copy(Path(source) / name, Path(target) / name)
