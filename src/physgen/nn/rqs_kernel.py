"""A fused CPU kernel for the inverse of zuko's monotonic rational-quadratic spline.

zuko's :class:`~zuko.transforms.MonotonicRQSTransform` builds a spline from unconstrained
parameters with a dozen tensor operations (squash, softmax, pad, cumsum, searchsorted,
gather...), each a pass over a ``(batch, features, bins)`` tensor. Sampling a 368-voxel
coupling flow spends most of its CPU time there (the softmax alone 25 % of it). This
module evaluates the same function, parameter to output, in one compiled pass per value:
the spline of Durkan et al., "Neural Spline Flows" (arXiv:1906.04032), with zuko's
parameterisation (bound ``B``, minimum slope, softsign-like squashing, linear tails outside
``[-B, B]``), so weights trained with zuko sample identically (to float32 rounding).

Only the inverse is provided, since sampling is where speed matters; training and
log-densities stay on zuko's differentiable version.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["rqs_inverse"]

_MAX_BINS = 64  # a sanity limit on the argument, not a buffer size


@numba.njit(cache=True, fastmath=False, nogil=True)
def _inverse_one(
    y: float,
    p: npt.NDArray[np.float32],
    bins: int,
    bound: float,
    log_slope: float,
    w: npt.NDArray[np.float64],
    h: npt.NDArray[np.float64],
) -> float:
    """Inverse of one spline at ``y``; ``p`` holds ``bins`` widths, ``bins`` heights and
    ``bins - 1`` interior derivatives, all unconstrained; ``w`` and ``h`` are scratch."""
    k = bins
    # squash and softmax of widths and heights (zuko: w / (1 + |2 w / ln slope|)); the
    # squashed values lie within |ln slope| / 2 (< 373 for any float64 slope), so the
    # exponentials cannot overflow and the softmax needs no max subtraction
    wsum = 0.0
    hsum = 0.0
    for i in range(k):
        a = float(p[i])
        a = math.exp(a / (1.0 + abs(2.0 * a / log_slope)))
        w[i] = a
        wsum += a
        b = float(p[k + i])
        b = math.exp(b / (1.0 + abs(2.0 * b / log_slope)))
        h[i] = b
        hsum += b
    # vertical knots: bound * (2 * cumsum(heights) - 1); find the bin holding y
    cum = 0.0
    y0 = -bound
    if not (y > y0):
        return y  # left tail: identity (zuko's mask is false for k = -1)
    j = -1
    y1 = y0
    for i in range(k):
        cum += h[i] / hsum
        y1 = bound * (2.0 * cum - 1.0)
        if y <= y1:
            j = i
            break
        y0 = y1
    if j < 0:
        return y  # right tail
    cw0 = 0.0
    for i in range(j):
        cw0 += w[i] / wsum
    cw1 = cw0 + w[j] / wsum
    x0 = bound * (2.0 * cw0 - 1.0)
    x1 = bound * (2.0 * cw1 - 1.0)
    # knot derivatives exp(d / (1 + |d / ln slope|)), 1 at both ends
    d0 = 1.0
    d1 = 1.0
    if j > 0:
        a = float(p[2 * k + j - 1])
        d0 = math.exp(a / (1.0 + abs(a / log_slope)))
    if j < k - 1:
        a = float(p[2 * k + j])
        d1 = math.exp(a / (1.0 + abs(a / log_slope)))
    dy = y1 - y0
    s = dy / (x1 - x0)
    yr = y - y0
    g = d0 + d1 - 2.0 * s
    qa = dy * (s - d0) + yr * g
    qb = dy * d0 - yr * g
    qc = -s * yr
    disc = max(qb * qb - 4.0 * qa * qc, 0.0)
    z = 2.0 * qc / (-qb - math.sqrt(disc))
    return float(x0 + z * (x1 - x0))


@numba.njit(cache=True, parallel=True, fastmath=False, nogil=True)
def _inverse_rows(
    y: npt.NDArray[np.float32],
    params: npt.NDArray[np.float32],
    bins: int,
    bound: float,
    log_slope: float,
    out: npt.NDArray[np.float32],
) -> None:
    n, d = y.shape
    for r in numba.prange(n):
        w = np.empty(bins)
        h = np.empty(bins)
        for c in range(d):
            out[r, c] = _inverse_one(float(y[r, c]), params[r, c], bins, bound, log_slope, w, h)


def rqs_inverse(
    y: npt.NDArray[np.float32],
    params: npt.NDArray[np.float32],
    bins: int,
    bound: float = 5.0,
    slope: float = 1e-3,
    threads: int | None = None,
) -> npt.NDArray[np.float32]:
    """Invert zuko's monotonic RQ spline elementwise.

    Args:
        y: Spline outputs, shape ``(N, D)``, float32.
        params: Unconstrained spline parameters, shape ``(N, D, 3 * bins - 1)`` (widths,
            heights, interior knot derivatives, in zuko's order), float32.
        bins: Number of spline bins ``K`` (at most 64).
        bound: The spline's domain ``[-bound, bound]``; identity outside.
        slope: zuko's minimum slope (enters through the squashing of the parameters).
        threads: Threads of the kernel (None: numba's setting; capped at numba's maximum).

    Returns:
        The inputs ``x`` with ``spline(x) = y``, shape ``(N, D)``, float32.

    Raises:
        ValueError: Shapes that do not match, more than 64 bins, a bound that is not finite
            and > 0, or a slope outside (0, 1).
    """
    if not 1 <= bins <= _MAX_BINS:
        raise ValueError(f"rqs_inverse supports 1-{_MAX_BINS} bins, got {bins}")
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"rqs_inverse: bound must be finite and > 0, got {bound}")
    if not 0 < slope < 1:
        raise ValueError(
            f"rqs_inverse: slope (zuko's minimum slope) must be in (0, 1), got {slope}"
        )
    if y.ndim != 2 or params.shape != (*y.shape, 3 * bins - 1):
        raise ValueError(
            f"rqs_inverse: y {y.shape} and params {params.shape} do not match "
            f"(N, D) and (N, D, {3 * bins - 1})"
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    params = np.ascontiguousarray(params, dtype=np.float32)
    out = np.empty_like(y)
    before = numba.get_num_threads()
    if threads is not None:
        limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        numba.set_num_threads(max(1, min(threads, limit)))
    try:
        _inverse_rows(y, params, bins, float(bound), math.log(slope), out)
    finally:
        numba.set_num_threads(before)
    return out
