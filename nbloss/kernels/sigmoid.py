"""Sigmoid-family element formulas: binary cross-entropy with logits and
sigmoid (binary) focal loss, plus the stable sigmoid for ``predict_proba``.

Each ``*_element(y, z, param, extra, want_loss)`` returns ``(loss, grad,
hess)`` for one logit ``z`` and a target ``y`` in [0, 1] (checked by
:mod:`nbloss.kernels.elementwise`, which runs them over rows); the loss is
only computed when ``want_loss``.  They compute in float64, except the
``*_f32`` ones, the float32 kernels' formulas, which compute in float32 (see
:mod:`nbloss._numerics`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._numerics import (
    ONE_F32,
    as_float32,
    as_float64,
    fma,
    half_int_power,
    half_int_power_f32,
    pow_unit,
    pow_unit_f32,
    sigmoid_pair,
    sigmoid_pair_f32,
    sigmoid_power,
    sigmoid_power_f32,
    small_int_power,
    small_int_power_f32,
    softplus_pair,
    softplus_pair_f32,
    weighted,
    weighted_f32,
)
from . import inlined, parallel_kernel, renamed_copy


@inlined
def bce_element(y, z, pos_weight, unused, want_loss):
    """``pw y softplus(-z) + (1 - y) softplus(z)`` (PyTorch's ``pos_weight``).

    Gradient ``(1 - y) sigmoid(z) - pw y sigmoid(-z)``; Hessian
    ``(pw y + 1 - y) sigmoid(z) sigmoid(-z)``.  Both sigmoids come from one
    ``exp(-|z|)``, so a 0/1 target's gradient never cancels.
    """
    return _bce(np.float64(y), z, pos_weight, want_loss, 1.0, sigmoid_pair, softplus_pair, weighted)


@inlined
def bce_element_f32(y, z, pos_weight, unused, want_loss):
    """:func:`bce_element` of float32 ``y`` and ``z`` in float32 arithmetic."""
    return _bce(y, z, np.float32(pos_weight), want_loss, ONE_F32, sigmoid_pair_f32, softplus_pair_f32,
                weighted_f32)


@inlined
def _bce(y, z, pos_weight, want_loss, one, sigmoid_pair, softplus_pair, weighted):
    pos = pos_weight * y
    neg = one - y
    sig, sig_neg, curv = sigmoid_pair(z)
    loss = one - one  # 0 in the working precision: a float64 0.0 would widen a float32 loss
    if want_loss:
        sp_pos, sp_neg = softplus_pair(z)
        loss = weighted(pos, sp_neg) + weighted(neg, sp_pos)
    grad = neg * sig - pos * sig_neg
    hess = (pos + neg) * curv
    return loss, grad, hess


@inlined
def _binary_focal(y, z, gamma, alpha, known_hard, power, sigmoid_power, one, work, sigmoid_pair, softplus_pair,
                  weighted):
    """torchvision's ``sigmoid_focal_loss``: ``alpha_t v^gamma ce``, in the precision of ``one``.

    ``ce`` is the BCE above (no ``pos_weight``), ``v = 1 - p_t = y sigmoid(-z)
    + (1 - y) sigmoid(z)`` (a sum, no cancellation), ``alpha_t = alpha y +
    (1 - alpha)(1 - y)`` or 1 when ``alpha < 0`` (disabled).  With
    ``s = sigmoid(z) sigmoid(-z)``, ``R = (1 - 2y) s / v`` (``|R| <= 2``, as
    ``v >= y sigmoid(-z)`` and ``v >= (1 - y) sigmoid(z)``) and
    ``D = sigmoid(z) - y``:

    * ``dl/dz = alpha_t v^gamma (gamma R ce + D)``,
    * ``d2l/dz2 = alpha_t v^gamma [gamma (gamma - 1) R^2 ce
      + gamma R (sigmoid(-z) - sigmoid(z)) ce + 2 gamma R D + s]``.

    Writing ``v^(gamma - k)`` as ``v^gamma R^k / s^k`` keeps every term finite
    as ``v -> 0`` for any ``gamma >= 0``.  The derivatives need ``ce``, so
    the loss is always computed.  ``power(v, gamma)`` is ``v ** gamma``; it takes the float64
    ``gamma`` (see :func:`pow_unit_f32`), the formula's coefficients the ``gamma`` of the working
    precision.

    A 0/1 target has a shorter form (:func:`_binary_focal_hard`), which the kernels run for a chunk of
    such targets (``known_hard``, a constant).  The general form gives a 0/1 target the short form's
    values, so that an element's result does not depend on which loop computed it: its ``v``, ``ce``
    and ``alpha_t`` are the same bits either way (products by 0 and 1, sums with 0), and the short
    form's own few operations select the derivatives.  Where ``sigmoid_power`` is given (a general
    ``gamma``), the short form's ``v^gamma`` is ``sigmoid_power(+-z)``, not ``power(v)``; the general
    form then takes both.
    """
    zero = one - one
    two = one + one
    g = work(gamma)
    a = work(alpha)
    positive = y == one
    sp_pos, sp_neg = softplus_pair(z)
    sig, sig_neg, curv = sigmoid_pair(z)
    p_t = sig if positive else sig_neg
    if known_hard:
        v = sig_neg if positive else sig
        ce = sp_neg if positive else sp_pos
        alpha_t = one if alpha < 0.0 else (a if positive else one - a)
        if sigmoid_power is None:
            scale = alpha_t * power(v, gamma)
        else:
            scale = alpha_t * sigmoid_power(z if positive else -z, gamma)
        return _binary_focal_hard(scale, g, positive, p_t, v, ce, one, weighted)
    neg = one - y
    ce = weighted(y, sp_neg) + weighted(neg, sp_pos)
    v = y * sig_neg + neg * sig
    alpha_t = one if alpha < 0.0 else a * y + (one - a) * neg
    vpow = power(v, gamma)
    hard = (y == zero) | positive
    if sigmoid_power is not None:
        vpow = sigmoid_power(z if positive else -z, gamma) if hard else vpow
    scale = alpha_t * vpow
    ratio = (one - two * y) * curv / v if v > zero else zero
    diff = neg * sig - y * sig_neg
    loss = weighted(scale, ce)
    grad = scale * (g * weighted(ratio, ce) + diff)
    hess = scale * (g * (g - one) * weighted(ratio * ratio, ce)
                    + g * weighted(ratio * (sig_neg - sig), ce)
                    + two * g * ratio * diff + curv)
    if hard:
        return _binary_focal_hard(scale, g, positive, p_t, v, ce, one, weighted)
    return loss, grad, hess


@inlined
def _binary_focal_hard(scale, g, positive, p_t, v, ce, one, weighted):
    """:func:`_binary_focal`'s ``(loss, grad, hess)`` for a 0/1 target (``positive``: 1), ``scale`` its
    ``alpha_t v^gamma``.  With ``z_t = +-z`` signed by the target, ``p_t = sigmoid(z_t)``, ``v =
    sigmoid(-z_t)`` and ``ce = softplus(-z_t)``, the terms above reduce to ``R = -+p_t``, ``D = -+v``:

    * ``dl/dz = -+alpha_t v^gamma (gamma p_t ce + v)``,
    * ``d2l/dz2 = alpha_t v^gamma [gamma p_t ce (gamma p_t - v) + (2 gamma + 1) p_t v]``,

    with no division by ``v`` (binary focal ``gradient_hessian``, one thread, in cache: 7.9 -> 6.5 ns an
    element at gamma 2; at a general gamma, with :func:`sigmoid_power` for :func:`pow_unit`, 17.6 ->
    11.0).  ``p_t = 0`` (``z_t = -inf``, ``ce = inf``) leaves the slope ``-+alpha_t`` and no curvature.
    """
    two = one + one
    gp = g * p_t
    gce = weighted(gp, ce)
    slope = scale * (gce + v)
    hess = scale * fma(gce, gp - v, (two * g + one) * (p_t * v))
    return weighted(scale, ce), -slope if positive else slope, hess


# copies bind their globals when made (renamed_copy), so these come after _binary_focal
def _focal_element_body(y, z, gamma, alpha, want_loss):
    """Binary focal loss of one element (see :func:`_binary_focal`); each copy made by
    :func:`_focal_element` binds its power, precision and whether its target is known to be 0 or 1."""
    return _binary_focal(WORK(y), z, gamma, alpha, KNOWN_HARD, POWER, SIGMOID_POWER, ONE, WORK,  # noqa: F821
                         SIGMOID_PAIR, SOFTPLUS_PAIR, WEIGHTED)  # noqa: F821


_PRECISIONS = {
    False: {"ONE": 1.0, "WORK": as_float64, "SIGMOID_PAIR": sigmoid_pair, "SOFTPLUS_PAIR": softplus_pair,
            "WEIGHTED": weighted},
    # float32 ``y`` and ``z`` in float32 arithmetic
    True: {"ONE": ONE_F32, "WORK": as_float32, "SIGMOID_PAIR": sigmoid_pair_f32, "SOFTPLUS_PAIR": softplus_pair_f32,
           "WEIGHTED": weighted_f32},
}


def _focal_element(name, power, sigmoid_power, single, known_hard):
    """The element formula ``name``: :func:`_focal_element_body` with ``v^gamma`` by ``power`` (and by
    ``sigmoid_power`` for a 0/1 target, or ``None``: ``power`` for all), float32 arithmetic if
    ``single``, the target known to be 0 or 1 if ``known_hard`` (a copy per formula, as the kernels)."""
    bindings = {"KNOWN_HARD": known_hard, "POWER": power, "SIGMOID_POWER": sigmoid_power, **_PRECISIONS[single]}
    return inlined(renamed_copy(_focal_element_body, name, bindings))


# gamma >= 0 outside SMALL_INT_EXPONENTS and HALF_INT_EXPONENTS: v^gamma by pow_unit, by sigmoid_power for a 0/1
# target; gamma in SMALL_INT_EXPONENTS only, by small_int_power; in HALF_INT_EXPONENTS only, by half_int_power.
# The ``_hard`` formulas are for targets known to be 0 or 1 (see nbloss.kernels.elementwise._kernel_for).
binary_focal_element = _focal_element("binary_focal_element", pow_unit, sigmoid_power, False, False)
binary_focal_hard_element = _focal_element("binary_focal_hard_element", pow_unit, sigmoid_power, False, True)
binary_focal_int_element = _focal_element("binary_focal_int_element", small_int_power, None, False, False)
binary_focal_int_hard_element = _focal_element("binary_focal_int_hard_element", small_int_power, None, False, True)
binary_focal_half_element = _focal_element("binary_focal_half_element", half_int_power, None, False, False)
binary_focal_half_hard_element = _focal_element("binary_focal_half_hard_element", half_int_power, None, False, True)
binary_focal_element_f32 = _focal_element("binary_focal_element_f32", pow_unit_f32, sigmoid_power_f32, True, False)
binary_focal_hard_element_f32 = _focal_element("binary_focal_hard_element_f32", pow_unit_f32, sigmoid_power_f32,
                                               True, True)
binary_focal_int_element_f32 = _focal_element("binary_focal_int_element_f32", small_int_power_f32, None, True, False)
binary_focal_int_hard_element_f32 = _focal_element("binary_focal_int_hard_element_f32", small_int_power_f32, None,
                                                   True, True)
binary_focal_half_element_f32 = _focal_element("binary_focal_half_element_f32", half_int_power_f32, None, True, False)
binary_focal_half_hard_element_f32 = _focal_element("binary_focal_half_hard_element_f32", half_int_power_f32, None,
                                                    True, True)


@parallel_kernel
def sigmoid(raw, out):
    """``out = sigmoid(raw)`` for (n, L) arrays.  Returns the first row holding a NaN."""
    n, n_cols = raw.shape
    bad_raw = n
    for i in prange(n):
        for j in range(n_cols):
            z = raw[i, j]
            if z != z:
                bad_raw = min(bad_raw, i)
            out[i, j] = sigmoid_pair(z)[0]
    return bad_raw
