"""Scalar numerics shared by every kernel: the one home of each stable formula.

Conventions: all functions are Numba ``njit`` and inlined into the kernels;
they compute in float64 whatever the array dtype (float32 inputs gain accuracy
and lose nothing we test for), and they are exact at ``±inf``:

* ``shifted(z, m)`` is ``z - m`` for the log-sum-exp shift, defined as 0 where
  ``z == m`` so that ``+inf`` logits (tied at the maximum) give 0, not NaN.
* ``exp(-|z|)`` is the only exponential a logistic needs: both ``sigmoid(z)``
  and ``sigmoid(-z)`` come from it without subtraction, so ``1 - p`` keeps its
  digits when ``p`` is within an ulp of 1.
"""

from __future__ import annotations

import math

from numba import njit

_inline = njit(inline="always", cache=True)


@_inline
def shifted(z, m):
    """``z - m`` for a row maximum ``m``, with ``shifted(m, m) == 0`` also at inf."""
    if z == m:
        return 0.0
    return float(z) - float(m)


@_inline
def sigmoid_pair(z):
    """Return ``(sigmoid(z), sigmoid(-z), sigmoid(z) * sigmoid(-z))`` from one exp.

    Neither value is formed as ``1 - other``: both are accurate to a few ulps
    over the whole range, including ``z = ±inf`` (exactly 0 and 1).
    """
    t = math.exp(-abs(float(z)))
    r = 1.0 / (1.0 + t)
    small = t * r
    if z >= 0.0:
        return r, small, small * r
    return small, r, small * r


@_inline
def softplus_pair(z):
    """Return ``(softplus(z), softplus(-z))`` = ``(-log sigmoid(-z), -log sigmoid(z))``.

    ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``: no overflow, and the tail
    ``log1p`` keeps tiny losses (a confident, correct logit) to full precision.
    """
    zf = float(z)
    tail = math.log1p(math.exp(-abs(zf)))
    return max(zf, 0.0) + tail, max(-zf, 0.0) + tail


@_inline
def weighted(coef, value):
    """``coef * value`` with ``0 * inf == 0``: a zero-weight term never poisons a sum."""
    if coef == 0.0:
        return 0.0
    return coef * value


# Deterministic reductions.  A prange reduction is combined in whatever order
# the scheduler ran the chunks, so its last bits change from call to call (and
# with the thread count).  Kernels instead split rows into a fixed number of
# blocks, sum each block in order and then the block sums in order: the result
# is bit-identical for every call, thread count and threading layer.
N_BLOCKS = 512


@_inline
def n_blocks(n):
    return min(n, N_BLOCKS)


@_inline
def block_start(b, n, nb):
    return b * n // nb


@_inline
def ordered_sum(partial):
    total = 0.0
    for b in range(partial.shape[0]):
        total += partial[b]
    return total
