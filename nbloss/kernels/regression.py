"""Regression element formulas: Huber, pseudo-Huber and squared error.

Each ``*_element(y, z, param, extra, want_loss)`` returns ``(loss, grad,
hess)`` for a prediction ``z`` and a finite target ``y`` (checked by
:mod:`nbloss.kernels.elementwise`), with residual ``r = z - y``; the losses
are cheap, so ``want_loss`` changes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from . import inlined


@inlined
def huber_element(y, z, delta, unused, want_loss):
    """``r^2 / 2`` for ``|r| <= delta``, else ``delta (|r| - delta / 2)``.

    Hessian 1 inside (``|r| == delta`` included, as scikit-learn), 0 outside.
    """
    y = np.float64(y)
    r = np.float64(z) - y
    if abs(r) <= delta:
        return 0.5 * r * r, r, 1.0
    return delta * (abs(r) - 0.5 * delta), math.copysign(delta, r), 0.0


@inlined
def pseudo_huber_element(y, z, delta, unused, want_loss):
    """``delta^2 (sqrt(1 + x^2) - 1)`` with ``x = r / delta``.

    Formed as ``delta |r| * |x| / (h + 1)`` with ``h = hypot(1, x)``: no
    cancellation for small ``r`` and no overflow of ``x^2`` for large ones.
    Gradient ``r / h``, Hessian ``1 / h^3``.
    """
    y = np.float64(y)
    r = np.float64(z) - y
    if math.isinf(r):
        return math.inf, math.copysign(delta, r), 0.0
    x = r / delta
    h = math.hypot(1.0, x)
    inv_h = 1.0 / h
    return delta * abs(r) * (abs(x) / (h + 1.0)), r * inv_h, inv_h * inv_h * inv_h


@inlined
def squared_error_element(y, z, unused, unused_extra, want_loss):
    """``r^2 / 2``; gradient ``r``, Hessian 1 (an infinite prediction has an infinite gradient)."""
    y = np.float64(y)
    r = np.float64(z) - y
    return 0.5 * r * r, r, 1.0
