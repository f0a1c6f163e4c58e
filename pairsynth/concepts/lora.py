"""LoRA on the UNet, through ``peft``, saved as diffusers' ``pytorch_lora_weights.safetensors``.

As diffusers' ``examples/dreambooth/train_dreambooth_lora.py``: a ``LoraConfig`` on ``to_q``,
``to_k``, ``to_v`` and ``to_out.0`` added with ``unet.add_adapter``, and the trained layers written
with ``get_peft_model_state_dict`` → ``StableDiffusionLoraLoaderMixin.save_lora_weights``, the file
``pipe.load_lora_weights`` reads, in peft's key naming (as diffusers' SD3 and Flux scripts write it).
``layers="all"`` adds the ResNet blocks' convolutions, the transformer blocks' feed-forwards and
their in/out projections (LyCORIS' "LoCon"; peft adapts ``Conv2d`` as well): what draws a sound's
fine structure (a vibrato) or an object's shape lives there, not in attention.
``layers="no-attention"`` adapts those alone: the cross-attention that maps the caption's words
(a side, a pitch) onto the image stays the base model's, so a concept cannot drift them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
TARGET_MODULES = {
    "attention": ["to_k", "to_q", "to_v", "to_out.0"],
    "all": ["to_k", "to_q", "to_v", "to_out.0", "conv1", "conv2", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"],
    "no-attention": ["conv1", "conv2", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"],
}
"""Which UNet layers (peft ``target_modules`` suffixes) each ``LearnConfig.lora_layers`` choice adapts."""


def add_lora(unet: Any, rank: int, layers: str = "attention") -> list[torch.nn.Parameter]:
    """Attach a fresh LoRA adapter of ``rank`` to the UNet's ``layers``; return its trainable parameters."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=TARGET_MODULES[layers]))
    return [p for p in unet.parameters() if p.requires_grad]


def lora_state(unet: Any) -> dict[str, torch.Tensor]:
    """The adapter's weights in peft's naming (what checkpoints keep)."""
    from peft.utils import get_peft_model_state_dict

    return {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(unet).items()}


def load_lora_state(unet: Any, state: dict[str, torch.Tensor]) -> None:
    from peft.utils import set_peft_model_state_dict

    set_peft_model_state_dict(unet, state)


def targets(layers: str) -> set[str]:
    """The ``target_modules`` suffixes of a ``lora_layers`` choice."""
    return set(TARGET_MODULES[layers])


def only_layers(state: dict[str, torch.Tensor], layers: str) -> dict[str, torch.Tensor]:
    """The part of an adapter's state (peft naming) on the modules a ``lora_layers`` choice targets."""
    suffixes = TARGET_MODULES[layers]

    def kept(key: str) -> bool:
        module = key.split(".lora_")[0]
        return any(module == t or module.endswith("." + t) for t in suffixes)

    return {k: v for k, v in state.items() if kept(k)}


def save_lora(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """Write the adapter in diffusers' LoRA format (``unet.``-prefixed keys, safetensors), every key
    in peft's naming (``lora_A`` / ``lora_B``).

    Not through ``convert_state_dict_to_diffusers`` (the SD DreamBooth script's step): it renames
    only the attention layers' keys to the older ``lora.down`` / ``lora.up``, and diffusers' loader,
    which reads the first key to decide whether to convert, then silently drops those of a file
    that adapts convolutions too (``layers="all"``).
    """
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    layers = {k: v.float().cpu().contiguous() for k, v in state.items()}
    StableDiffusionLoraLoaderMixin.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return folder / LORA_FILE


def peft_naming(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoRA state dict with every key in peft's naming, for diffusers' loader.

    Concept folders written before :func:`save_lora` kept peft's naming mix the two namings when
    they adapt convolutions, and the loader would drop their attention layers.
    """
    from diffusers.utils import convert_unet_state_dict_to_peft

    return convert_unet_state_dict_to_peft(state)
