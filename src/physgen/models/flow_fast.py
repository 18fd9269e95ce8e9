"""Fast, exact sampling of zuko coupling spline flows on CPU.

zuko inverts a masked autoregressive transform with ``passes = 2`` (a coupling layer) by
running its hyper-network and spline over *all* features twice: the first pass from
``x = 0`` fixes the first half (whose parameters depend on the context only), the second
recomputes everything and fixes the second half. That is 2 full network passes and 2
full spline evaluations per transform, with zuko's many-kernel spline
(:mod:`physgen.nn.rqs_kernel` explains the cost).

:func:`coupling_inverse` computes the same map with, per transform, the first layer twice
(it is small), the large output layer once (each half's rows in the pass that needs
them), and the spline once per feature in a fused compiled kernel (with torch's thread count). The weights are read
from the zuko modules at every call, so a model keeps sampling exactly what it was
trained to, whatever was loaded or trained since. Flows this does not cover (other
transforms, residual or variational networks, GPU tensors) return ``None`` and the caller
uses zuko.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor

from physgen.nn.rqs_kernel import rqs_inverse

__all__ = ["coupling_inverse", "supports_fast_inverse"]


def _parts(t: Any) -> tuple[Any, list[Any]] | None:
    """``(transform, hyper layers)`` if ``t`` is a 2-pass masked spline transform with a
    plain masked MLP (linear / activation alternating), else None."""
    from zuko.flows.autoregressive import MaskedAutoregressiveTransform
    from zuko.nn import MaskedLinear
    from zuko.transforms import MonotonicRQSTransform

    if type(t) is not MaskedAutoregressiveTransform or t.passes != 2 or t.order is None:
        return None
    uni = t.univariate
    if isinstance(uni, functools.partial):
        if uni.args or set(uni.keywords) - {"bound", "slope"}:
            return None
        uni = uni.func
    if uni is not MonotonicRQSTransform:
        return None
    layers = list(t.hyper)
    if not layers or len(layers) % 2 != 1:
        return None
    for i, layer in enumerate(layers):
        is_linear = type(layer) is MaskedLinear
        if is_linear != (i % 2 == 0):
            return None
    return t, layers


def supports_fast_inverse(flow: Any) -> bool:
    """Whether :func:`coupling_inverse` can sample ``flow`` (a ``zuko.flows.Flow``)."""
    transforms = getattr(getattr(flow, "transform", None), "transforms", None)
    if not isinstance(flow, zuko.flows.Flow) or transforms is None:
        return False
    return all(_parts(t) is not None for t in transforms)


def _spline_options(t: Any) -> tuple[float, float]:
    """``(bound, slope)`` of a transform's spline: its partial's keywords over zuko's
    defaults."""
    from zuko.transforms import MonotonicRQSTransform

    sig = inspect.signature(MonotonicRQSTransform.__init__).parameters
    opts = {"bound": sig["bound"].default, "slope": sig["slope"].default}
    if isinstance(t.univariate, functools.partial):
        opts.update(t.univariate.keywords)
    return float(opts["bound"]), float(opts["slope"])


def _rows(features: Tensor, per_feature: int) -> Tensor:
    """Output-layer rows of the given features (``per_feature`` parameters each)."""
    return (features[:, None] * per_feature + torch.arange(per_feature)).reshape(-1)


def _inverse_transform(t: Any, layers: list[Any], y: Tensor, c: Tensor | None) -> Tensor:
    bins = int(t.shapes[0][0])
    bound, slope = _spline_options(t)
    per = int(t.total)
    order = t.order
    first, last = layers[0], layers[-1]
    n_x = y.shape[1]
    w_in = first.mask * first.weight  # (H, D + C)
    w_out = last.mask * last.weight  # (D * per, H')
    x = torch.empty_like(y)
    for group in (0, 1):
        feats = torch.nonzero(order == group).squeeze(1)
        if group == 0:
            # the first half sees the context only (zuko's first pass starts from x = 0)
            pre = first.bias.expand(y.shape[0], -1)
        else:
            done = torch.nonzero(order == 0).squeeze(1)
            pre = torch.addmm(first.bias, x[:, done], w_in[:, done].T)
        if c is not None:
            pre = pre + c @ w_in[:, n_x:].T
        h = pre
        for layer in layers[1:-1]:
            h = layer(h)
        rows = _rows(feats, per)
        phi = torch.addmm(last.bias[rows], h, w_out[rows].T).reshape(y.shape[0], feats.numel(), per)
        ys = y[:, feats].contiguous().numpy()
        x[:, feats] = torch.from_numpy(
            rqs_inverse(ys, phi.numpy(), bins, bound, slope, torch.get_num_threads())
        )
    return x


def coupling_inverse(flow: Any, z: Tensor, context: Tensor | None) -> Tensor | None:
    """``flow(context).transform.inv(z)`` for a zuko coupling spline flow, computed fast.

    Args:
        flow: A ``zuko.flows.Flow`` whose transforms are all masked autoregressive spline
            transforms with ``passes = 2`` (``zuko.flows.NSF(..., passes=2)``).
        z: Base-space values, shape ``(N, D)``, float32 on CPU.
        context: The flow's context, shape ``(N, C)``, or None for an unconditional flow.

    Returns:
        The samples, shape ``(N, D)`` (equal to zuko's to float32 rounding), or None when the
        flow, device or dtype is not covered (then use zuko). The result carries no
        gradient (numba runs outside autograd): differentiate through zuko's inverse.
    """
    if z.device.type != "cpu" or z.dtype != torch.float32 or not supports_fast_inverse(flow):
        return None
    if context is not None and (context.device.type != "cpu" or context.dtype != torch.float32):
        return None
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in flow.parameters()):
        return None  # e.g. a float64 or GPU flow: zuko handles (or reports) the mismatch
    with torch.no_grad():
        x = z
        for t in reversed(list(flow.transform.transforms)):
            parts = _parts(t)
            assert parts is not None
            x = _inverse_transform(parts[0], parts[1], x, context)
    return x
