"""Property tests: derivatives against finite differences, and the identities
between methods and reductions, over random shapes, options and weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from strategies import ELEMENTWISE, SOFTMAX, problems

import nbloss

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _central_differences(f, raw, h):
    """``(f(raw + h e_idx, idx) - f(raw - h e_idx, idx)) / 2h`` for every entry ``idx``."""
    out = np.empty_like(raw)
    for idx in np.ndindex(raw.shape):
        up, down = raw.copy(), raw.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (f(up, idx) - f(down, idx)) / (2 * h)
    return out


def _near_kink(loss, y, raw, h):
    if not isinstance(loss, nbloss.HuberLoss) or isinstance(loss, nbloss.PseudoHuberLoss):
        return False
    return bool((np.abs(np.abs(raw - y) - loss.delta) < 10 * h).any())


@SETTINGS
@given(problems(logit_scale=8.0))
def test_derivatives_match_central_differences(problem):
    """Gradient against differences of ``loss(reduction="sum")``, Hessian against
    differences of the gradient."""
    loss, y, raw, sw = problem
    h = 1e-5
    assume(not _near_kink(loss, y, raw, h))
    grad, hess = loss.gradient_hessian(y, raw, sw)
    checks = (
        (grad, _central_differences(lambda r, idx: float(loss.loss(y, r, sw, reduction="sum")), raw, h)),
        (hess, _central_differences(lambda r, idx: loss.gradient(y, r, sw)[idx], raw, h)),
    )
    for analytic, differences in checks:
        scale = max(1.0, float(np.abs(analytic).max()))
        np.testing.assert_allclose(analytic, differences, rtol=1e-5, atol=1e-6 * scale)


@SETTINGS
@given(problems())
def test_methods_agree_bitwise(problem):
    loss, y, raw, sw = problem
    grad, hess = loss.gradient_hessian(y, raw, sw)
    assert np.array_equal(grad, loss.gradient(y, raw, sw))
    assert np.array_equal(hess, loss.hessian(y, raw, sw))
    for reduction in ("sum", "none"):
        value, g = loss.loss_gradient(y, raw, sw, reduction=reduction)
        assert np.array_equal(value, loss.loss(y, raw, sw, reduction=reduction))
        assert np.array_equal(g, grad)


def _total_weight(loss, y, raw, sw):
    """The documented denominator of reduction='mean', computed here independently."""
    n = raw.shape[0]
    s = np.ones(n) if sw is None else sw
    if isinstance(loss, (nbloss.CrossEntropy, nbloss.FocalLoss)):
        if np.ndim(y) == 2:
            return s.sum()
        k = raw.shape[1]
        counted = np.ones(n, bool) if loss.ignore_index is None else (y != loss.ignore_index)
        if isinstance(loss, nbloss.FocalLoss):
            w = np.ones(k) if loss.alpha is None else loss.alpha
        elif isinstance(loss.class_weight, str):
            counts = np.bincount(y[counted], minlength=k)
            w = np.divide(counted.sum(), k * counts, out=np.zeros(k), where=counts > 0)
        else:
            w = np.ones(k) if loss.class_weight is None else loss.class_weight
        return (s * w[np.where(counted, y, 0)] * counted).sum()
    outputs = 1 if raw.ndim == 1 else raw.shape[1]
    return s.sum() * outputs


@SETTINGS
@given(problems())
def test_mean_is_sum_over_documented_total_weight_and_its_gradient(problem):
    loss, y, raw, sw = problem
    total = _total_weight(loss, y, raw, sw)
    if not total > 0:
        with pytest.raises(ValueError, match="total weight"):
            loss.loss(y, raw, sw)
        return
    summed = float(loss.loss(y, raw, sw, reduction="sum"))
    per_sample = loss.loss(y, raw, sw, reduction="none")
    assert per_sample.shape == ((raw.shape[0],) if isinstance(loss, (nbloss.CrossEntropy, nbloss.FocalLoss))
                                else raw.shape)
    np.testing.assert_allclose(per_sample.sum(), summed, rtol=1e-12, atol=1e-300)
    value, grad = loss.loss_gradient(y, raw, sw, reduction="mean")
    assert value == loss.loss(y, raw, sw, reduction="mean")
    np.testing.assert_allclose(float(value), summed / total, rtol=1e-12)
    np.testing.assert_allclose(grad, loss.gradient(y, raw, sw) / total, rtol=1e-12, atol=1e-300)


@SETTINGS
@given(problems(kinds=SOFTMAX + ELEMENTWISE, logit_scale=30.0))
def test_float32_agrees_with_float64_on_float32_inputs(problem):
    loss, y, raw, sw = problem
    raw32 = raw.astype(np.float32)
    y32 = y.astype(np.float32) if np.asarray(y).dtype.kind == "f" else y
    sw32 = None if sw is None else sw.astype(np.float32)
    raw64, y64 = raw32.astype(np.float64), (y32.astype(np.float64) if np.asarray(y).dtype.kind == "f" else y)
    sw64 = None if sw32 is None else sw32.astype(np.float64)
    g64, h64 = loss.gradient_hessian(y64, raw64, sw64)
    g32, h32 = loss.gradient_hessian(y32, raw32, sw32)
    assert g32.dtype == np.float32 and h32.dtype == np.float32
    for got, want in ((g32, g64), (h32, h64)):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    l32 = loss.loss(y32, raw32, sw32, reduction="none")
    l64 = loss.loss(y64, raw64, sw64, reduction="none")
    np.testing.assert_allclose(l32, l64, rtol=1e-5, atol=1e-6)
