"""The model interface under its calorimeter names.

:class:`ShowerGenerator` and :class:`ShowerDistribution` are the generic
:class:`~physgen.core.generator.ConditionalGenerator` and
:class:`~physgen.core.generator.ConditionalDistribution`: a calorimeter surrogate is a
conditional generator whose codec is a :class:`~physgen.calo.codec.ShowerCodec` and whose
condition is the incident energy in MeV.
"""

from __future__ import annotations

from physgen.core.generator import ConditionalDistribution, ConditionalGenerator

__all__ = ["ShowerDistribution", "ShowerGenerator"]

ShowerGenerator = ConditionalGenerator
ShowerDistribution = ConditionalDistribution
