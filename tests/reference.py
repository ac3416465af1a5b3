"""High-precision references (mpmath, 50 digits) for every loss.

Derivatives take routes independent of the kernels' rearranged forms: the
softmax family uses the generic chain rule through ``p_y`` with the textbook
``f'(p)`` and ``f''(p)``; element-wise losses use the product rule on the
defining formula.  Everything is evaluated at 50 digits with an unbounded
exponent range, and every ``1 - p`` is a sum of the other probabilities.
"""

from __future__ import annotations

import functools

import mpmath as mp

mp.mp.dps = 50

INF = mp.inf


def _mpf(x):
    return mp.mpf(float(x))


def _softmax(z):
    """Probabilities and ``-log`` probabilities of a row, with +inf/-inf as limits."""
    return _softmax_cached(tuple(float(v) for v in z), mp.mp.dps)


@functools.lru_cache(maxsize=4096)
def _softmax_cached(z, dps):
    """``(p, nll)`` with ``nll[k] = -log p_k = (m - z_k) + log1p(sum_{j != argmax} e_j)``:
    even 50 digits lose ``log(1 + 1e-265)`` unless the 1 is kept out of the sum."""
    z = [_mpf(v) for v in z]
    k = len(z)
    if any(v == INF for v in z):
        n_inf = sum(1 for v in z if v == INF)
        nll = [mp.log(n_inf) if v == INF else INF for v in z]
    elif all(v == -INF for v in z):
        nll = [mp.log(k)] * k
    else:
        m = max(z)
        top = z.index(m)
        rest = mp.fsum(mp.exp(v - m) for j, v in enumerate(z) if j != top)
        tail = mp.log1p(rest)
        nll = [(m - v) + tail for v in z]
    p = [mp.exp(-x) if x != INF else mp.mpf(0) for x in nll]
    return p, nll


def _others(p):
    """``[sum_{j != k} p_j for k]`` from prefix and suffix sums (no ``1 - p_k``)."""
    n = len(p)
    prefix, suffix = [mp.mpf(0)] * (n + 1), [mp.mpf(0)] * (n + 1)
    for k in range(n):
        prefix[k + 1] = prefix[k] + p[k]
        suffix[n - 1 - k] = suffix[n - k] + p[n - 1 - k]
    return [prefix[k] + suffix[k + 1] for k in range(n)]


def _neg_log_p(z, k):
    """``-log p_k`` (may be +inf) with the limits of _softmax."""
    return _softmax(z)[1][k]


def cross_entropy_row(z, coef):
    """Row loss ``sum_k c_k (-log p_k)``, gradient ``C p - c``, Hessian ``C p (1 - p)``."""
    p, _ = _softmax(z)
    c = [mp.mpf(x) for x in coef]
    total = mp.fsum(c)
    loss = mp.fsum(ck * _neg_log_p(z, k) for k, ck in enumerate(c) if ck != 0)
    # C p_k - c_k = p_k sum_{j != k} c_j - c_k sum_{j != k} p_j: no 1 - p anywhere
    grad = [pk * c_rest - ck * p_rest for pk, ck, c_rest, p_rest in zip(p, c, _others(c), _others(p))]
    # 1 - p_k summed from the other classes: exact even when p_k rounds to 1
    hess = [total * pk * rest for pk, rest in zip(p, _others(p))]
    return loss, grad, hess


def cross_entropy_coefficients(y, n_classes, weight=None, smoothing=0.0, soft=None):
    """PyTorch's per-class coefficients of one row (hard label or soft target)."""
    w = [mp.mpf(1)] * n_classes if weight is None else [_mpf(x) for x in weight]
    eps = _mpf(smoothing)
    if soft is not None:
        return [w[k] * ((1 - eps) * _mpf(soft[k]) + eps / n_classes) for k in range(n_classes)]
    return [(1 - eps) * w[k] * (1 if k == y else 0) + eps / n_classes * w[k] for k in range(n_classes)]


def _digits_for(z, y):
    """Working digits for a focal row: the Hessian's terms of order 1 cancel down
    to order ``p_y``, so keep 50 digits beyond the decade of ``p_y``."""
    nll = _softmax(z)[1][y]
    decades = 0 if mp.isinf(nll) else int(nll / mp.log(10))
    return 60 + decades


def focal_row(z, y, gamma, alpha_y=1.0):
    with mp.workdps(_digits_for(z, y)):
        loss, grad, hess = _focal_row(z, y, gamma, alpha_y)
    return +loss, [+g for g in grad], [+h for h in hess]


def _focal_row(z, y, gamma, alpha_y):
    """Softmax focal loss ``a f(p_y)``, ``f(p) = -(1 - p)^gamma log p``, by the generic
    chain rule ``dl/dz_j = a f'(p) p a_j`` and ``d2l/dz_j2 = a [f''(p) p^2 a_j^2 +
    f'(p) p (a_j^2 - p_j (1 - p_j))]`` with ``a_j = [j == y] - p_j``, where
    ``f'(p) = gamma u^(gamma-1) log p - u^gamma / p`` and
    ``f''(p) = -gamma (gamma-1) u^(gamma-2) log p + 2 gamma u^(gamma-1) / p + u^gamma / p^2``
    (``u = 1 - p`` summed from the other classes)."""
    p, _ = _softmax(z)
    g = _mpf(gamma)
    a = _mpf(alpha_y)
    n_classes = len(z)
    py = p[y]
    one_minus = _others(p)
    u = one_minus[y]
    nll = _neg_log_p(z, y)
    loss = a * u**g * nll if a != 0 else mp.mpf(0)
    if u == 0:
        return loss, [mp.mpf(0)] * n_classes, [mp.mpf(0)] * n_classes
    if py == 0:  # limit p -> 0 (z_y = -inf): f'(p) p -> -1, f''(p) p^2 -> 1
        fp_p, fpp_p2 = mp.mpf(-1), mp.mpf(1)
    else:
        log_p = -nll
        fp_p = (g * u ** (g - 1) * log_p - u**g / py) * py
        fpp_p2 = (-g * (g - 1) * u ** (g - 2) * log_p + 2 * g * u ** (g - 1) / py + u**g / py**2) * py * py
    grad, hess = [], []
    for j in range(n_classes):
        a_j = u if j == y else -p[j]
        grad.append(a * fp_p * a_j)
        hess.append(a * (fpp_p2 * a_j * a_j + fp_p * (a_j * a_j - p[j] * one_minus[j])))
    return loss, grad, hess


def _softplus(x):
    if x == INF:
        return INF
    if x == -INF:
        return mp.mpf(0)
    return mp.log1p(mp.exp(x))


def _sigmoid(x):
    if x == INF:
        return mp.mpf(1)
    if x == -INF:
        return mp.mpf(0)
    return 1 / (1 + mp.exp(-x))


def _term(coef, value):
    return coef * value if coef != 0 else mp.mpf(0)


def bce(y, z, pos_weight=1.0):
    """``l = pw y sp(-z) + (1 - y) sp(z)``, ``l' = (1 - y) P - pw y Q``, ``l'' = (pw y + 1 - y) P Q``."""
    y, pw, z = _mpf(y), _mpf(pos_weight), _mpf(z)
    big_p, big_q = _sigmoid(z), _sigmoid(-z)
    loss = _term(pw * y, _softplus(-z)) + _term(1 - y, _softplus(z))
    return loss, (1 - y) * big_p - pw * y * big_q, (pw * y + 1 - y) * big_p * big_q


def binary_focal(y, z, gamma, alpha):
    """``l = a v^g ce`` differentiated by the product rule, with ``v = y Q + (1 - y) P``,
    ``v' = (1 - 2y) P Q``, ``v'' = (1 - 2y) P Q (Q - P)``, ``ce' = (1 - y) P - y Q``, ``ce'' = P Q``."""
    y, g, z = _mpf(y), _mpf(gamma), _mpf(z)
    a = mp.mpf(1) if alpha is None else _mpf(alpha) * y + (1 - _mpf(alpha)) * (1 - y)
    big_p, big_q = _sigmoid(z), _sigmoid(-z)
    s = big_p * big_q
    v = y * big_q + (1 - y) * big_p
    dv, d2v = (1 - 2 * y) * s, (1 - 2 * y) * s * (big_q - big_p)
    ce = _term(y, _softplus(-z)) + _term(1 - y, _softplus(z))
    dce, d2ce = (1 - y) * big_p - y * big_q, s
    loss = _term(a * v**g, ce)
    if v == 0:  # z = +-inf on the right side: every derivative vanishes
        return loss, mp.mpf(0), mp.mpf(0)
    if mp.isinf(ce):  # z = +-inf on the wrong side: v = 1, only the slope survives
        return loss, a * dce, mp.mpf(0)
    grad = a * (g * v ** (g - 1) * dv * ce + v**g * dce)
    hess = a * (g * (g - 1) * v ** (g - 2) * dv * dv * ce + g * v ** (g - 1) * d2v * ce
                + 2 * g * v ** (g - 1) * dv * dce + v**g * d2ce)
    return loss, grad, hess


def huber(y, z, delta):
    r = _mpf(z) - _mpf(y)
    d = _mpf(delta)
    if abs(r) <= d:
        return r * r / 2, r, mp.mpf(1)
    return d * (abs(r) - d / 2), mp.sign(r) * d, mp.mpf(0)


def pseudo_huber(y, z, delta):
    """``d^2 (sqrt(1 + x^2) - 1)``, ``l' = r / sqrt(1 + x^2)``, ``l'' = (1 + x^2)^(-3/2)``."""
    d, r = _mpf(delta), _mpf(z) - _mpf(y)
    if mp.isinf(r):
        return INF, mp.sign(r) * d, mp.mpf(0)
    root = mp.sqrt(1 + (r / d) ** 2)
    return d * d * (root - 1), r / root, 1 / root**3


def squared_error(y, z):
    r = _mpf(z) - _mpf(y)
    return r * r / 2, r, mp.mpf(1)
