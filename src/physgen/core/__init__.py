"""The generic core: codecs and the conditional-generator interface, for any ``p(x | c)``.

Nothing here knows about calorimeters; :mod:`physgen.models` holds the five families built on
it, :mod:`physgen.density` the public fit/sample API for arrays.
"""

from physgen.core.batch import Encoded
from physgen.core.codec import Codec, VectorCodec
from physgen.core.generator import ConditionalDistribution, ConditionalGenerator

__all__ = [
    "Codec",
    "ConditionalDistribution",
    "ConditionalGenerator",
    "Encoded",
    "VectorCodec",
]
