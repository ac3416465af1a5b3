"""The kernels' own exponential and logarithm, ``exp_nonpos`` and ``log1p_unit``, proven on their
whole domains.

Every exponential in nbloss has a non-positive argument, so the domain of
``exp_nonpos`` is [-inf, 0]; every element-wise logarithm is the softplus tail
``log1p(t)``, ``t`` in [0, 1].  Dense sweeps (millions of points, plus every
power of two and the edges of the subnormal range) are compared with glibc
(itself within 1 ulp); random subsamples are compared with 40-digit mpmath.
The worst errors in ulps go to the report table.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from numba import njit

from nbloss._numerics import exp_nonpos, log1p_unit


@njit(cache=True)
def _apply(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_nonpos(x[i])


@njit(cache=True)
def _apply_log1p(x, out):
    for i in range(x.shape[0]):
        out[i] = log1p_unit(x[i])


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


# (name, kernel applier, sweep, glibc's function, mpmath's, seed of the mpmath sample, bounds vs glibc and mpmath)
# measured worst errors: exp_nonpos 1.0 ulp vs glibc, 1.00 vs mpmath (1.10 before the polynomial used fma);
# log1p_unit 1.0 vs glibc, 1.15 vs mpmath
_SCALAR_CASES = {
    "exp_nonpos": (_apply, _sweep, np.exp, mp.exp, 1, 2.0, 1.5),
    "log1p_unit": (_apply_log1p, _log1p_sweep, np.log1p, mp.log1p, 3, 1.5, 1.5),
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
