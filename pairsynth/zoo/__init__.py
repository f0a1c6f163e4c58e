"""The embedded toy model zoo: tiny models trained by this project for a procedural world.

They load through exactly the code paths real hub models use (``from_pretrained``, open_clip's
``local-dir:``), so the whole toolkit runs offline on a CPU. See :mod:`pairsynth.zoo.registry`.
"""

from pairsynth.zoo.registry import ZooModel, list_models, zoo_model

__all__ = ["ZooModel", "list_models", "zoo_model"]
