"""Generative surrogates of calorimeter showers behind one interface.

A model is an ``nn.Module`` holding its fitted :class:`~physgen.calo.codec.ShowerCodec`;
``model(incident_energy)`` returns a :class:`ShowerDistribution` with ``.sample(shape)`` and,
for tractable models, ``.log_prob(showers)``::

    showers = model(torch.full((1000, 1), 5e4)).sample()   # (1000, n_voxels) in MeV

Models register themselves by name (``cfm``, ``flow``, ``diffusion``, ``gan``, ``vae``);
:func:`build_model` makes one from a codec and a config mapping.
"""

from physgen.models.base import ShowerDistribution, ShowerGenerator
from physgen.models.registry import (
    available_models,
    build_model,
    check_sampling_overrides,
    get_model_class,
    register,
)

__all__ = [
    "ShowerDistribution",
    "ShowerGenerator",
    "available_models",
    "build_model",
    "check_sampling_overrides",
    "get_model_class",
    "register",
]
