"""Scalar numerics shared by every kernel: the one home of each stable formula.

Conventions: all functions are Numba ``njit`` and inlined into the kernels;
they compute in float64 whatever the array dtype (float32 inputs gain accuracy
and lose nothing we test for), and they are exact at ``±inf``:

* ``shifted(z, m)`` is ``z - m`` for the log-sum-exp shift, defined as 0 where
  ``z == m`` so that ``+inf`` logits (tied at the maximum) give 0, not NaN.
* ``exp(-|z|)`` is the only exponential a logistic needs: both ``sigmoid(z)``
  and ``sigmoid(-z)`` come from it without subtraction, so ``1 - p`` keeps its
  digits when ``p`` is within an ulp of 1.
* Every exponential the kernels take has a non-positive argument (shifted
  logits, ``-|z|``), so :func:`exp_nonpos` covers exactly that domain, branch
  free, so that LLVM vectorises the loops that call it (libm's ``exp`` is an
  opaque call, and Intel SVML does not work with current Numba).
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_inline = njit(inline="always", cache=True)


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as the float64 with the same bits (an LLVM bitcast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2^11 (Cody and Waite)
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
# 1/k! for k = 2..13: on |r| <= ln(2)/2 the Taylor remainder is below 4e-18 relative
_C2, _C3, _C4, _C5, _C6, _C7 = 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040
_C8, _C9, _C10, _C11, _C12, _C13 = 1 / 40320, 1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800
# below this exp underflows to 0 even as a subnormal
_EXP_MIN_ARG = -746.0


@_inline
def exp_nonpos(x):
    """``exp(x)`` for ``x <= 0``, vectorisable; worst error 1.1 ulp (tests/test_exp.py).

    ``x = k ln2 + r`` with ``|r| <= ln2 / 2``; ``exp(r)`` by a degree-13
    polynomial; ``2^k`` built from exponent bits in two halves so that results
    down to the smallest subnormal are right.  ``exp(-inf) = 0``, NaN stays
    NaN (``r`` is formed from the unclamped ``x``), ``exp(0) = 1`` exactly.
    Only non-positive arguments are supported (positive ones overflow ``2^k``
    for ``x > 709``).
    """
    x = float(x)
    clamped = max(x, _EXP_MIN_ARG)
    k = math.floor(clamped * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    poly = 1.0 + r * (1.0 + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * (
        _C7 + r * (_C8 + r * (_C9 + r * (_C10 + r * (_C11 + r * (_C12 + r * _C13))))))))))))
    k_int = int(k)
    k_half = k_int >> 1
    scaled = poly * _float64_from_bits((k_half + 1023) << 52) * _float64_from_bits((k_int - k_half + 1023) << 52)
    return 0.0 if x < _EXP_MIN_ARG else scaled


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
    t = exp_nonpos(-abs(float(z)))
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
    tail = math.log1p(exp_nonpos(-abs(zf)))
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
# Kernels slice each block and index it from 0: with ``range(lo, hi)`` Numba
# cannot prove indices non-negative, keeps wraparound checks, and LLVM does not
# vectorise (measured: 2.5x slower on a memory-bound loop).
N_BLOCKS = 512


@_inline
def n_blocks(n):
    return min(n, N_BLOCKS)


@_inline
def block_bounds(b, n, nb):
    """``(lo, hi)`` of block ``b`` of ``nb`` over ``n`` items."""
    return b * n // nb, (b + 1) * n // nb


@_inline
def ordered_sum(partial):
    total = 0.0
    for b in range(partial.shape[0]):
        total += partial[b]
    return total
