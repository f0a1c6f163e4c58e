"""A small offline CLIP BPE tokenizer, in the real CLIP file format.

The toy zoo cannot download ``openai/clip-vit-large-patch14``'s tokenizer, and the full 49,408-token
vocabulary would dominate a tiny model's size through its embedding table. So we train a BPE
tokenizer on the toy world's words (``tokenizers``' byte-level pre-tokenizer) and lay it out exactly as CLIP's:
the 256 byte-level characters, the same characters with the ``</w>`` end-of-word suffix, the learned
merges in order (learned by a deterministic merge loop, see :func:`_train_merges`), then ``<|startoftext|>`` and ``<|endoftext|>`` as the two highest ids. Keeping the
end-of-text token the highest id matters: CLIP-style text towers (open_clip's ``argmax`` pooling)
find the end of a caption with ``argmax`` over token ids.

Because the byte-level alphabet is complete, any text still tokenizes (unknown words fall back to
characters); every word given to the trainer becomes a single token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, pre_tokenizers

from pairsynth.zoo.bpe import learn_merges

logger = logging.getLogger(__name__)

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MODEL_MAX_LENGTH = 77
# CLIP's own pre-tokenization pattern, as transformers' CLIPTokenizer applies it.
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def build_clip_tokenizer(words: Iterable[str], out_dir: str | Path):
    """Train a CLIP-format BPE tokenizer in which every word of ``words`` is one token.

    Args:
        words: The vocabulary to cover (case-insensitive; CLIP lowercases). Each must be a single
            pre-token under CLIP's splitting rule (letters only, or one digit, or punctuation).
        out_dir: Folder to write ``vocab.json``, ``merges.txt`` and the tokenizer config into.

    Returns:
        A ``transformers.CLIPTokenizer`` loaded back from ``out_dir`` with ``from_pretrained``.

    Raises:
        ValueError: If ``words`` is empty, a word would not become a single token, or the folder
            reloads with a different vocabulary size (transformers 5 silently falls back to a tiny
            vocabulary when files are missing).
    """
    word_list = sorted({w.strip().lower() for w in words if w.strip()})
    if not word_list:
        raise ValueError("build_clip_tokenizer: `words` is empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    merges = _train_merges(word_list)
    vocab = _clip_layout_vocab(merges)
    _write_files(out, vocab, merges)

    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(out))
    if len(tokenizer) != len(vocab):
        raise ValueError(f"tokenizer in {out} reloaded with {len(tokenizer)} tokens, expected {len(vocab)}")
    _check_single_tokens(tokenizer, word_list)
    logger.info("built CLIP tokenizer with %d tokens (%d merges) in %s", len(vocab), len(merges), out)
    return tokenizer


def _train_merges(word_list: list[str]) -> list[tuple[str, str]]:
    """BPE merges until each word is one token, in rank order (deterministic: :mod:`pairsynth.zoo.bpe`)."""
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    pieces = dict.fromkeys(piece for word in word_list for piece, _ in pre_tokenizer.pre_tokenize_str(word))
    return learn_merges(pieces, end_of_word=END_OF_WORD)


def _clip_layout_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Order tokens as CLIP does: bytes, bytes + ``</w>``, merge results, then BOS and EOS last."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_rank)
    tokens = list(alphabet) + [c + END_OF_WORD for c in alphabet]
    seen = set(tokens)
    for left, right in merges:
        merged = left + right
        if merged not in seen:
            tokens.append(merged)
            seen.add(merged)
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def _byte_rank(char: str) -> int:
    """Rank byte-level characters in byte order (GPT-2's ``bytes_to_unicode`` table)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    code = ord(char)
    if code in printable:
        return code
    return 256 + code  # the remapped control/space bytes come after, in their own order


def _write_files(out: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in merges]
    (out / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "model_max_length": MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": EOS_TOKEN}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")


def _check_single_tokens(tokenizer, word_list: list[str]) -> None:
    for word in word_list:
        pieces = tokenizer.tokenize(word)
        if len(pieces) != 1:
            raise ValueError(f"word {word!r} tokenizes into {pieces}, not a single token")
