"""Textual inversion: one new word in the text encoder's vocabulary, its embedding the only thing learned.

As diffusers' ``examples/textual_inversion/textual_inversion.py`` does it: add the placeholder token
to the tokenizer, grow the input embeddings by one row initialised from the ``--init`` word, train
the whole embedding matrix but put every other row back after each optimiser step, and save
``{token: vector}`` as ``learned_embeds.safetensors``, the file ``pipe.load_textual_inversion`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pairsynth.errors import ConceptError

EMBEDS_FILE = "learned_embeds.safetensors"  # diffusers' TEXT_INVERSION_NAME_SAFE


def check_token_text(token: str) -> None:
    """A new token must be one word; checked before any model loads (the vocabulary check needs one)."""
    if not token.strip() or any(c.isspace() for c in token):
        raise ConceptError(f"--token {token!r}: a token is one word without spaces, such as <sphynx>")


class NewToken:
    """A placeholder token added to a tokenizer and text encoder, and the embedding row it trains.

    Args:
        tokenizer, text_encoder: the pipeline's; both are changed in place.
        token: the new word, e.g. ``<sphynx>`` (:func:`check_token_text`); not in the vocabulary already.
        init: an existing word (or words, averaged) whose embedding the new one starts from.
    """

    def __init__(self, tokenizer: Any, text_encoder: Any, token: str, init: str) -> None:
        known = tokenizer.encode(token, add_special_tokens=False)
        if token in tokenizer.get_vocab() or (len(known) == 1 and known[0] != tokenizer.unk_token_id):
            raise ConceptError(f"--token {token!r} is already in the tokenizer's vocabulary; choose a new word "
                               "such as <my-concept>")
        init_ids = tokenizer.encode(init, add_special_tokens=False)
        if not init_ids:
            raise ConceptError(f"--init {init!r} encodes to no tokens; give a word the model knows, e.g. cat")
        tokenizer.add_tokens([token])
        self.token, self.token_id = token, tokenizer.convert_tokens_to_ids(token)
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self.embeddings = text_encoder.get_input_embeddings().weight
        with torch.no_grad():
            self.embeddings[self.token_id] = self.embeddings[init_ids].mean(0)
        self.init_norm = float(self.embeddings[self.token_id].norm())
        self._original = self.embeddings.detach().clone()
        self._others = torch.ones(len(tokenizer), dtype=torch.bool)
        self._others[self.token_id] = False

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the optimiser updates: the input-embedding matrix (only the new row is kept)."""
        self.embeddings.requires_grad_(True)
        return [self.embeddings]

    @torch.no_grad()
    def restore_others(self, keep_norm: bool = False) -> None:
        """Undo the step on every row but the new token's (weight decay and Adam moments touch them all).

        With ``keep_norm`` the new row is put back on the sphere of its init word's norm: in a small
        text encoder a long vector would dominate the attention of every word after it.
        """
        self.embeddings[self._others] = self._original[self._others]
        if keep_norm:
            row = self.embeddings[self.token_id]
            self.embeddings[self.token_id] = row * (self.init_norm / row.norm().clamp_min(1e-8))

    @property
    def vector(self) -> torch.Tensor:
        return self.embeddings[self.token_id].detach().clone()

    @torch.no_grad()
    def set_vector(self, vector: torch.Tensor) -> None:
        self.embeddings[self.token_id] = vector.to(self.embeddings)


def save_embedding(folder: Path, token: str, vector: torch.Tensor) -> Path:
    """Write ``{token: (1, dim)}`` in diffusers' textual-inversion file format."""
    from safetensors.torch import save_file

    path = folder / EMBEDS_FILE
    save_file({token: vector.detach().float().cpu().reshape(1, -1).contiguous()}, path)
    return path
