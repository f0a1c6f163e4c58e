"""Few-shot concepts: teach a text→image or text→audio pipeline a new word from 5–50 real items.

:func:`learn_concept` trains it (textual inversion or LoRA; :func:`check_learn_inputs` makes its
checks alone, before anything loads, and :func:`check_learn_config` those of the settings alone),
:func:`load_concepts` loads the
resulting folder into a pipeline (recipes' ``concepts:`` do this).
"""

from pairsynth.concepts.card import ConceptCard
from pairsynth.concepts.loading import load_concepts
from pairsynth.concepts.training import (LearnConfig, LearnProgress, check_learn_config, check_learn_inputs,
                                        learn_concept)

__all__ = ["ConceptCard", "LearnConfig", "LearnProgress", "check_learn_config", "check_learn_inputs", "learn_concept",
           "load_concepts"]
