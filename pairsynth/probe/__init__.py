"""Does the synthetic data help? A downstream probe, and DA-Fusion-style real + synthetic mixing.

``pairsynth probe`` trains small classifiers (or, with ``--task retrieval``, a small contrastive
model) on a few real examples with and without synthetic data, and reports the paired gains with
their intervals. The mixing it trains with is public: :class:`MixingSampler` for plain PyTorch and
:func:`mix_datasets` for ``datasets``.
"""

from pairsynth.probe.mixing import MixingSampler, Provenance, mix_datasets, mixing_plan
from pairsynth.probe.protocol import ProbeConfig, run_probe

__all__ = ["MixingSampler", "ProbeConfig", "Provenance", "mix_datasets", "mixing_plan", "run_probe"]
