"""Every loss against mpmath references on the adversarial corpus.

Bar: float64 loss, gradient and Hessian within 1e-12 relative (1.2e-7, one
float32 ulp, for float32 on inputs representable in float32: the kernels
compute in float64 and round once; 1e-6 for the float32 kernels of
BinaryCrossEntropy and BinaryFocalLoss, which compute in float32, times
gamma / 2 for a focal gamma above 2), with an absolute floor at the
dtype's smallest normal number (1e-300 region for float64) for values that
underflow.  Where the exact value is a difference of comparable terms (soft
targets and label smoothing: ``p - y``; focal Hessians, which change sign),
the error is measured relative to the sum of the terms' magnitudes, as that
is the accuracy the inputs determine.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import reference as ref
from corpus import logistic_pairs, regression_pairs, softmax_corpus

import nbloss

TOL = {np.float64: 1e-12, np.float32: 1.2e-7}
# The float32 kernels of BinaryCrossEntropy and BinaryFocalLoss compute in float32
# (nbloss.kernels.elementwise): 1e-6 is about eight float32 ulps, the kernels issue's float32 bar 1e-5;
# measured worst in the report table.  The focal factor v ** gamma multiplies the relative error of v
# (a few ulps) by gamma, so for gamma above 2 the bar is 1e-6 gamma / 2 (see _float32_bar).
FLOAT32_ARITHMETIC_TOL = 1e-6
FLOOR = {np.float64: 1e-300, np.float32: float(np.finfo(np.float32).tiny)}
DTYPES = [np.float64, np.float32]


def _errors(got, exact, scales, floor):
    """Worst ``|got - exact| / max(scale, floor)``; an infinite exact value must be matched exactly."""
    worst = 0.0
    for g, e, sc in zip(np.ravel(got), exact, scales):
        g = float(g)
        assert not math.isnan(g), "NaN output"
        if mp.isinf(e):
            assert g == float(e), f"expected {e}, got {g}"
            continue
        assert math.isfinite(g), f"expected {e}, got {g}"
        worst = max(worst, float(abs(mp.mpf(g) - e) / max(mp.mpf(sc), mp.mpf(floor))))
    return worst


def _check(worst_errors, key, dtype, got, exact, scales=None, tol=None):
    scales = [abs(e) for e in exact] if scales is None else scales
    err = _errors(got, exact, scales, FLOOR[dtype])
    worst_errors(f"{key}/{np.dtype(dtype).name}", err)
    assert err <= (TOL[dtype] if tol is None else tol), f"{key}: worst relative error {err:.3e}"


# ------------------------------------------------------------------- softmax
def _class_weight(k):
    return 0.5 + np.arange(k) % 3


SOFTMAX_CASES = {
    "cross_entropy": (lambda k: nbloss.CrossEntropy(), {}),
    "cross_entropy_weighted": (lambda k: nbloss.CrossEntropy(class_weight=_class_weight(k)), {}),
    "cross_entropy_smoothing": (lambda k: nbloss.CrossEntropy(label_smoothing=0.1), {}),
    "cross_entropy_weighted_smoothing": (
        lambda k: nbloss.CrossEntropy(class_weight=_class_weight(k), label_smoothing=0.3), {}),
    "cross_entropy_soft": (lambda k: nbloss.CrossEntropy(), {"soft": True}),
    "cross_entropy_soft_smoothing": (lambda k: nbloss.CrossEntropy(class_weight=_class_weight(k),
                                                                   label_smoothing=0.2), {"soft": True}),
    "focal_gamma2": (lambda k: nbloss.FocalLoss(gamma=2.0), {}),
    "focal_gamma0.5_alpha": (lambda k: nbloss.FocalLoss(gamma=0.5, alpha=_class_weight(k)), {}),
    "focal_gamma3.7": (lambda k: nbloss.FocalLoss(gamma=3.7), {}),
    "focal_gamma0": (lambda k: nbloss.FocalLoss(gamma=0.0), {}),
    # 1 and 3 (like 0 and 2) take small_int_power's products instead of pow_unit
    "focal_gamma1": (lambda k: nbloss.FocalLoss(gamma=1.0), {}),
    "focal_gamma3": (lambda k: nbloss.FocalLoss(gamma=3.0), {}),
}


def _focal_hessian_terms(z, y, gamma, alpha):
    """Sum of the magnitudes of the terms of each focal Hessian entry.

    The exact entry changes sign (focal loss is not convex), so near its zero
    the attainable relative accuracy is that of the terms it is a sum of:
    ``a u^g u [p (2g + 1) + g q |(g + 1) p - 1|]`` for ``y`` and
    ``a u^g p_j [g r_j (2p + q |g p - 1|) + (g q + 1)(1 - p_j)]`` otherwise.
    """
    p, nll = ref._softmax(z)
    rest = ref._others(p)
    u, py, g = rest[y], p[y], mp.mpf(gamma)
    if u == 0:
        return [mp.mpf(0)] * len(p)
    q = py * nll[y] / u if py != 0 else mp.mpf(0)
    a_u = mp.mpf(float(alpha)) * u**g
    terms = []
    for j in range(len(p)):
        if j == y:
            terms.append(a_u * u * (py * (2 * g + 1) + g * q * abs((g + 1) * py - 1)))
        else:
            terms.append(a_u * p[j] * (g * (p[j] / u) * (2 * py + q * abs(g * py - 1)) + (g * q + 1) * rest[j]))
    return terms


def _soft_targets(labels, k, rng):
    q = 0.8 * np.eye(k)[labels] + 0.2 * rng.dirichlet(np.ones(k), size=labels.shape[0])
    q[::4] = np.eye(k)[labels[::4]]  # some exactly one-hot rows
    return q


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 7, 1000])
@pytest.mark.parametrize("case", sorted(SOFTMAX_CASES))
def test_softmax_family_matches_mpmath(case, k, dtype, worst_errors):
    make, opts = SOFTMAX_CASES[case]
    loss = make(k)
    names, raw, labels = softmax_corpus(k)
    if k == 1000:  # the mpmath reference is O(K) per entry: every row kind, labels rotating top/bottom/middle
        rows = np.arange(0, raw.shape[0], 3)
        pick = rows + np.arange(rows.shape[0]) % 3
        raw, labels = raw[pick], labels[pick]
    raw = raw.astype(dtype)
    rng = np.random.default_rng(k)
    sw = rng.uniform(0.5, 2.0, size=raw.shape[0]).astype(dtype)
    target = _soft_targets(labels, k, rng).astype(dtype) if opts.get("soft") else labels
    got_loss = loss.loss(target, raw, sw, reduction="none")
    got_grad, got_hess = loss.gradient_hessian(target, raw, sw)

    losses, grads, hesses, gscales, hscales = [], [], [], [], []
    focal = isinstance(loss, nbloss.FocalLoss)
    w = getattr(loss, "class_weight", None)
    for i in range(raw.shape[0]):
        s = mp.mpf(float(sw[i]))
        z = raw[i].astype(np.float64)
        if focal:
            alpha = 1.0 if loss.alpha is None else loss.alpha[labels[i]]
            l, g, h = ref.focal_row(z, int(labels[i]), loss.gamma, alpha)
            with mp.workdps(ref._digits_for(z, int(labels[i]))):
                terms = [+t for t in _focal_hessian_terms(z, int(labels[i]), loss.gamma, alpha)]
            gscales += [abs(s * x) for x in g]
            hscales += [max(abs(s * x), s * t) for x, t in zip(h, terms)]
        else:
            soft = target[i].astype(np.float64) if opts.get("soft") else None
            coef = ref.cross_entropy_coefficients(int(labels[i]), k, w, loss.label_smoothing, soft)
            l, g, h = ref.cross_entropy_row(z, coef)
            p, _ = ref._softmax(z)
            total = mp.fsum(coef)
            hard = soft is None and loss.label_smoothing == 0.0
            gscales += [abs(s * x) if hard else s * max(total * pj, cj) for x, pj, cj in zip(g, p, coef)]
            hscales += [abs(s * x) for x in h]
        losses.append(s * l)
        grads += [s * x for x in g]
        hesses += [s * x for x in h]
    _check(worst_errors, f"{case}/loss", dtype, got_loss, losses)
    _check(worst_errors, f"{case}/gradient", dtype, got_grad, grads, gscales)
    _check(worst_errors, f"{case}/hessian", dtype, got_hess, hesses, hscales)


# -------------------------------------------------------------- element-wise
def _logistic_case(loss, soft, dtype, worst_errors, key):
    y, z = logistic_pairs(soft)
    representable = ~np.isfinite(z) | (np.abs(z) <= np.finfo(dtype).max)
    y, z = y[representable], z[representable].astype(dtype)
    y = y.astype(dtype)
    pw = float(loss.pos_weight) if getattr(loss, "pos_weight", None) is not None else 1.0
    got_loss = loss.loss(y, z, reduction="none")
    got_grad, got_hess = loss.gradient_hessian(y, z)
    losses, grads, hesses, gscales, hscales = [], [], [], [], []
    for yi, zi in zip(y.astype(np.float64), z.astype(np.float64)):
        if isinstance(loss, nbloss.BinaryFocalLoss):
            l, g, h = ref.binary_focal(yi, zi, loss.gamma, loss.alpha)
            p = ref._sigmoid(mp.mpf(float(zi)))
            scale = (abs(l) + max(p, mp.mpf(float(yi)))) if (soft or loss.gamma > 0) else None
            gscales.append(max(abs(g), scale) if scale is not None else abs(g))
            hscales.append(max(abs(h), (abs(l) + p * (1 - p)) * 4) if loss.gamma > 0 else abs(h))
        else:
            l, g, h = ref.bce(yi, zi, pw)
            p = ref._sigmoid(mp.mpf(float(zi)))
            gscales.append(max(p, mp.mpf(float(yi))) * max(1, pw) if soft else abs(g))
            hscales.append(abs(h))
        losses.append(l)
        grads.append(g)
        hesses.append(h)
    tol = _float32_bar(loss) if dtype == np.float32 and _in_float32(loss) else None
    _check(worst_errors, f"{key}/loss", dtype, got_loss, losses, tol=tol)
    _check(worst_errors, f"{key}/gradient", dtype, got_grad, grads, gscales, tol=tol)
    _check(worst_errors, f"{key}/hessian", dtype, got_hess, hesses, hscales, tol=tol)


def _in_float32(loss) -> bool:
    """Whether ``loss``'s float32 kernels compute in float32."""
    return isinstance(loss, (nbloss.BinaryCrossEntropy, nbloss.BinaryFocalLoss))


def _float32_bar(loss) -> float:
    """The relative error allowed to a float32 kernel that computes in float32 (see FLOAT32_ARITHMETIC_TOL)."""
    return FLOAT32_ARITHMETIC_TOL * max(1.0, getattr(loss, "gamma", 0.0) / 2.0)


LOGISTIC_CASES = {
    "binary_cross_entropy": lambda: nbloss.BinaryCrossEntropy(),
    "binary_cross_entropy_pos_weight": lambda: nbloss.BinaryCrossEntropy(pos_weight=3.5),
    "binary_focal": lambda: nbloss.BinaryFocalLoss(),
    "binary_focal_gamma0.5_no_alpha": lambda: nbloss.BinaryFocalLoss(gamma=0.5, alpha=None),
    "binary_focal_gamma0": lambda: nbloss.BinaryFocalLoss(gamma=0.0, alpha=0.7),
    "binary_focal_gamma3.7": lambda: nbloss.BinaryFocalLoss(gamma=3.7, alpha=0.6),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("case", sorted(LOGISTIC_CASES))
def test_logistic_family_matches_mpmath(case, soft, dtype, worst_errors):
    key = f"{case}_{'soft' if soft else 'hard'}"
    _logistic_case(LOGISTIC_CASES[case](), soft, dtype, worst_errors, key)


REGRESSION_CASES = {
    "huber": (lambda: nbloss.HuberLoss(delta=1.0), lambda y, z: ref.huber(y, z, 1.0), 1.0),
    "huber_delta0.5": (lambda: nbloss.HuberLoss(delta=0.5), lambda y, z: ref.huber(y, z, 0.5), 0.5),
    "pseudo_huber": (lambda: nbloss.PseudoHuberLoss(delta=1.0), lambda y, z: ref.pseudo_huber(y, z, 1.0), 1.0),
    "pseudo_huber_delta2.5": (lambda: nbloss.PseudoHuberLoss(delta=2.5),
                              lambda y, z: ref.pseudo_huber(y, z, 2.5), 2.5),
    "squared_error": (lambda: nbloss.SquaredError(), ref.squared_error, 1.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(REGRESSION_CASES))
def test_regression_family_matches_mpmath(case, dtype, worst_errors):
    make, reference, delta = REGRESSION_CASES[case]
    loss = make()
    y, z = regression_pairs(delta)
    if dtype == np.float32:  # inputs representable in float32, residual computed from those
        keep = np.abs(np.nan_to_num(z, posinf=0, neginf=0)) < 1e38
        y, z = y[keep].astype(dtype), z[keep].astype(dtype)
    got_loss = loss.loss(y, z, reduction="none")
    got_grad, got_hess = loss.gradient_hessian(y, z)
    exact = [reference(float(a), float(b)) for a, b in zip(y, z)]
    if case == "squared_error":  # r^2 / 2 overflows float64 for |r| > 1.3e154: must then be inf
        overflow = [abs(e[0]) > mp.mpf(float(np.finfo(dtype).max)) for e in exact]
        exact = [(mp.inf, e[1], e[2]) if o else e for e, o in zip(exact, overflow)]
    _check(worst_errors, f"{case}/loss", dtype, got_loss, [e[0] for e in exact])
    _check(worst_errors, f"{case}/gradient", dtype, got_grad, [e[1] for e in exact])
    _check(worst_errors, f"{case}/hessian", dtype, got_hess, [e[2] for e in exact])


# ------------------ float32 is float64, rounded (but for BinaryCrossEntropy and BinaryFocalLoss)
def _as_float32(a):
    """``a`` in float32; values beyond its range (1e300 and the like) become ``±inf``, which the kernels take."""
    with np.errstate(over="ignore"):
        return a.astype(np.float32)


def _float32_problems():
    """``(key, loss, target, raw)`` in float32 for every loss above: the adversarial corpus plus random
    rows at two scales (logits of a few units are where a float32 subtraction shows)."""
    rng = np.random.default_rng(32)
    for k in (2, 7):
        _, raw, labels = softmax_corpus(k)
        raw = np.concatenate([raw, rng.normal(scale=3.0, size=(300, k)), rng.normal(scale=30.0, size=(300, k))])
        labels = np.concatenate([labels, rng.integers(0, k, 600)])
        for case, (make, opts) in sorted(SOFTMAX_CASES.items()):
            target = _as_float32(_soft_targets(labels, k, rng)) if opts.get("soft") else labels
            yield f"{case}/K={k}", make(k), target, _as_float32(raw)
    for soft in (False, True):
        y, z = logistic_pairs(soft)
        y = np.concatenate([y, rng.uniform(size=600) if soft else (rng.uniform(size=600) < 0.3) * 1.0])
        z = np.concatenate([z, rng.normal(scale=3.0, size=300), rng.normal(scale=30.0, size=300)])
        for case, make in sorted(LOGISTIC_CASES.items()):
            yield f"{case}/soft={soft}", make(), _as_float32(y), _as_float32(z)
    for case, (make, _, delta) in sorted(REGRESSION_CASES.items()):
        y, z = regression_pairs(delta)
        y = np.concatenate([y, rng.normal(size=600)])
        z = np.concatenate([z, y[-600:] + rng.normal(scale=3.0 * delta, size=600)])
        yield case, make(), _as_float32(y), _as_float32(z)


def _every_output(loss, target, raw, sw):
    """Gradient, Hessian, per-row losses (from ``loss`` and ``loss_gradient``), that call's gradient, the
    mean loss (as the input's dtype) and, for the losses that have them, probabilities."""
    outs = [*loss.gradient_hessian(target, raw, sw), loss.loss(target, raw, sw, reduction="none"),
            *loss.loss_gradient(target, raw, sw, reduction="none"), raw.dtype.type(loss.loss(target, raw, sw))]
    return outs + [loss.predict_proba(raw)] if hasattr(loss, "predict_proba") else outs


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_float32_outputs_are_the_float64_outputs_rounded(weighted):
    """The kernels compute in float64 whatever the dtype: for float32 inputs, every float32 output
    (gradient, Hessian, per-row losses, the mean loss, probabilities) must be the same call's float64
    output on the same values, rounded once, bit for bit.  Before 2026-11-24 Numba's ``float(x)``
    left float32 values in float32, the softmax kernels subtracted logits in float32 and kept
    exponentials in float32 output rows, and their outputs were up to 15 float32 ulps off this."""
    for key, loss, target, raw in _float32_problems():
        if _in_float32(loss):
            continue  # test_float32_arithmetic_within_its_bar
        sw = np.random.default_rng(5).uniform(0.5, 2.0, raw.shape[0]).astype(np.float32) if weighted else None
        wide = [None if a is None else a.astype(np.float64) if a.dtype.kind == "f" else a for a in (target, raw, sw)]
        for got, expected in zip(_every_output(loss, target, raw, sw), _every_output(loss, *wide), strict=True):
            assert got.dtype == np.float32, key
            np.testing.assert_array_equal(got, np.asarray(expected).astype(np.float32), err_msg=key)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_float32_arithmetic_within_its_bar(weighted):
    """The float32 kernels of BinaryCrossEntropy and BinaryFocalLoss compute in float32: every float32
    output is within ``_float32_bar`` of the same call's float64 output on the same values (itself within
    1e-12 of exact), relative to the output (the floor float32's smallest normal) or to the scale of the
    terms it is formed from, as in the mpmath tests above: for a soft target's BCE gradient ``max(p, y)
    max(1, pos_weight)`` (``p - y`` cancels there); for focal the gradient's ``|l| + max(p, y)`` and the
    Hessian's ``4 (|l| + p (1 - p))`` (both change sign, the loss being non-convex), weighted.  And the
    calls agree with each other: ``loss`` and ``loss_gradient`` give the same per-element losses,
    ``gradient_hessian`` and ``loss_gradient`` the same gradient, bit for bit."""
    tiny = float(np.finfo(np.float32).tiny)
    for key, loss, target, raw in _float32_problems():
        if not _in_float32(loss):
            continue
        sw = np.random.default_rng(5).uniform(0.5, 2.0, raw.shape[0]).astype(np.float32) if weighted else None
        wide = [None if a is None else a.astype(np.float64) for a in (target, raw, sw)]
        got, expected = _every_output(loss, target, raw, sw), _every_output(loss, *wide)
        weight = 1.0 if sw is None else wide[2]
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-wide[1]))
        term_scales = {}  # output index -> scale of the terms it is formed from
        if isinstance(loss, nbloss.BinaryFocalLoss):
            per_element_loss = np.abs(np.asarray(expected[2], dtype=np.float64))
            grad_scale = per_element_loss + np.maximum(p, wide[0]) * weight
            term_scales = {0: grad_scale, 4: grad_scale, 1: 4.0 * (per_element_loss + p * (1.0 - p) * weight)}
        elif "soft=True" in key:
            pw = 1.0 if loss.pos_weight is None else float(loss.pos_weight)
            term_scales = dict.fromkeys((0, 4), np.maximum(wide[0], p) * max(1.0, pw) * weight)
        bar = _float32_bar(loss)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g.dtype == np.float32, key
            e = np.asarray(e, dtype=np.float64)
            scale = np.maximum(np.abs(e), tiny)
            if i in term_scales:
                scale = np.maximum(scale, term_scales[i])
            with np.errstate(invalid="ignore"):  # inf - inf where both are inf; g == e below
                err = np.abs(np.asarray(g, dtype=np.float64) - e) / scale
            assert np.all((err <= bar) | (g == e)), (key, i, float(np.nanmax(err)))
        np.testing.assert_array_equal(got[2], got[3], err_msg=key)  # per-element losses of both calls
        np.testing.assert_array_equal(got[0], got[4], err_msg=key)  # gradients of both calls
