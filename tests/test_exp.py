"""The kernels' own exponential, logarithms and power (``exp_nonpos``, ``log1p_unit``,
``log1p_nonneg``, ``pow_unit``, ``sigmoid_power``, and the float32 ``exp_nonpos_f32`` and ``log1p_unit_f32``),
proven on their whole domains.

Every exponential in nbloss has a non-positive argument, so the domain of
``exp_nonpos`` is [-inf, 0]; the logarithms are the softplus tail ``log1p(t)``,
``t`` in [0, 1], and a softmax row's ``log1p(S')``, ``S' >= 0``; the power is a
focal factor ``v ** gamma``, ``v`` in [0, 1].  Dense sweeps (millions of
points, plus every power of two and the edges of the subnormal range) are
compared with glibc (within 1 ulp; its ``pow`` is correctly rounded); random
subsamples are compared with 40-digit mpmath.  The float32 functions are run
on every float32 of their domains (about a billion each).  The worst errors in
ulps go to the report table.
"""

from __future__ import annotations

import math
import platform
import re

import mpmath as mp
import numpy as np
import pytest
from llvmlite import binding as llvm
from numba import config, njit, prange

from nbloss._numerics import (
    HALF_INT_EXPONENTS,
    exp_nonpos,
    exp_nonpos_f32,
    half_int_power,
    half_int_power_f32,
    log1p_nonneg,
    log1p_unit,
    log1p_unit_f32,
    pow_unit,
    pow_unit_f32,
    sigmoid_power,
    sigmoid_power_f32,
    small_int_power_f32,
)


def _elementwise(scalar_fn):
    """A compiled loop ``out[i] = scalar_fn(x[i])``, the way the kernels call it (NumPy's error model)."""

    @njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = scalar_fn(x[i])

    return apply


_apply = _elementwise(exp_nonpos)
_apply_log1p = _elementwise(log1p_unit)
_apply_log1p_nonneg = _elementwise(log1p_nonneg)
_apply_f32 = _elementwise(exp_nonpos_f32)
_apply_log1p_f32 = _elementwise(log1p_unit_f32)


def _elementwise_power(power_fn):
    """A compiled loop ``out[i] = power_fn(v[i], gamma)``, as :func:`_elementwise` for the powers."""

    @njit(error_model="numpy")
    def apply(v, gamma, out):
        for i in range(v.shape[0]):
            out[i] = power_fn(v[i], gamma)

    return apply


_apply_pow = _elementwise_power(pow_unit)
_apply_pow_f32 = _elementwise_power(pow_unit_f32)
_apply_small_int_power_f32 = _elementwise_power(small_int_power_f32)
_apply_half_int_power = _elementwise_power(half_int_power)
_apply_half_int_power_f32 = _elementwise_power(half_int_power_f32)
_apply_sigmoid_power = _elementwise_power(sigmoid_power)
_apply_sigmoid_power_f32 = _elementwise_power(sigmoid_power_f32)


def _sweep():
    rng = np.random.default_rng(0)
    dense = -np.linspace(0.0, 746.0, 1_000_001)
    random = -rng.uniform(0.0, 746.0, 500_000)
    small = -(10.0 ** rng.uniform(-300, 0, 300_000))
    powers = -(2.0 ** np.arange(-1074, 10, dtype=np.float64))
    edges = -np.linspace(700.0, 746.0, 200_000)
    return np.concatenate([dense, random, small, powers, edges, [0.0, -0.0]])


def _ulps(got, exact):
    spacing = np.spacing(np.abs(exact))
    spacing[exact == 0] = np.spacing(0.0)
    return np.abs(got - exact) / spacing


def _evaluated(apply, x):
    got = np.empty_like(x)
    apply(x, got)
    return got


def _worst_ulps_vs_glibc(got, x, glibc_fn):
    """``(largest |got - glibc_fn(x)| in ulps, the x where it occurs)``."""
    ulps = _ulps(got, glibc_fn(x))
    worst = int(np.argmax(ulps))
    return ulps[worst], x[worst]


def _worst_ulps_vs_mpmath(got, x, exact_fn):
    """Largest ``|got - exact_fn(x)|`` in ulps of the exact value, the exact value at 40 digits."""
    worst = 0.0
    with mp.workdps(40):
        for g, v in zip(got, x):
            exact = exact_fn(mp.mpf(float(v)))
            spacing = math.ulp(float(exact)) if exact != 0 else math.ulp(0.0)
            worst = max(worst, float(abs(mp.mpf(float(g)) - exact)) / spacing)
    return worst


def test_exp_nonpos_special_values():
    x = np.array([0.0, -0.0, -np.inf, np.nan, -745.2, -746.5, -1e300, -5e-324])
    got = _evaluated(_apply, x)
    assert got[0] == 1.0 and got[1] == 1.0  # exp(0) exactly 1: the row maximum's term
    assert got[2] == 0.0
    assert np.isnan(got[3])
    assert got[4] == np.exp(-745.2) and got[5] == 0.0 and got[6] == 0.0
    assert got[7] == 1.0


def _log1p_sweep():
    rng = np.random.default_rng(2)
    dense = np.linspace(0.0, 1.0, 2_000_001)
    around_half = rng.uniform(0.49, 0.51, 200_000)  # where the range reduction switches
    small = 10.0 ** rng.uniform(-320, 0, 500_000)
    powers = 2.0 ** np.arange(-1074, 1, dtype=np.float64)
    x = np.concatenate([dense, around_half, small, powers, [0.0, 0.5, np.nextafter(0.5, 0), 1.0]])
    return x[(x >= 0) & (x <= 1)]


def _log1p_nonneg_sweep():
    rng = np.random.default_rng(4)
    dense = np.linspace(0.0, 100.0, 2_000_001)  # S' of a row is at most K - 1
    wide = 10.0 ** rng.uniform(-320, 308, 500_000)
    around_one = rng.uniform(0.99, 1.01, 100_000)  # where the Fast2Sum operands swap
    # where 1 + x crosses sqrt(2) 2^k or 2^k (the reduction's switches)
    switches = np.concatenate([rng.uniform(0.999, 1.001, 2_000) * (c * 2.0**k) - 1.0
                               for k in range(0, 60) for c in (1.0, math.sqrt(2.0))])
    powers = 2.0 ** np.arange(-1074, 1024, dtype=np.float64)
    x = np.concatenate([dense, wide, around_one, switches, powers, [0.0, 5e-324, 1.0, np.finfo(float).max]])
    return x[x >= 0]


def _pow_sweep():
    rng = np.random.default_rng(6)
    dense = np.linspace(0.0, 1.0, 1_000_001)
    small = 10.0 ** rng.uniform(-324, 0, 500_000)
    near_one = 1.0 - 10.0 ** rng.uniform(-16, 0, 200_000)  # a confident focal factor
    powers = 2.0 ** np.arange(-1074, 1, dtype=np.float64)
    v = np.concatenate([dense, small, near_one, powers, [0.0, 5e-324, 1.0]])
    return v[(v >= 0) & (v <= 1)]


# (name, kernel applier, sweep, glibc's function, mpmath's, seed of the mpmath sample, bounds vs glibc and mpmath)
# measured worst errors: exp_nonpos 1.0 ulp vs glibc, 1.00 vs mpmath (1.10 before the polynomial used fma);
# log1p_unit 1.0 vs glibc, 1.15 vs mpmath; log1p_nonneg 1.0 vs glibc, 0.70 vs mpmath (the same with Horner's
# rule and with Estrin's scheme)
_SCALAR_CASES = {
    "exp_nonpos": (_apply, _sweep, np.exp, mp.exp, 1, 2.0, 1.5),
    "log1p_unit": (_apply_log1p, _log1p_sweep, np.log1p, mp.log1p, 3, 1.5, 1.5),
    "log1p_nonneg": (_apply_log1p_nonneg, _log1p_nonneg_sweep, np.log1p, mp.log1p, 5, 1.5, 1.5),
}


@pytest.mark.parametrize("name", list(_SCALAR_CASES))
def test_within_ulps_of_glibc_everywhere(name, worst_errors):
    apply, sweep, glibc_fn, _, _, glibc_bound, _ = _SCALAR_CASES[name]
    x = sweep()
    worst, where = _worst_ulps_vs_glibc(_evaluated(apply, x), x, glibc_fn)
    worst_errors(f"{name}/ulps_vs_glibc/float64", worst)
    assert worst <= glibc_bound, (worst, where)


@pytest.mark.parametrize("name", list(_SCALAR_CASES))
def test_within_ulps_of_mpmath(name, worst_errors):
    apply, sweep, _, exact_fn, seed, _, mpmath_bound = _SCALAR_CASES[name]
    x = np.random.default_rng(seed).choice(sweep(), 20_000, replace=False)
    worst = _worst_ulps_vs_mpmath(_evaluated(apply, x), x, exact_fn)
    worst_errors(f"{name}/ulps_vs_mpmath/float64", worst)
    assert worst <= mpmath_bound


def test_log1p_unit_special_values():
    x = np.array([0.0, 1.0, 5e-324, 1e-300, np.nan])
    got = _evaluated(_apply_log1p, x)
    assert got[0] == 0.0 and got[1] == math.log1p(1.0)
    assert got[2] == 5e-324 and got[3] == 1e-300  # log1p(t) = t below t^2/2 < ulp(t)/2
    assert np.isnan(got[4])


def test_log1p_nonneg_special_values():
    x = np.array([0.0, 5e-324, 1e-300, 2.0**-54, np.inf, np.nan, np.finfo(float).max])
    got = _evaluated(_apply_log1p_nonneg, x)
    assert got[0] == 0.0 and got[1] == 5e-324 and got[2] == 1e-300  # log1p(x) = x below an ulp of 1
    assert got[3] == math.log1p(2.0**-54)
    assert got[4] == np.inf and np.isnan(got[5])
    assert got[6] == math.log1p(np.finfo(float).max)


# half_int_power, the focal kernels' power at 0.5, 1.5 and 2.5 (products and a square root).
# Measured worst errors, float64, over the three: 1.0 ulp vs glibc's pow, 1.22 vs mpmath.
def _power_ulps(apply, name, gamma, seed, worst_errors):
    """Worst ulps of a float64 power ``apply`` at ``gamma``: ``(against glibc's pow, where, against mpmath)``,
    glibc's over all of ``_pow_sweep``, mpmath's over 4,000 of its values drawn with ``seed``; both recorded
    under ``name``."""
    v = _pow_sweep()
    got = np.empty_like(v)
    apply(v, gamma, got)
    worst, where = _worst_ulps_vs_glibc(got, v, lambda x: np.power(x, gamma))
    worst_errors(f"{name}/ulps_vs_glibc/float64", worst)
    sample = np.random.default_rng(seed).choice(len(v), 4_000, replace=False)
    worst_mp = _worst_ulps_vs_mpmath(got[sample], v[sample], lambda x: mp.power(x, mp.mpf(gamma)))
    worst_errors(f"{name}/ulps_vs_mpmath/float64", worst_mp)
    return worst, where, worst_mp


@pytest.mark.parametrize("gamma", HALF_INT_EXPONENTS)
def test_half_int_power_within_ulps_of_glibc_and_mpmath(gamma, worst_errors):
    worst, where, worst_mp = _power_ulps(_apply_half_int_power, "half_int_power", gamma, 8, worst_errors)
    assert worst <= 1.5, (worst, where)
    assert worst_mp <= 1.5


@pytest.mark.parametrize("apply, dtype", [(_apply_half_int_power, np.float64),
                                          (_apply_half_int_power_f32, np.float32)])
def test_half_int_power_special_values(apply, dtype):
    tiny = float(np.finfo(dtype).smallest_subnormal)
    v = np.array([0.0, 1.0, np.nan, tiny, 0.25, 2.0**-100], dtype)
    got = np.empty_like(v)
    for gamma in HALF_INT_EXPONENTS:
        apply(v, gamma, got)
        assert got.dtype == dtype
        assert got[0] == 0.0 and got[1] == 1.0 and np.isnan(got[2])
        assert got[3] == dtype(tiny**gamma)  # the square root of the smallest subnormal at 0.5, else 0
        assert got[4] == 0.25**gamma and got[5] == dtype(2.0 ** (-100 * gamma))  # exact powers of two


# The focal exponents swept: the integers and halves take their own kernels' products, but the general
# power must be right for them too (a loss object's gamma can be anything), and for the others
# people use, and a large one (the error of log v is multiplied by gamma).  Measured worst errors:
# 1.0 ulp vs glibc for every gamma up to 7.3 (3.0 at gamma = 20), 1.14 vs mpmath (1.10 before the
# polynomials took Estrin's scheme).
_POW_GAMMAS = (0.01, 0.25, 0.5, 1.5, 2.5, 4.2, 7.3)


@pytest.mark.parametrize("gamma", _POW_GAMMAS)
def test_pow_unit_within_ulps_of_glibc_and_mpmath(gamma, worst_errors):
    worst, where, worst_mp = _power_ulps(_apply_pow, "pow_unit", gamma, 7, worst_errors)
    assert worst <= 1.5, (worst, where)
    assert worst_mp <= 1.5


def test_pow_unit_special_values():
    v = np.array([0.0, 1.0, np.nan, 5e-324, 0.5])
    got = np.empty_like(v)
    _apply_pow(v, 1.5, got)
    assert got[0] == 0.0 and got[1] == 1.0 and np.isnan(got[2]) and got[3] == 0.0
    assert abs(got[4] - 0.5**1.5) <= math.ulp(0.5**1.5)
    _apply_pow(v, 0.0, got)
    assert np.all(got == 1.0)  # v ** 0 = 1, also 0 ** 0 and NaN ** 0, as pow
    # an exponent near -230: glibc's exp(gamma * log(v)), log v rounded to a double, is 36 ulps off here
    _apply_pow(np.array([1e-300]), 1.0 / 3.0, got[:1])
    with mp.workdps(40):
        exact = float(mp.power(mp.mpf(1e-300), mp.mpf(1.0 / 3.0)))
    assert abs(got[0] - exact) <= math.ulp(exact)




# sigmoid_power(x, gamma) = sigmoid(-x) ** gamma = (1 + e^x) ** -gamma, the focal factor of a 0/1 target.
# Its exponent's tail, log1p(exp(-|x|)) below ln 2, is a double, so its rounding (and that of the
# exponential inside it) times gamma is a relative error of the result: about gamma ulps, where
# pow_unit's exponent is exact to an ulp of the log.  It replaces pow_unit of the rounded sigmoid, whose
# error is gamma times the sigmoid's: measured on these points, sigmoid_power 2.3 / 4.8 / 9.4 / 26.8 ulps
# at gamma 1.7 / 4.2 / 7.3 / 20 (1.07 at 0.25), pow_unit(sigmoid) 4.1 / 9.9 / 16.9 / 45.1 (and 9e15 at
# 0.25, where the sigmoid is subnormal: e^-740 has three bits).
_SIGMOID_POW_GAMMAS = (0.01, 0.25, 1.7, 2.0, 4.2, 7.3, 20.0)


def _sigmoid_power_points():
    rng = np.random.default_rng(9)
    return np.concatenate([rng.uniform(-40.0, 40.0, 6_000), rng.uniform(-800.0, 800.0, 2_000),
                           -(10.0 ** rng.uniform(-300, 4, 1_000)), 10.0 ** rng.uniform(-300, 3, 1_000)])


@pytest.mark.parametrize("gamma", _SIGMOID_POW_GAMMAS)
def test_sigmoid_power_within_ulps_of_mpmath(gamma, worst_errors):
    """``sigmoid_power`` within ``1 + 1.4 gamma`` ulps of ``(1 + e^x) ** -gamma`` (40-digit mpmath) on
    10,000 logits from -1e4 to 1e3, underflow included."""
    x = _sigmoid_power_points()
    got = _evaluated(lambda u, out: _apply_sigmoid_power(u, gamma, out), x)
    worst = _worst_ulps_vs_mpmath(got, x, lambda u: mp.power(1 + mp.exp(u), -mp.mpf(gamma)))
    worst_errors("sigmoid_power/ulps_vs_mpmath/float64", worst)
    assert worst <= 1.0 + 1.4 * gamma, worst


@pytest.mark.parametrize("gamma", (0.3, 1.7, 7.3))
def test_sigmoid_power_f32_on_float32s(gamma, worst_errors):
    """``sigmoid_power_f32`` within ``1.25 + 1.5 gamma`` float32 ulps of the float64 formula on every 127th
    float32 in [-120, 120] (beyond, the result is 0 or 1 at every gamma here).  Measured: 1.16, 2.46 and
    11.1 ulps (every 61st)."""

    @njit(inline="always")
    def power(x):
        return sigmoid_power_f32(x, gamma)

    @njit(inline="always")
    def reference(x):
        # float64 within 2^-46 of the exponent's magnitude (at most 120 gamma): far below a float32 ulp
        return math.exp(-gamma * (max(x, 0.0) + math.log1p(math.exp(-abs(x)))))

    sweep = _float32_sweep(power, reference)
    positive = sweep(0, int(np.float32(120.0).view(np.uint32)), 127)
    negative = sweep(0x80000000, int(np.float32(-120.0).view(np.uint32)), 127)
    worst, where = max(positive, negative)
    worst_errors("sigmoid_power_f32/ulps_vs_glibc/float32", worst)
    assert worst <= 1.25 + 1.5 * gamma, (worst, where)


@pytest.mark.parametrize("apply, dtype", [(_apply_sigmoid_power, np.float64),
                                          (_apply_sigmoid_power_f32, np.float32)])
def test_sigmoid_power_special_values(apply, dtype):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, 1e4, -1e4, 30.0], dtype)
    got = np.empty_like(x)
    apply(x, 1.7, got)
    assert got.dtype == dtype
    assert got[0] == 0.0 and got[1] == 1.0 and np.isnan(got[2]) and got[4] == 0.0 and got[5] == 1.0
    assert abs(got[3] - dtype(2.0**-1.7)) <= np.spacing(dtype(2.0**-1.7))
    with mp.workdps(40):
        exact = float(mp.power(1 + mp.exp(30), -1.7))  # e^-51: a normal float32 and float64
    assert abs(got[6] - dtype(exact)) <= 3 * np.spacing(dtype(exact))
    apply(x, 0.0, got)
    assert np.all(got == 1.0)  # v ** 0 = 1, also for x = +inf (v = 0) and NaN, as pow


# ------------------------------------------------ float32: every float32 of the domain
def _float32_sweep(scalar_fn, reference_fn):
    """A compiled sweep ``(lo_bits, hi_bits, step) -> (worst ulps, its x)`` of ``scalar_fn`` over every
    ``step``-th float32 whose bit pattern lies in [lo_bits, hi_bits] (every one for ``step`` 1), against
    ``reference_fn`` in float64 (glibc's, within 2^-29 float32 ulps of exact: a float64 ulp is 2^-29 of a
    float32 one), in ulps of the float32 at the exact value (2^-149 for zero and subnormals)."""

    @njit(parallel=True, error_model="numpy")
    def sweep(lo_bits, hi_bits, step):
        n_blocks = 1024
        count = hi_bits - lo_bits + 1
        worst = np.zeros(n_blocks)
        where = np.zeros(n_blocks, dtype=np.float32)
        for b in prange(n_blocks):
            start = lo_bits + b * count // n_blocks
            stop = lo_bits + (b + 1) * count // n_blocks
            bits = np.arange(start, stop, step).astype(np.uint32)
            xs = bits.view(np.float32)
            for x in xs:
                exact = reference_fn(np.float64(x))
                ulp = max(math.ldexp(1.0, math.frexp(abs(exact))[1] - 24), 2.0**-149)
                err = abs(np.float64(scalar_fn(x)) - exact) / ulp
                if not err <= worst[b]:  # NaN counts as the worst
                    worst[b] = err
                    where[b] = x
        b = np.argmax(worst)
        return worst[b], where[b]

    return sweep


@njit(inline="always")
def _glibc_exp(x):
    return math.exp(x)


@njit(inline="always")
def _glibc_log1p(x):
    return math.log1p(x)


# measured worst errors: exp_nonpos_f32 1.01 ulp (at x = -5.8778844), log1p_unit_f32 0.90 ulp
_FLOAT32_CASES = {
    # from -0.0 to -104.0 by bits; below -104 every result is 0 (tested below)
    "exp_nonpos_f32": (exp_nonpos_f32, _glibc_exp, 0x80000000, int(np.float32(-104.0).view(np.uint32)), 1.5),
    # from 0.0 to 1.0
    "log1p_unit_f32": (log1p_unit_f32, _glibc_log1p, 0, int(np.float32(1.0).view(np.uint32)), 1.5),
}


@pytest.mark.parametrize("name", list(_FLOAT32_CASES))
def test_float32_functions_on_every_float32(name, worst_errors):
    fn, reference, lo_bits, hi_bits, bound = _FLOAT32_CASES[name]
    worst, where = _float32_sweep(fn, reference)(lo_bits, hi_bits, 1)
    worst_errors(f"{name}/ulps_vs_glibc/float32", worst)
    assert worst <= bound, (worst, where)


# pow_unit_f32 on every float32 v in [0, 1] at two exponents (1.5, and 0.3, which float32 cannot hold:
# the power carries it as two float32s), and every 61st at more (each full sweep takes about 30 s of
# glibc's pow).  The rounding errors of log v that its low part leaves out (of f^2 / 2 and of the
# difference after it, about 2^-25 of 0.09) are multiplied by gamma, as in pow_unit: measured worst
# errors 1.18 ulps at gamma 1.5, 1.36 at 4.2, 1.56 at 7.3, 3.45 at 20 (1.00 to 1.22 below 2.5).
_POW_F32_FULL = (1.5, 0.3)
_POW_F32_STRIDED = (0.01, 0.25, 0.5, 2.5, 4.2, 7.3, 20.0)


def _power_f32_ulps(power_fn, gamma, step):
    """Worst float32 ulps of ``power_fn(v, gamma)`` against glibc's float64 ``pow`` on every ``step``-th
    float32 in [0, 1], and where (see :func:`_float32_sweep`)."""

    @njit(inline="always")
    def power(v):
        return power_fn(v, gamma)

    @njit(inline="always")
    def reference(v):
        return math.pow(v, gamma)

    return _float32_sweep(power, reference)(0, int(np.float32(1.0).view(np.uint32)), step)


@pytest.mark.parametrize("gamma", HALF_INT_EXPONENTS)
def test_half_int_power_f32_on_float32s(gamma, worst_errors):
    """``half_int_power_f32`` within 1.75 float32 ulps of ``v ** gamma`` (glibc's float64 ``pow``) on every
    61st float32 in [0, 1].  Measured: 1.54 ulps over the three (in an earlier prototype: 0.5 at 0.5, 1.29
    at 1.5, 1.54 at 2.5, 1.36 for v >= 1e-12: near float32's underflow the low part of ``v * v`` is
    subnormal and loses bits)."""
    worst, where = _power_f32_ulps(half_int_power_f32, gamma, 61)
    worst_errors("half_int_power_f32/ulps_vs_glibc/float32", worst)
    assert worst <= 1.75, (gamma, worst, where)


@pytest.mark.parametrize("gamma", _POW_F32_FULL + _POW_F32_STRIDED)
def test_pow_unit_f32_on_float32s(gamma, worst_errors):
    """``pow_unit_f32`` within ``1.25 + gamma / 8`` float32 ulps of ``v ** gamma`` (glibc's float64 ``pow``,
    correctly rounded) on every float32 in [0, 1], or every 61st."""
    worst, where = _power_f32_ulps(pow_unit_f32, gamma, 1 if gamma in _POW_F32_FULL else 61)
    worst_errors("pow_unit_f32/ulps_vs_glibc/float32", worst)
    assert worst <= 1.25 + gamma / 8.0, (gamma, worst, where)


def test_float32_powers_special_values():
    v = np.array([0.0, 1.0, np.nan, 1e-45, 0.5, 1e-38], np.float32)
    got = np.empty_like(v)
    _apply_pow_f32(v, 1.5, got)
    assert got[0] == 0.0 and got[1] == 1.0 and np.isnan(got[2]) and got[3] == 0.0
    assert got[4] == np.float32(0.5**1.5) and got[5] == np.float32(np.float64(v[5]) ** 1.5)
    _apply_pow_f32(v, 0.0, got)
    assert np.all(got == 1.0)  # v ** 0 = 1, also 0 ** 0 and NaN ** 0, as pow
    _apply_pow_f32(v, 1e-50, got)  # an exponent float32 cannot hold: its float32 is 0
    assert got[0] == 0.0 and got[1] == 1.0 and got[3] == np.float32(np.float64(v[3]) ** 1e-50)
    _apply_pow_f32(v, 1e60, got)  # beyond float32's range: no 0 * inf
    assert np.array_equal(got[[0, 1, 3, 4, 5]], [0.0, 1.0, 0.0, 0.0, 0.0])
    for gamma in (0.0, 1.0, 2.0, 3.0):
        _apply_small_int_power_f32(v, gamma, got)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.power(v, np.float32(gamma)))


def test_float32_functions_special_values():
    x = np.array([0.0, -0.0, -np.inf, np.nan, -104.0, -104.5, -1e30, -1e-45, -103.5], np.float32)
    got = _evaluated(_apply_f32, x)
    assert got.dtype == np.float32
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == 0.0 and np.isnan(got[3])
    assert got[4] == 0.0 and got[5] == 0.0 and got[6] == 0.0 and got[7] == 1.0
    assert got[8] == np.float32(math.exp(-103.5))  # the smallest subnormal, 2^-149
    t = np.array([0.0, 1.0, 1e-45, 1e-30, 0.5, np.nan], np.float32)
    got = _evaluated(_apply_log1p_f32, t)
    assert got.dtype == np.float32
    assert got[0] == 0.0 and got[1] == np.float32(math.log1p(1.0))
    assert got[2] == t[2] and got[3] == t[3]  # log1p(t) = t below t^2/2 < ulp(t)/2
    assert abs(got[4] - np.float32(math.log1p(0.5))) <= np.spacing(np.float32(0.4)) and np.isnan(got[5])

_PACKED_SINGLE_YMM = re.compile(r"^\s*v\w+ps\s[^\n]*%ymm", re.MULTILINE)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 instruction names")
@pytest.mark.parametrize("apply, args, scalar_conversions", [
    (_apply_f32, (-np.linspace(0.0, 1.0, 8).astype(np.float32), np.empty(8, np.float32)), 0),
    (_apply_log1p_f32, (np.linspace(0.0, 1.0, 8).astype(np.float32), np.empty(8, np.float32)), 0),
    # the float64 gamma to its two float32 parts, once before the loop
    (_apply_pow_f32, (np.linspace(0.0, 1.0, 8).astype(np.float32), 1.5, np.empty(8, np.float32)), 3),
], ids=["exp_nonpos_f32", "log1p_unit_f32", "pow_unit_f32"])
def test_float32_loops_vectorise_in_float32(apply, args, scalar_conversions):
    """A loop over a float32 function is packed float32 arithmetic (eight lanes on AVX2), with no
    float64 conversion but of a float64 argument: computing in float32 is their point."""
    apply(*args)
    asm = "\n".join(apply.inspect_asm().values())
    assert not re.search(r"\bv?cvt(?:ps2pd|pd2ps)", asm)
    assert len(re.findall(r"\bv?cvt(?:ss2sd|sd2ss)", asm)) <= scalar_conversions
    if config.CPU_NAME is None and llvm.get_host_cpu_features().get("avx2", False):
        assert _PACKED_SINGLE_YMM.search(asm)


# x86-64 scalar conversions between float64 and int64 (AT&T names): AVX2 has no vector
# form, so one in a loop means LLVM converts element by element (exp_nonpos took 4.1 ns
# an element with two of them, 1.7 ns without)
_INT64_CONVERSION = re.compile(r"\bv?cvtt?(?:sd2si|si2sd)\w*")
_PACKED_YMM = re.compile(r"^\s*v\w+pd\s[^\n]*%ymm", re.MULTILINE)


# the loops the accuracy tests run (compiled in this process, not cached, so their asm is
# at hand), with arguments in each function's domain
_LOOPS_AND_ARGS = {
    "exp_nonpos": (_apply, (-np.linspace(0.0, 1.0, 8), np.empty(8))),
    "log1p_unit": (_apply_log1p, (np.linspace(0.0, 1.0, 8), np.empty(8))),
    "log1p_nonneg": (_apply_log1p_nonneg, (np.linspace(0.0, 1.0, 8), np.empty(8))),
    "pow_unit": (_apply_pow, (np.linspace(0.0, 1.0, 8), 2.5, np.empty(8))),
}


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 instruction names")
@pytest.mark.parametrize("name", list(_LOOPS_AND_ARGS))
def test_loops_vectorise_without_int64_conversions(name):
    """The point of the functions above is a loop LLVM vectorises: a loop over each holds no
    float64/int64 conversion and, on an AVX2 host, packed float64 arithmetic."""
    apply, args = _LOOPS_AND_ARGS[name]
    apply(*args)
    asm = "\n".join(apply.inspect_asm().values())
    assert not _INT64_CONVERSION.findall(asm)
    if config.CPU_NAME is None and llvm.get_host_cpu_features().get("avx2", False):
        assert _PACKED_YMM.search(asm)
