"""Scalar numerics shared by every kernel: the one home of each stable formula.

Conventions: all functions are Numba ``njit`` and inlined into the kernels;
they compute in float64 whatever the array dtype, so a float32 output is the
float64 result rounded once (tests/test_accuracy.py checks this bit for
bit), and they are exact at ``±inf``.  The one exception is the ``*_f32``
functions, which compute in float32 for the float32 kernels of binary
cross-entropy and binary focal loss (eight lanes of AVX2 instead of four, and
shorter polynomials; within a few float32 ulps; see
:mod:`nbloss.kernels.elementwise`):

* Every value read from an array is taken to float64 with ``np.float64(x)``,
  never ``float(x)``: Numba's ``float`` keeps a float32 a float32, so
  ``float(z) - float(m)`` of float32 logits was a float32 subtraction (an
  error of up to ``|z - m| 2^-24`` in the shifted logit, and as much
  relative error in its exponential: CrossEntropy gradients up to 15
  float32 ulps off at K = 7 and logits of scale 3, before 2026-11-24).  The
  kernels keep intermediate values (exponentials, coefficients) in float64:
  scratch, or a float64 output row, never a float32 one.
* ``shifted(z, m)`` is ``z - m`` for the log-sum-exp shift, defined as 0 where
  ``z == m`` so that ``+inf`` logits (tied at the maximum) give 0, not NaN.
* ``exp(-|z|)`` is the only exponential a logistic needs: both ``sigmoid(z)``
  and ``sigmoid(-z)`` come from it without subtraction, so ``1 - p`` keeps its
  digits when ``p`` is within an ulp of 1.
* Every exponential the kernels take has a non-positive argument (shifted
  logits, ``-|z|``, ``gamma log v``, ``-gamma softplus(x)``); every logarithm is ``log1p(t)`` with
  ``t = exp(-|z|)`` in [0, 1] (the softplus tail), ``log1p(S')`` with ``S' >= 0``
  (a softmax row's log-sum-exp) or ``log v`` of a focal factor ``v`` in [0, 1]
  (inside ``v ** gamma``).  :func:`exp_nonpos`, :func:`log1p_unit`,
  :func:`log1p_nonneg` and :func:`pow_unit` cover exactly those domains, branch
  free, so that LLVM vectorises the loops that call them (libm's ``exp``,
  ``log1p`` and ``pow`` are opaque calls, and Intel SVML does not work with
  current Numba).  Their polynomials use :func:`fma` (one rounding, and half
  the instructions of a multiply and an add).  Worst errors, measured against
  glibc and mpmath, are in tests/test_exp.py.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .kernels import inlined


def _bitcast(name: str, source, target, accepts=None):
    """The intrinsic ``name(x)``: the ``target`` value with the bits of ``x``, a ``source`` (an LLVM
    bitcast).  It types arguments that are ``source`` or satisfy ``accepts``; Numba casts them to
    ``source`` first."""

    def typer(typingctx, x):
        if x != source and not (accepts is not None and accepts(x)):
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = f"Reinterpret a {source} as the {target} with the same bits."
    return intrinsic(typer)


_float64_from_bits = _bitcast("_float64_from_bits", types.int64, types.float64)
_int64_from_bits = _bitcast("_int64_from_bits", types.float64, types.int64)
# a wider integer is truncated first: Numba widens int32 arithmetic to int64
_float32_from_bits = _bitcast("_float32_from_bits", types.int32, types.float32,
                              accepts=lambda t: isinstance(t, types.Integer))
_int32_from_bits = _bitcast("_int32_from_bits", types.float32, types.int32)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (LLVM's ``llvm.fma``; vectorised to ``vfmadd``).

    Exact semantics, unlike the ``contract`` fastmath flag: the result does not
    depend on what the optimiser decides to fuse.  In float32 when all three
    arguments are float32, else in float64.
    """
    if not all(isinstance(t, (types.Float, types.Integer)) for t in (a, b, c)):
        return None
    single = all(t == types.float32 for t in (a, b, c))
    result = types.float32 if single else types.float64

    def codegen(context, builder, signature, args):
        ftype = context.get_value_type(result)
        values = [context.cast(builder, v, t, result) for v, t in zip(args, signature.args)]
        fn = builder.module.declare_intrinsic("llvm.fma", [ftype], ir.FunctionType(ftype, [ftype] * 3))
        return builder.call(fn, values)

    return result(a, b, c), codegen


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2^11 (Cody and Waite)
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
# 1/k! for k = 2..13: on |r| <= ln(2)/2 the Taylor remainder is below 4e-18 relative
_C2, _C3, _C4, _C5, _C6, _C7 = 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040
_C8, _C9, _C10, _C11, _C12, _C13 = 1 / 40320, 1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800
# below this exp underflows to 0 even as a subnormal
_EXP_MIN_ARG = -746.0


# Integers to and from float64 without a conversion instruction (AVX2 has none for int64,
# so a vectorised loop converted element by element: exp_nonpos took 4.1 ns an element
# that way, 1.7 this way, the same bits): ``i + 1.5 * 2^52`` holds ``i`` in its low
# mantissa bits for ``|i| < 2^51``.
_ROUND_MAGIC = 1.5 * 2.0**52
_ROUND_MAGIC_BITS = int(np.float64(_ROUND_MAGIC).view(np.int64))


@inlined
def _pow2(k):
    """``2^k`` for an integral float64 ``k`` in [-1022, 1023], from exponent bits: the low 12 bits
    of ``k + 1023 + 1.5 * 2^52`` are ``k + 1023``, and the shift drops the rest."""
    return _float64_from_bits(_int64_from_bits(k + (_ROUND_MAGIC + 1023.0)) << 52)


@inlined
def _float_of_small_int(i):
    """``float(i)`` for an int64 ``|i| < 2^51``, by the same magic."""
    return _float64_from_bits(i + _ROUND_MAGIC_BITS) - _ROUND_MAGIC


@inlined
def exp_nonpos(x):
    """``exp(x)`` for ``x <= 0``, vectorisable; worst error 1.0 ulp (tests/test_exp.py).

    ``x = k ln2 + r`` with ``|r| <= ln2 / 2``; ``exp(r)`` by a degree-13
    polynomial; ``2^k`` built from exponent bits in two halves so that results
    down to the smallest subnormal are right.  ``exp(-inf) = 0``, NaN stays
    NaN (``r`` is formed from the unclamped ``x``), ``exp(0) = 1`` exactly.
    Only non-positive arguments are supported (positive ones overflow ``2^k``
    for ``x > 709``).
    """
    x = np.float64(x)
    k, r = _exp_reduce(x)
    return _exp_finish(x, k, r)


@inlined
def _exp_reduce(x):
    """``(k, r)`` with ``x = k ln2 + r``, ``|r| <= ln2 / 2`` (Cody and Waite, ``k`` from the clamped ``x``).

    ``k`` is an integral float64: ``math.floor`` returns an int64, and AVX2 has no vector
    conversion between float64 and int64, so LLVM converted each element on its own."""
    k = np.floor(fma(max(x, _EXP_MIN_ARG), _LOG2E, 0.5))
    return k, fma(-k, _LN2_LO, fma(-k, _LN2_HI, x))


@inlined
def _exp_tail(r):
    """``(exp(r) - 1 - r) / r^2 = sum_{k=2..13} r^(k-2) / k!`` by Estrin's scheme: pairs of terms,
    then pairs of pairs in ``r^2`` and ``r^4``, so its dependent chain is four operations deep
    instead of Horner's eleven.  In a vectorised loop that chain, not the count of operations, set the pace:
    a loop of :func:`exp_nonpos` took 1.77 ns an element with Horner's rule, 1.50 with this (one thread, in
    cache); the worst error is 1.0 ulp either way."""
    r2 = r * r
    r4 = r2 * r2
    low = fma(r2, fma(r, _C5, _C4), fma(r, _C3, _C2))
    mid = fma(r2, fma(r, _C9, _C8), fma(r, _C7, _C6))
    high = fma(r2, fma(r, _C13, _C12), fma(r, _C11, _C10))
    return fma(r4, fma(r4, high, mid), low)


@inlined
def _exp_finish(x, k, r):
    """``2^k exp(r)``, or 0 where ``x`` underflows; ``2^k`` in two halves, so that a
    subnormal result is right where ``2^k`` alone is not a float64."""
    poly = fma(r * r, _exp_tail(r), r) + 1.0
    k_half = np.floor(k * 0.5)
    scaled = poly * _pow2(k_half) * _pow2(k - k_half)
    return 0.0 if x < _EXP_MIN_ARG else scaled


# float32 arithmetic (the float32 kernels of the sigmoid losses): eight lanes of AVX2 against
# float64's four, and a polynomial of degree 7 against 13.  ``x = k ln2 + r`` as above, ``ln2`` split
# so that ``k * _LN2_HI_F32`` is exact (Cephes' ``expf``, whose coefficients these are; its
# reduction and polynomial, scaled as in :func:`_exp_finish`).
_LOG2E_F32 = np.float32(_LOG2E)
_LN2_HI_F32 = np.float32(0.693359375)
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_E2_F32, _E3_F32, _E4_F32 = np.float32(5.0000001201e-1), np.float32(1.6666665459e-1), np.float32(4.1665795894e-2)
_E5_F32, _E6_F32, _E7_F32 = np.float32(8.3334519073e-3), np.float32(1.3981999507e-3), np.float32(1.9875691500e-4)
# below this expf underflows to 0 even as a subnormal (exp(-104) < 2^-150)
_EXP_MIN_ARG_F32 = np.float32(-104.0)
ZERO_F32, HALF_F32, ONE_F32 = np.float32(0.0), np.float32(0.5), np.float32(1.0)
_ROUND_MAGIC_F32 = np.float32(1.5 * 2.0**23 + 127.0)


@inlined
def _pow2_f32(k):
    """``2^k`` for an integral float32 ``k`` in [-126, 127]: the low 9 bits of ``k + 127 + 1.5 * 2^23``
    are ``k + 127``, shifted into the exponent field."""
    return _float32_from_bits(_int32_from_bits(k + _ROUND_MAGIC_F32) << 23)


@inlined
def exp_nonpos_f32(x):
    """``exp(x)`` for a float32 ``x <= 0`` in float32 arithmetic, vectorisable; worst error 1.01 ulp
    over every float32 in [-104, 0] (tests/test_exp.py checks them all).

    Same edges as :func:`exp_nonpos`: ``exp(-inf) = 0``, NaN stays NaN, ``exp(0) = 1``, subnormal
    results right.
    """
    k, r = _exp_reduce_f32(x)
    return _exp_finish_f32(x, k, r)


@inlined
def _exp_reduce_f32(x):
    """:func:`_exp_reduce` of a float32 ``x`` in float32: ``(k, r)`` with ``x = k ln2 + r``."""
    k = np.floor(fma(max(x, _EXP_MIN_ARG_F32), _LOG2E_F32, HALF_F32))
    return k, fma(-k, _LN2_LO_F32, fma(-k, _LN2_HI_F32, x))


@inlined
def _exp_finish_f32(x, k, r):
    """:func:`_exp_finish` in float32: ``2^k exp(r)``, or 0 where ``x`` underflows."""
    tail = fma(fma(fma(fma(fma(_E7_F32, r, _E6_F32), r, _E5_F32), r, _E4_F32), r, _E3_F32), r, _E2_F32)
    poly = fma(r * r, tail, r) + ONE_F32
    k_half = np.floor(k * HALF_F32)
    scaled = poly * _pow2_f32(k_half) * _pow2_f32(k - k_half)
    return ZERO_F32 if x < _EXP_MIN_ARG_F32 else scaled


_LN2 = 0.6931471805599453
# 2 / (2k + 1) for k = 1..11: log1p(f) = 2 atanh(s), s = f / (2 + f), |s| <= 1/5;
# the first term left out is below 2^-60 of the result
_A1, _A2, _A3, _A4, _A5, _A6 = 2 / 3, 2 / 5, 2 / 7, 2 / 9, 2 / 11, 2 / 13
_A7, _A8, _A9, _A10, _A11 = 2 / 15, 2 / 17, 2 / 19, 2 / 21, 2 / 23


@inlined
def log1p_unit(t):
    """``log1p(t)`` for ``t`` in [0, 1] (the softplus tail), vectorisable; worst error in tests/test_exp.py.

    For ``t >= 1/2``, ``1 + t = 2 (1 + f)`` with ``f = (t - 1) / 2`` (exact,
    Sterbenz), else ``f = t``; so ``f`` is in [-1/4, 1/2) and ``log1p(t) =
    c + log1p(f)`` with ``c`` 0 or ``ln 2``, ``log1p(f)`` from
    :func:`_log1p_parts`.  ``log1p(0) = 0`` exactly, NaN stays NaN.
    """
    t = np.float64(t)
    upper = t >= 0.5
    f = (t - 1.0) * 0.5 if upper else t
    half_f2, s_term = _log1p_parts(f)
    return (_LN2 if upper else 0.0) + (f - (half_f2 - s_term))


@inlined
def _log1p_parts(f):
    """``(f^2 / 2, s (f^2 / 2 + R(s^2)))`` with ``log1p(f) = f - (f^2/2 - s (f^2/2 + R))`` (fdlibm's form),
    for ``f`` in [-0.3, 0.5]: ``s = f / (2 + f)``, ``R`` the tail of the ``2 atanh(s)`` series.

    The only rounding that matters is that of ``s``, scaled by the small ``f^2/2 + R``.
    """
    s = f / (2.0 + f)
    z = s * s
    # Estrin's scheme in z, as in _exp_tail: a chain five deep instead of Horner's eleven
    z2 = z * z
    z4 = z2 * z2
    low = fma(z2, fma(z, _A4, _A3), fma(z, _A2, _A1))
    mid = fma(z2, fma(z, _A8, _A7), fma(z, _A6, _A5))
    high = fma(z2, _A11, fma(z, _A10, _A9))
    tail = z * fma(z4, fma(z4, high, mid), low)
    half_f2 = 0.5 * f * f
    return half_f2, s * (half_f2 + tail)


# 2 / (2k + 1) for k = 1..5 in float32: the first term left out is below 2^-30 of the result
_A1_F32, _A2_F32, _A3_F32, _A4_F32, _A5_F32 = (np.float32(a) for a in (_A1, _A2, _A3, _A4, _A5))
_LN2_F32 = np.float32(_LN2)
_TWO_F32 = np.float32(2.0)


@inlined
def log1p_unit_f32(t):
    """``log1p(t)`` for a float32 ``t`` in [0, 1] in float32 arithmetic, vectorisable: the reduction of
    :func:`log1p_unit` and a five-term tail; worst error over every float32 in [0, 1] in tests/test_exp.py."""
    upper = t >= HALF_F32
    f = (t - ONE_F32) * HALF_F32 if upper else t
    half_f2, s_term = _log1p_parts_f32(f)
    return (_LN2_F32 if upper else ZERO_F32) + (f - (half_f2 - s_term))


@inlined
def _log1p_parts_f32(f):
    """:func:`_log1p_parts` of a float32 ``f`` in [-0.3, 0.5], in float32 (``|s| <= 1/5``)."""
    s = f / (_TWO_F32 + f)
    z = s * s
    tail = z * fma(fma(fma(fma(_A5_F32, z, _A4_F32), z, _A3_F32), z, _A2_F32), z, _A1_F32)
    half_f2 = HALF_F32 * f * f
    return half_f2, s * (half_f2 + tail)


_SQRT2 = 1.4142135623730951
_SMALLEST_NORMAL = 2.2250738585072014e-308
_TWO_54 = 18014398509481984.0
_MANTISSA_BITS = (1 << 52) - 1


@inlined
def _log_split(u):
    """``(k, f)`` with ``u = 2^k (1 + f)`` and ``1 + f`` in [sqrt(1/2), sqrt(2)], for finite ``u > 0``
    (subnormals scaled up first); ``f = m - 1`` is exact (Sterbenz)."""
    subnormal = u < _SMALLEST_NORMAL
    bits = _int64_from_bits(u * _TWO_54 if subnormal else u)
    k = (bits >> 52) - (1023 + 54 if subnormal else 1023)
    m = _float64_from_bits((bits & _MANTISSA_BITS) | (1023 << 52))
    high = m > _SQRT2
    return _float_of_small_int(k + 1 if high else k), (m * 0.5 if high else m) - 1.0


_SQRT2_F32 = np.float32(_SQRT2)
_SMALLEST_NORMAL_F32 = np.float32(2.0**-126)
_TWO_25_F32 = np.float32(2.0**25)
_MANTISSA_BITS_F32 = (1 << 23) - 1
# as _ROUND_MAGIC: ``i + 1.5 * 2^23`` holds a small integer ``i`` in its low mantissa bits
_INT_MAGIC_F32 = np.float32(1.5 * 2.0**23)
_INT_MAGIC_BITS_F32 = int(_INT_MAGIC_F32.view(np.int32))


@inlined
def _float_of_small_int_f32(i):
    """:func:`_float_of_small_int` in float32: ``float32(i)`` for an integer ``|i| < 2^22``."""
    return _float32_from_bits(i + _INT_MAGIC_BITS_F32) - _INT_MAGIC_F32


@inlined
def _log_split_f32(u):
    """:func:`_log_split` of a float32 ``u`` in float32: ``(k, f)``, ``u = 2^k (1 + f)``."""
    subnormal = u < _SMALLEST_NORMAL_F32
    bits = _int32_from_bits(u * _TWO_25_F32 if subnormal else u)
    k = (bits >> 23) - (127 + 25 if subnormal else 127)
    m = _float32_from_bits((bits & _MANTISSA_BITS_F32) | (127 << 23))
    high = m > _SQRT2_F32
    return _float_of_small_int_f32(k + 1 if high else k), (m * HALF_F32 if high else m) - ONE_F32


@inlined
def log1p_nonneg(x):
    """``log1p(x)`` for ``x >= 0`` (``log S = log1p(S')`` of a softmax row), vectorisable.

    ``u = 1 + x`` rounded, ``c`` its rounding error (exact, by Fast2Sum with the
    larger operand first); ``u = 2^k (1 + f)`` and ``log1p(x) = k ln2 +
    log1p(f) + c / u`` to first order in the tiny ``c / u`` (fdlibm's
    ``log1p``).  ``log1p(x) = x`` for ``x`` below an ulp of 1, +inf and NaN
    pass through.  Worst error in tests/test_exp.py.
    """
    x = np.float64(x)
    u = 1.0 + x
    c = 1.0 - (u - x) if x > 1.0 else x - (u - 1.0)
    k, f = _log_split(u)
    half_f2, s_term = _log1p_parts(f)
    result = k * _LN2_HI + (f - (half_f2 - (s_term + (k * _LN2_LO + c / u))))
    return result if x < math.inf else x


@inlined
def pow_unit(v, gamma):
    """``v ** gamma`` for ``v`` in [0, 1] and ``gamma >= 0`` (a focal factor), vectorisable.

    ``exp(gamma log v)``, where an error ``d`` in the exponent is a relative
    error ``d`` of the result: for ``v = 1e-300`` the exponent is about -1e3,
    so a plain double would lose ten bits.  So ``log v = k ln2 + log1p(f)`` is
    carried as an unevaluated sum ``hi + lo`` (``k ln2_hi`` is exact, the two
    additions' errors are kept by Fast2Sum), ``gamma (hi + lo)`` as ``p +
    p_lo`` (the product's error from :func:`fma`), and ``p_lo`` is added to the
    reduced argument of the exponential.  ``0 ** gamma = 0`` for ``gamma > 0``,
    ``v ** 0 = 1`` (as ``pow``, also for NaN), NaN stays NaN otherwise.
    """
    v = np.float64(v)
    hi, lo = _log_hi_lo(v, _log_split, _log1p_parts, _LN2_HI, _LN2_LO)
    p = gamma * hi
    p_lo = fma(gamma, hi, -p) + gamma * lo
    return _exp_of_sum(p, p_lo, v, gamma == 0.0, _exp_reduce, _exp_finish, 0.0, 1.0)


_TWO_100 = 2.0**100


@inlined
def pow_unit_f32(v, gamma):
    """:func:`pow_unit` of a float32 ``v`` in float32 arithmetic; worst error in tests/test_exp.py.

    ``gamma`` (float64) is carried as two float32s, ``gamma_hi + gamma_lo``: rounded to one, a
    ``gamma`` such as 0.3 would be off by up to 2^-25 of itself, and that times ``log v`` (down to
    -103) a relative error of the power of up to 2e-6."""
    gamma_hi, gamma_lo = _gamma_f32(gamma)
    hi, lo = _log_hi_lo(v, _log_split_f32, _log1p_parts_f32, _LN2_HI_F32, _LN2_LO_F32)
    p = gamma_hi * hi
    p_lo = fma(gamma_hi, hi, -p) + fma(gamma_lo, hi, gamma_hi * lo)
    return _exp_of_sum(p, p_lo, v, gamma == 0.0, _exp_reduce_f32, _exp_finish_f32, ZERO_F32, ONE_F32)


@inlined
def _gamma_f32(gamma):
    """A float64 ``gamma`` as two float32s, ``(gamma_hi, gamma_lo)`` (see :func:`pow_unit_f32`)."""
    gamma = np.float64(gamma)
    # beyond 2^100 every v < 1 gives 0 and 1 gives 1 alike; a gamma past float32's range would make 0 * inf
    clamped = min(gamma, _TWO_100)
    gamma_hi = np.float32(clamped)
    return gamma_hi, np.float32(clamped - np.float64(gamma_hi))


@inlined
def sigmoid_power(x, gamma):
    """``sigmoid(-x) ** gamma`` for ``gamma >= 0``, as ``exp(-gamma softplus(x))``: no logarithm of the
    sigmoid is taken, so it costs an ``exp`` where :func:`pow_unit` of the sigmoid costs a logarithm too
    (the focal factor ``v = 1 - p_t`` of a 0/1 target, ``x`` its logit signed by the target).

    ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` (the exponential and ``log1p`` are those
    :func:`softplus_pair` takes, which LLVM merges with these).  As in :func:`pow_unit`, an error ``d``
    in the exponent is a relative error ``d`` of the result: ``gamma max(x, 0)`` is carried as ``p +
    p_lo`` (fma), its sum with ``gamma`` times the tail by TwoSum.  The tail (below ``ln 2``) is a
    double, so its rounding times ``gamma`` remains: within ``1 + 1.4 gamma`` ulps (tests/test_exp.py),
    where :func:`pow_unit` of the rounded sigmoid is within about twice that.  ``x = +inf`` gives 0,
    ``-inf`` gives 1, ``gamma = 0`` gives 1 (also for NaN), NaN stays NaN otherwise.
    """
    x = np.float64(x)
    m = max(x, 0.0)
    tail = log1p_unit(exp_nonpos(-abs(x)))
    p = gamma * m
    return _exp_of_softplus(p, fma(gamma, m, -p), gamma * tail, gamma == 0.0, _exp_reduce, _exp_finish, 0.0, 1.0)


@inlined
def sigmoid_power_f32(x, gamma):
    """:func:`sigmoid_power` of a float32 ``x`` in float32 arithmetic, ``gamma`` (float64) carried as
    two float32s as in :func:`pow_unit_f32`."""
    gamma_hi, gamma_lo = _gamma_f32(gamma)
    m = max(x, ZERO_F32)
    tail = log1p_unit_f32(exp_nonpos_f32(-abs(x)))
    p = gamma_hi * m
    p_lo = fma(gamma_hi, m, -p) + gamma_lo * m
    return _exp_of_softplus(p, p_lo, fma(gamma_hi, tail, gamma_lo * tail), gamma == 0.0, _exp_reduce_f32,
                            _exp_finish_f32, ZERO_F32, ONE_F32)


@inlined
def _exp_of_softplus(p, p_lo, q, gamma_is_zero, exp_reduce, exp_finish, zero, one):
    """``exp(-(p + p_lo + q))``, ``p + p_lo`` the exact ``gamma max(x, 0)`` and ``q`` the tail's product
    (see :func:`sigmoid_power`): ``p + q`` by TwoSum (either may be the larger), then :func:`_exp_of_sum`
    (whose ``v`` is 1 here: a power that underflows is 0 already)."""
    s = p + q
    s_q = s - p
    s_lo = (p - (s - s_q)) + (q - s_q)
    return _exp_of_sum(-s, -(s_lo + p_lo), one, gamma_is_zero, exp_reduce, exp_finish, zero, one)


@inlined
def _log_hi_lo(v, log_split, log1p_parts, ln2_hi, ln2_lo):
    """``log v = hi + lo`` for ``v > 0``, an unevaluated sum in the precision of ``v`` (see
    :func:`pow_unit`)."""
    k, f = log_split(v)
    half_f2, s_term = log1p_parts(f)
    deficit = half_f2 - s_term
    log1p_f = f - deficit
    log1p_f_err = (f - log1p_f) - deficit
    k_ln2 = k * ln2_hi
    hi = k_ln2 + log1p_f
    return hi, ((k_ln2 - hi) + log1p_f) + (log1p_f_err + k * ln2_lo)


@inlined
def _exp_of_sum(p, p_lo, v, gamma_is_zero, exp_reduce, exp_finish, zero, one):
    """``exp(p + p_lo)`` as ``v ** gamma`` (see :func:`pow_unit`): ``p_lo`` joins the reduced argument;
    0 for ``v = 0``, NaN for NaN, 1 for ``gamma = 0``."""
    e, r = exp_reduce(p)
    power = exp_finish(p, e, r + p_lo)
    power = power if v > zero else (v if v != v else zero)
    return one if gamma_is_zero else power


# Focal exponents whose kernels take ``v ** gamma`` by :func:`small_int_power`'s products (0, 1, 2, the
# default, and 3), and the halves between them, by :func:`half_int_power`'s products and a square root;
# the kernels for any other exponent take :func:`pow_unit`.  Each kernel calls one of the three
# unconditionally: a loop choosing between them at run time vectorises to each and a select, and every
# element pays for all (softmax focal at K = 10, n = 1e5, one thread: 75.6 ns a row with a choice of two,
# 72.7 with ``pow_unit`` alone; binary focal, n = 1e5: 18.0 ns an element against 16.7; the halves by a
# select in the integers' kernel made gamma 2 pay for the square root, 1.00x to 1.11x its time).
SMALL_INT_EXPONENTS = (0.0, 1.0, 2.0, 3.0)
HALF_INT_EXPONENTS = (0.5, 1.5, 2.5)


@inlined
def small_int_power(v, gamma):
    """``v ** gamma`` for ``gamma`` in :data:`SMALL_INT_EXPONENTS` only, by selects.

    ``v * v`` is correctly rounded, ``v * v * v`` within about an ulp; ``0 ** 0
    = 1`` as in ``pow``.  No branch and no call, so a loop over it vectorises
    (binary focal ``gradient_hessian`` at n = 1e7: 88 ms with libm's ``pow``
    behind a branch, 26 ms with this).  The caller must have checked
    ``gamma``: any other value gives a wrong power.
    """
    return _small_int_power(np.float64(v), gamma, 1.0)


@inlined
def small_int_power_f32(v, gamma):
    """:func:`small_int_power` of a float32 ``v``, in float32."""
    return _small_int_power(v, gamma, ONE_F32)


@inlined
def _small_int_power(v, gamma, one):
    a = v if gamma >= 1.0 else one
    b = v if gamma >= 2.0 else one
    c = v if gamma >= 3.0 else one
    return a * b * c


@inlined
def half_int_power(v, gamma):
    """``v ** gamma`` for ``gamma`` in :data:`HALF_INT_EXPONENTS` only: ``v^k sqrt(v)``, ``k = gamma - 1/2``.

    The square root is correctly rounded and an instruction (no call), so a loop over it vectorises
    (binary focal ``gradient_hessian`` at gamma 1.5, n = 1e6, one thread: 16.9 ns an element by
    :func:`pow_unit`, 8.3 by this, as at gamma 2);
    the worst error is in tests/test_exp.py.  ``0 ** gamma = 0``, ``1 ** gamma = 1``, NaN stays NaN.  The
    caller must have checked ``gamma``: any other value gives a wrong power.
    """
    return _half_int_power(np.float64(v), gamma, 1.0)


@inlined
def half_int_power_f32(v, gamma):
    """:func:`half_int_power` of a float32 ``v``, in float32."""
    return _half_int_power(v, gamma, ONE_F32)


@inlined
def _half_int_power(v, gamma, one):
    # ``v^k`` (k = 0, 1 or 2) by the integers' selects, carried as ``p + p_lo`` (the error of ``v * v`` by
    # fma), so that of the result's roundings only the square root's and the last product's remain: at
    # gamma 2.5, 2.0 ulps at worst without this
    p = _small_int_power(v, gamma, one)
    p_lo = fma(v, v, -p) if gamma >= 2.0 else one - one
    root = math.sqrt(v)
    return fma(p, root, p_lo * root)


@inlined
def shifted(z, m):
    """``z - m`` for a row maximum ``m``, with ``shifted(m, m) == 0`` also at inf."""
    if z == m:
        return 0.0
    return np.float64(z) - np.float64(m)


@inlined
def sigmoid_pair(z):
    """Return ``(sigmoid(z), sigmoid(-z), sigmoid(z) * sigmoid(-z))`` from one exp.

    Neither value is formed as ``1 - other``: both are accurate to a few ulps
    over the whole range, including ``z = ±inf`` (exactly 0 and 1).
    """
    return _sigmoid_pair(np.float64(z), exp_nonpos, 1.0)


@inlined
def sigmoid_pair_f32(z):
    """:func:`sigmoid_pair` of a float32 ``z`` in float32 arithmetic."""
    return _sigmoid_pair(z, exp_nonpos_f32, ONE_F32)


@inlined
def _sigmoid_pair(z, exp, one):
    t = exp(-abs(z))
    r = one / (one + t)
    small = t * r
    if z >= 0.0:
        return r, small, small * r
    return small, r, small * r


@inlined
def softplus_pair(z):
    """Return ``(softplus(z), softplus(-z))`` = ``(-log sigmoid(-z), -log sigmoid(z))``.

    ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``: no overflow, and the tail
    ``log1p`` keeps tiny losses (a confident, correct logit) to full precision.
    """
    return _softplus_pair(np.float64(z), exp_nonpos, log1p_unit, 0.0)


@inlined
def softplus_pair_f32(z):
    """:func:`softplus_pair` of a float32 ``z`` in float32 arithmetic."""
    return _softplus_pair(z, exp_nonpos_f32, log1p_unit_f32, ZERO_F32)


@inlined
def _softplus_pair(z, exp, log1p, zero):
    tail = log1p(exp(-abs(z)))
    return max(z, zero) + tail, max(-z, zero) + tail


@inlined
def weighted(coef, value):
    """``coef * value`` with ``0 * inf == 0``: a zero-weight term never poisons a sum."""
    if coef == 0.0:
        return 0.0
    return coef * value


@inlined
def weighted_f32(coef, value):
    """:func:`weighted` of float32 values, in float32 (the float64 zero would widen the result)."""
    if coef == 0.0:
        return ZERO_F32
    return coef * value


@inlined
def as_float64(x):
    """``x`` as float64: the working precision of every kernel but the float32 ones of the sigmoid losses."""
    return np.float64(x)


@inlined
def as_float32(x):
    """``x`` as float32: the working precision of the float32 kernels of the sigmoid losses."""
    return np.float32(x)


# Deterministic reductions.  A prange reduction is combined in whatever order
# the scheduler ran the chunks, so its last bits change from call to call (and
# with the thread count).  Kernels instead split rows into a fixed number of
# blocks, sum each block in order and then the block sums in order: the result
# is bit-identical for every call, thread count and threading layer.
# Kernels slice each block and index it from 0: with ``range(lo, hi)`` Numba
# cannot prove indices non-negative, keeps wraparound checks, and LLVM does not
# vectorise (measured: 2.5x slower on a memory-bound loop).
# Blocks hold at least ``min_block`` items: per-block work (views, a partial
# sum, a thread handing over) costs as much as a few rows, and at n = 1e3 with
# 512 blocks of two rows it was half the kernel's time.  ``MIN_BLOCK`` is for
# rows of a softmax (K values each).  The element-wise kernels' items (and the
# passes over labels or weights) take about a nanosecond each: with blocks of
# ``MIN_BLOCK`` elements, HuberLoss ``gradient_hessian`` at n = 1e5 (512 blocks
# of 195) took 137 us on one thread, with ``MIN_FLAT_BLOCK`` (24 blocks) 102.
N_BLOCKS = 512
MIN_BLOCK = 32
MIN_FLAT_BLOCK = 4096


@inlined
def n_blocks(n, min_block=MIN_BLOCK):
    """How many blocks ``n`` items are split into: ``n // min_block``, at least 1 (for ``n > 0``), at most
    ``N_BLOCKS``; a function of ``n`` alone, never of the thread count."""
    return min(max(n // min_block, min(n, 1)), N_BLOCKS)


@inlined
def block_bounds(b, n, nb):
    """``(lo, hi)`` of block ``b`` of ``nb`` over ``n`` items."""
    return b * n // nb, (b + 1) * n // nb


@inlined
def ordered_sum(partial):
    total = 0.0
    for b in range(partial.shape[0]):
        total += partial[b]
    return total


@inlined
def first_row(firsts, none):
    """The least of the blocks' first bad rows ``firsts`` (each ``none`` where its block had none): the
    first bad row overall, or ``none``."""
    least = none
    for b in range(firsts.shape[0]):
        least = min(least, firsts[b])
    return least
