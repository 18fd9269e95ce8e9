"""Network building blocks shared by the surrogates: residual MLPs, embeddings, transformers."""

from physgen.nn.embeddings import GaussianFourierEmbedding, SinusoidalEmbedding
from physgen.nn.mlp import ResidualMLP
from physgen.nn.transformer import LayerTransformer

__all__ = ["GaussianFourierEmbedding", "LayerTransformer", "ResidualMLP", "SinusoidalEmbedding"]
