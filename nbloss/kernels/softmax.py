"""Softmax-family kernels: cross-entropy (class indices or soft targets) and
softmax focal loss.

Shapes: ``raw`` (n, K); ``labels`` (n,) int64; ``targets`` (n, K);
per-class arrays (K,) float64; ``loss_out`` (n,) or (0,);
``grad_out``/``hess_out`` (n, K) or (0, K).  The kernels with class labels
(``cross_entropy_labels``, ``focal_labels``, ``focal_int_labels``,
``focal_half_labels``) are copies of one body, ``_labelled_kernel``, each
bound to its row formula and row statistics (``cross_entropy_row`` and
``cross_entropy_stats``, ``focal_row`` and ``focal_stats``,
``focal_int_stats`` or ``focal_half_stats``) and taking their parameters as
one tuple.  The statistics give a row's ``log S`` and the formula's factor
of ``1 - p_y``; the formula gives the row's loss and writes its derivatives.

Numerics of a row ``z`` with maximum ``m``: ``e_k = exp(z_k - m)``, ``S = 1 +
S'`` with ``S'`` the sum of every ``e_k`` but one maximum's (an exact 1), formed
without the 1, so ``log S = log1p(S')`` keeps tiny losses exact and ``1 - p_j =
S' / S`` keeps the curvature of a confident row.  Entries with ``e_j = 1`` are
the maxima (ties included), the only ones whose ``p_j`` can exceed 1/2.  For the
labelled class ``y`` we form ``1 - p_y = rest_y / S`` from the other classes'
terms, never by subtraction from 1.  Nothing here tracks the maximum's index:
``m``, ``S'`` and these tests are selects, not branches, so random logits cost
no mispredicted branches and the loops over a row vectorise.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, prange, types
from numba.extending import overload

# Numba's own get_num_threads wraps this in an overload that Numba will not cache
# (it is treated as a dynamic global); the intrinsic caches
from numba.np.ufunc.parallel import _iget_num_threads

from .._numerics import (
    MIN_FLAT_BLOCK,
    block_bounds,
    exp_nonpos,
    first_row,
    half_int_power,
    log1p_nonneg,
    n_blocks,
    ordered_sum,
    pow_unit,
    shifted,
    small_int_power,
    weighted,
)
from . import inlined, inlined_by_numba, parallel_kernel, renamed_copy


@inlined
def _row_max(z):
    """``max(z)`` by selects (no branch to mispredict); NaN only if ``z[0]`` is NaN
    (a later NaN is skipped here and shows in its exponential)."""
    m = z[0]
    for k in range(1, z.shape[0]):
        zk = z[k]
        m = zk if zk > m else m
    return m


@inlined
def _add_rest_term(e, small, ones):
    """Adds ``e`` to the running sums of ``S'``: the terms below 1 in order, and the count of
    maxima (``e = 1``), kept apart so that ``S'`` adds one less than the count, an exact integer.

    All floating point (the count is ``e - t``, exactly 0 or 1, NaN for a NaN): measured
    against a select plus an integer count, this pass took a quarter less time at K = 10."""
    t = 0.0 if e == 1.0 else e
    return small + t, ones + (e - t)


@inlined
def _row_exp_store(z, m, buf):
    """``S'``, storing ``e_k`` in ``buf`` (float64, see :func:`_exp_row`, for the next pass).

    Two loops: the exponentials (no loop-carried dependence, so vectorised),
    then their sum.
    """
    for k in range(z.shape[0]):
        buf[k] = exp_nonpos(shifted(z[k], m))
    return _rest_sum(buf)


@inlined
def _rest_sum(e):
    """``S'`` of a row's stored exponentials: the ``e_k < 1`` in order plus one less than
    the number of maxima (``e_k = 1``), an exact integer; NaN if any ``e_k`` is NaN."""
    small = 0.0
    ones = 0.0
    for k in range(e.shape[0]):
        small, ones = _add_rest_term(e[k], small, ones)
    return small + (ones - 1.0)


@inlined
def _one_minus_p(e_j, p, s_rest, inv_s):
    """``1 - p_j`` without cancellation: at a row maximum (``e_j = 1``) it is ``S' / S``
    (the only entries whose probability can be near 1); elsewhere ``p_j < 1/2``."""
    return s_rest * inv_s if e_j == 1.0 else 1.0 - p


@inlined
def _rest_of(s_rest, e_y):
    """``S - e_y``, the other classes' terms, so that ``1 - p_y = rest / S`` never
    subtracts from 1 (``S'`` itself when ``y`` is a maximum, else ``1 + S' - e_y >= 1``)."""
    return s_rest if e_y == 1.0 else 1.0 + (s_rest - e_y)


@inlined
def _softmax_terms(i, src, inv_s, s_rest, scale, offset_scale, offset, grad_out, hess_out, want_grad, want_hess):
    """The terms every softmax kernel shares, for row ``i`` with ``p_j = src[j] / S`` (``src`` the
    row's stored ``e_j``): Hessian ``scale p_j (1 - p_j)`` and gradient ``scale p_j - offset_scale
    offset[j]`` (a zero ``offset_scale`` with a finite ``offset`` subtracts an exact 0).  ``src`` is
    float64 (see :func:`_exp_row`); reading ``src[j]`` before writing index ``j`` keeps an output row
    usable as ``src``."""
    for j in range(src.shape[0]):
        e_j = src[j]
        p = e_j * inv_s
        if want_hess:
            hess_out[i, j] = scale * p * _one_minus_p(e_j, p, s_rest, inv_s)
        if want_grad:
            grad_out[i, j] = scale * p - offset_scale * offset[j]


def _float64_row_or_scratch(row, scratch_row):
    """``row`` (an input or output row) if it is float64, else ``scratch_row``: chosen by the dtype when the
    kernel is compiled (a Numba overload; this Python body never runs)."""


@overload(_float64_row_or_scratch, inline="always")
def _float64_row_or_scratch_impl(row, scratch_row):
    if row.dtype == types.float64:
        return lambda row, scratch_row: row
    return lambda row, scratch_row: scratch_row


def _is_float64(arr):
    """Whether ``arr`` holds float64: a constant when the kernel is compiled (a Numba overload; this
    Python body never runs)."""


@overload(_is_float64, inline="always")
def _is_float64_impl(arr):
    result = arr.dtype == types.float64
    return lambda arr: result


@inlined
def _exp_row(i, grad_out, hess_out, scratch, want_grad, want_hess):
    """Where row ``i`` stores its ``e_k`` for the pass that forms its outputs: its gradient row, else its
    Hessian row, else ``scratch``, a float64 row.  A float32 output row would round ``e_k`` before the
    division, so float32 outputs always take ``scratch``; float64 ones take their own row, which
    the pass then overwrites (``scratch`` for every dtype made float64 ``predict_proba`` at n = 1e6,
    K = 10 take 36.1 ms against 28.3 this way, the two alternating in one process)."""
    if want_grad:
        return _float64_row_or_scratch(grad_out[i], scratch)
    if want_hess:
        return _float64_row_or_scratch(hess_out[i], scratch)
    return scratch


@inlined
def _block_views(lo, hi, raw, targets, sample_weight, loss_out, grad_out, hess_out, want_grad, want_hess):
    """Rows ``lo:hi`` of every array a kernel touches; unused (zero-row) arrays pass through."""
    sb = sample_weight[lo:hi] if sample_weight.shape[0] > 0 else sample_weight
    lb = loss_out[lo:hi] if loss_out.shape[0] > 0 else loss_out
    gb = grad_out[lo:hi] if want_grad else grad_out
    hb = hess_out[lo:hi] if want_hess else hess_out
    return raw[lo:hi], targets[lo:hi], sb, lb, gb, hb


# Every call of the labelled kernels takes a block's rows a chunk at a time: a
# first pass finds each row's maximum and stores its shifted logits in a
# float64 scratch, one flat loop exponentiates the chunk's values (LLVM
# vectorises it; a row of K = 10 is too short to vectorise well, and a sum
# that exponentiates as it adds does not vectorise at all), a pass per row sums
# them, and a last pass per row forms the loss and derivatives.  In between,
# when the loss is wanted or for focal, one more flat loop over the chunk's
# rows forms each row's ``log S`` and the formula's factor (focal's
# ``(1 - p_y)^gamma``, see ``focal_stats``), vectorised across rows: inline in
# each row, the dependent chain of a logarithm's operations was no faster than
# libm's call.  Softmax focal ``gradient_hessian``, n = 1e6, K = 10, float64:
# gamma 2 took 32 ms with libm's ``log1p`` per row, 34 ms with
# ``log1p_nonneg`` per row, 23 ms with this loop; gamma 1.5 took 37 ms with
# the power per row, 27 ms with it in this loop.  Before every call took this
# loop, the others went a row at a time, exponentials stored in an output row
# or (for the loss alone) formed in the sum's chain: one thread, in cache, K =
# 10, CrossEntropy ``loss`` took 119 ns a row that way and 40 this way,
# ``loss_gradient`` 102 and 42, ``gradient`` 68 and 38; FocalLoss(gamma=2)
# ``loss`` 116 and 34, ``loss_gradient`` 98 and 40.
#
# The gradient-and-Hessian call (what boosting and Newton steps make) runs a
# copy of the loop whose flags are constants; every other call runs one copy
# that reads them at run time and passes the derivative flags to the row
# formula as constants (see ``_formula_call``).  One copy for every call
# would compile faster (CrossEntropy's kernel cold: 9.8 s against 15.1) but
# its gradient and Hessian took 39.8 ns a row against 37.5 at K = 10.  The
# block loop compiled as a function of its own (inlined by LLVM or called)
# ran 9 ns a row slower than inlined into the parfor by Numba (likely because
# Numba compiles a parfor's body with its arrays marked as not aliasing, and
# a function of its own without; not confirmed).
#
# The scratch is one chunk per thread (``get_thread_id``), not per block: a
# call allocates ``threads * rows * (K + 4)`` float64, with chunks of
# ``_ROWS`` rows, fewer for long rows (at most ``_CHUNK_ENTRIES``
# exponentials, 32 KiB).
_ROWS = 32
_CHUNK_ENTRIES = 4096
# rows of the per-row statistics scratch: the maximum ``m``, ``S'``, ``log S`` and the formula's factor
_MAX, _REST, _LOG, _FACTOR = 0, 1, 2, 3


@inlined
def _chunk_scratch(n_classes):
    """Per thread, one chunk's exponentials, row statistics and counted flags."""
    threads = _iget_num_threads()
    rows = max(1, min(_ROWS, _CHUNK_ENTRIES // n_classes))
    return (np.empty((threads, rows * n_classes)), np.empty((threads, 4, rows)),
            np.empty((threads, rows), np.bool_))


@inlined
def _one_minus_p_y(s_rest, e_y):
    """``1 - p_y = rest_y / S`` (see :func:`_rest_of`), as every formula forms it."""
    return _rest_of(s_rest, e_y) * (1.0 / (1.0 + s_rest))


@inlined_by_numba
def _shift_exp_chunk(rows, lab, c_lo, c_hi, n_classes, has_ignore, ignore_index, exps, row_max, row_counted):
    """Rows ``c_lo:c_hi`` of a block: ``exps[(i - c_lo) K + k] = exp(z_k - m)``,
    ``row_max[i - c_lo] = m`` and ``row_counted[i - c_lo]``, False for a row at
    ``ignore_index`` or with a bad label.

    Returns the first bad label's row in the block (``rows.shape[0]`` if none).
    """
    first_label = rows.shape[0]
    chunk = exps[:(c_hi - c_lo) * n_classes]
    if not _is_float64(rows):
        # float32 logits are widened into the scratch in one flat loop, and each row's maximum and shift
        # then read them there: widened a row of K = 10 at a time they cost 4 to 7 ns a row more than
        # float64 ones (one thread, n = 1e5); read from the scratch, float64 rows lost as much
        logits = rows[c_lo:c_hi].reshape(chunk.shape[0])
        for idx in range(chunk.shape[0]):
            chunk[idx] = logits[idx]
    for i in range(c_lo, c_hi):
        y = lab[i]
        e = exps[(i - c_lo) * n_classes:(i - c_lo + 1) * n_classes]
        z = _float64_row_or_scratch(rows[i], e)
        m = _row_max(z)
        for k in range(n_classes):
            e[k] = shifted(z[k], m)
        ignored = has_ignore and y == ignore_index
        label_ok = (y >= 0) & (y < n_classes)
        if not ignored and not label_ok:
            first_label = min(first_label, i)
        row_max[i - c_lo] = m
        row_counted[i - c_lo] = label_ok and not ignored
    for idx in range(chunk.shape[0]):
        chunk[idx] = exp_nonpos(chunk[idx])
    return first_label


@inlined_by_numba
def _chunk_row_sum(e, counted, i, lb, gb, hb, store_loss, want_grad, want_hess):
    """``S'`` of row ``i`` from its exponentials ``e``, NaN if the row holds a NaN.

    A row not counted gets zero outputs; it returns 0, or NaN if the row
    holds a NaN (a NaN shows in its exponentials).
    """
    s_rest = _rest_sum(e)
    if not counted:
        if store_loss:
            lb[i] = 0.0
        if want_grad:
            gb[i, :] = 0.0
        if want_hess:
            hb[i, :] = 0.0
        return s_rest if s_rest != s_rest else 0.0
    return s_rest


@parallel_kernel
def label_weight_total(labels, sample_weight, class_weight, has_ignore, ignore_index):
    """Total weight ``sum_i s_i * w[y_i]`` over counted rows; validates labels.

    Returns ``(total, first_bad_row)``.  Runs before any kernel that needs the
    total (a mean's gradient) and so validates labels before anything indexes.
    """
    n = labels.shape[0]
    n_classes = class_weight.shape[0]
    has_sw = sample_weight.shape[0] > 0
    nb = n_blocks(n, MIN_FLAT_BLOCK)
    partial = np.empty(nb)
    bad = n
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        lab = labels[lo:hi]
        sb = sample_weight[lo:hi] if has_sw else sample_weight
        acc = 0.0
        for i in range(lab.shape[0]):
            y = lab[i]
            if not (has_ignore and y == ignore_index):
                if y < 0 or y >= n_classes:
                    bad = min(bad, lo + i)
                else:
                    acc += (np.float64(sb[i]) if has_sw else 1.0) * class_weight[y]
        partial[b] = acc
    return ordered_sum(partial), bad


@parallel_kernel
def cross_entropy_soft(targets, raw, sample_weight, class_weight, smoothing, target_tol,
                       grad_scale, loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """Cross-entropy with soft targets (rows of class probabilities).

    Coefficients ``c_k = s * w_k * ((1 - eps) q_k + eps / K)``; loss, gradient
    and Hessian as in :func:`cross_entropy_labels`.  A target row is bad when an
    entry is outside [0, 1] (or NaN) or the row sum is off 1 by more than
    ``target_tol``.  Returns ``(loss_sum, first_bad_target, first_bad_raw)``.
    """
    n, n_classes = raw.shape
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    keep = 1.0 - smoothing
    spread = smoothing / n_classes
    nb = n_blocks(n)
    partial = np.empty(nb)
    bad_target = n
    bad_raw = n
    # per thread, a row's exponentials (see _exp_row) and its coefficients ``c_k``, and for each row of a
    # chunk ``S'``, ``C`` and the linear term: the chunk's logarithms are taken in one loop over its rows,
    # which vectorises (soft-target ``loss``, n = 1e5, K = 10: 10.0 ms with the logarithm in each row)
    threads = _iget_num_threads()
    scratch = np.empty((threads, 2, n_classes))
    stats = np.empty((threads, 3, _ROWS))
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        rows, qs, sb, lb, gb, hb = _block_views(lo, hi, raw, targets, sample_weight, loss_out, grad_out, hess_out,
                                                want_grad, want_hess)
        t = get_thread_id()
        row_scratch, row_coefs = scratch[t, 0], scratch[t, 1]
        rests, totals, linears = stats[t, 0], stats[t, 1], stats[t, 2]
        acc = 0.0
        count = rows.shape[0]
        for c_lo in range(0, count, _ROWS):
            c_hi = min(c_lo + _ROWS, count)
            for i in range(c_lo, c_hi):
                z = rows[i]
                q = qs[i]
                s = np.float64(sb[i]) if has_sw else 1.0
                m = _row_max(z)
                row_exps = _exp_row(i, gb, hb, row_scratch, want_grad, want_hess)
                s_rest = _row_exp_store(z, m, row_exps)
                if s_rest != s_rest:
                    bad_raw = min(bad_raw, lo + i)
                c_total = 0.0
                linear = 0.0
                q_sum = 0.0
                q_ok = True
                for k in range(n_classes):
                    qk = np.float64(q[k])
                    q_ok = q_ok & (0.0 <= qk) & (qk <= 1.0)
                    q_sum += qk
                    c = s * class_weight[k] * (keep * qk + spread)
                    row_coefs[k] = c
                    c_total += c
                    if want_loss:
                        linear += weighted(c, -shifted(z[k], m))
                if not q_ok or abs(q_sum - 1.0) > target_tol:
                    bad_target = min(bad_target, lo + i)
                rests[i - c_lo], totals[i - c_lo], linears[i - c_lo] = s_rest, c_total, linear
                if want_grad or want_hess:
                    _softmax_terms(i, row_exps, 1.0 / (1.0 + s_rest), s_rest, grad_scale * c_total, grad_scale,
                                   row_coefs, gb, hb, want_grad, want_hess)
            if want_loss:
                chunk = c_hi - c_lo
                for r in range(chunk):  # each row's loss, in place of its S'
                    rests[r] = weighted(totals[r], log1p_nonneg(rests[r])) + linears[r]
                for r in range(chunk):
                    acc += rests[r]
                    if store_loss:
                        lb[c_lo + r] = rests[r]
        partial[b] = acc
    return ordered_sum(partial), bad_target, bad_raw


@inlined
def cross_entropy_stats(params, s_rest, u, want_loss):
    """A row's ``(log S, factor)`` for the row formula, from ``S'`` and ``u = 1 - p_y``: cross-entropy
    needs ``log S`` for its loss only, and has no factor."""
    return log1p_nonneg(s_rest) if want_loss else 0.0, 1.0


@inlined
def cross_entropy_row(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, grad_out, hess_out,
                      want_loss, want_grad, want_hess):
    """Cross-entropy with a class label, class weights and label smoothing, on row ``i``.

    ``params = (main_w, smooth_w, smooth_rest, smooth_total)``.  Per row with
    weight ``s``: coefficients ``c_k = s * (main_w[y] [k == y] + smooth_w[k])``
    (``main_w = (1 - eps) w``, ``smooth_w = eps w / K``, so the row loss is
    PyTorch's), loss ``sum_k c_k (log S - (z_k - m))``, a sum of non-negative
    terms; gradient ``C p_j - c_j`` with ``C = sum_k c_k``; Hessian
    ``C p_j (1 - p_j)``.  For ``j = y`` the gradient is ``s * smooth_rest[y] -
    C (1 - p_y)`` with ``smooth_rest[y] = sum_{k != y} smooth_w[k]``, exact
    zero plus a product when there is no smoothing (then every smoothing term
    is an exact 0, so it is subtracted unconditionally).
    """
    main_w, smooth_w, smooth_rest, smooth_total = params
    a = s * main_w[y]
    row_loss = 0.0
    if want_loss:
        row_loss = weighted(a, log_s - shifted(z[y], m))
        if smooth_total > 0.0:
            for k in range(z.shape[0]):
                row_loss += weighted(s * smooth_w[k], log_s - shifted(z[k], m))
    if want_grad or want_hess:
        c_total = a + s * smooth_total
        inv_s = 1.0 / (1.0 + s_rest)
        g_y = grad_scale * (s * smooth_rest[y] - c_total * _one_minus_p_y(s_rest, e[y]))
        _softmax_terms(i, e, inv_s, s_rest, grad_scale * c_total, grad_scale * s, smooth_w, grad_out, hess_out,
                       want_grad, want_hess)
        if want_grad:
            grad_out[i, y] = g_y
    return row_loss


@inlined
def focal_stats(params, s_rest, u, want_loss):
    """``(log S, u^gamma)``: focal needs both for its loss and its derivatives; the power by :func:`pow_unit`
    (for ``gamma`` outside ``SMALL_INT_EXPONENTS`` and ``HALF_INT_EXPONENTS``)."""
    return log1p_nonneg(s_rest), pow_unit(u, params[1])


@inlined
def focal_int_stats(params, s_rest, u, want_loss):
    """:func:`focal_stats` for ``gamma`` in ``SMALL_INT_EXPONENTS`` only: the power by
    :func:`small_int_power`'s selects and products."""
    return log1p_nonneg(s_rest), small_int_power(u, params[1])


@inlined
def focal_half_stats(params, s_rest, u, want_loss):
    """:func:`focal_stats` for ``gamma`` in ``HALF_INT_EXPONENTS`` only: the power by :func:`half_int_power`'s
    products and square root."""
    return log1p_nonneg(s_rest), half_int_power(u, params[1])


_TWO_64 = 2.0**64


@inlined
def focal_row(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, grad_out, hess_out,
              want_loss, want_grad, want_hess):
    """Softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y`` on row ``i``; ``params = (alpha, gamma)``,
    ``factor = (1 - p_y)^gamma`` from :func:`focal_stats`.

    With ``p = p_y``, ``u = 1 - p``, ``L = -log p``, ``rho = L / u`` and
    ``q = p rho`` (all finite in the limits ``p -> 0`` and ``p -> 1``, where
    ``rho -> 1``), the derivatives of ``l = a u^gamma L`` (``a = s alpha_y``):

    * ``dl/dz_y = -G u`` and ``dl/dz_j = G p_j`` (``j != y``), with
      ``G = a u^gamma (gamma q + 1)``;
    * ``d2l/dz_y2 = a u^gamma u [p (2 gamma + 1) + gamma q ((gamma + 1) p - 1)]``;
    * ``d2l/dz_j2 = a u^gamma p_j [gamma r_j (2p + q (gamma p - 1))
      + (gamma q + 1)(1 - p_j)]`` with ``r_j = p_j / u <= 1``.

    Derivation: ``l = a f(p)``, ``dp/dz_j = p a_j`` with ``a_j = [j = y] - p_j``,
    so ``dl/dz_j = a g a_j`` with ``g = p f'(p) = -u^gamma (gamma q + 1)`` and
    ``d2l/dz_j2 = a [h a_j^2 - g p_j (1 - p_j)]`` with
    ``h = p g'(p) = gamma p u^(gamma - 2) [2u + L (gamma p - 1)]``.  This is not
    the binary focal Hessian applied per class.  ``gamma = 0`` gives cross-entropy.
    """
    alpha, gamma = params
    d_y = shifted(z[y], m)
    nll = log_s - d_y
    inv_s = 1.0 / (1.0 + s_rest)
    e_y = e[y]
    rest_y = _rest_of(s_rest, e_y)
    p_y = e_y * inv_s
    u = rest_y * inv_s
    a_u = s * alpha[y] * factor
    row_loss = weighted(a_u, nll) if want_loss else 0.0
    if want_grad or want_hess:
        rho = nll / u if u > 0.0 else 1.0
        q = 0.0 if p_y == 0.0 else p_y * rho
        big_g = grad_scale * a_u * (gamma * q + 1.0)
        h_scale = grad_scale * a_u
        # entries j != y share: gamma r_j (2p + q (gamma p - 1)) + (gamma q + 1)(1 - p_j)
        # c_r r_j with r_j = e_j / rest_y, as (c_r 2^64) (e_j / (rest_y 2^64)): the reciprocal of a subnormal
        # rest_y (the label's logit above all others by over 709.8) overflowed unscaled, and 0 * inf made
        # the Hessian NaN.  Scaled it stays finite; the powers of two cancel exactly, so the bits are the
        # old ones except where r_j < 2^-958 (then subnormal, c_r r_j is far below the term beside it),
        # and each entry still takes two multiplications (scaling e_j instead took a third).
        c_r_scaled = gamma * (2.0 * p_y + q * (gamma * p_y - 1.0)) * _TWO_64
        c_1 = gamma * q + 1.0
        inv_rest = 1.0 / (rest_y * _TWO_64) if rest_y > 0.0 else 0.0
        for j in range(e.shape[0]):
            e_j = e[j]
            p = e_j * inv_s
            if want_hess:
                r_term = c_r_scaled * (e_j * inv_rest)
                hess_out[i, j] = h_scale * p * (r_term + c_1 * _one_minus_p(e_j, p, s_rest, inv_s))
            if want_grad:
                grad_out[i, j] = big_g * p
        if want_hess:
            hess_out[i, y] = h_scale * u * (p_y * (2.0 * gamma + 1.0) + gamma * q * ((gamma + 1.0) * p_y - 1.0))
        if want_grad:
            grad_out[i, y] = -big_g * u
    return row_loss


@inlined_by_numba
def _formula_call(row_formula, params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, gb, hb, want_loss,
                  want_grad, want_hess):
    """``row_formula`` on row ``i`` with its derivative flags passed as constants: LLVM folds them once it
    has inlined the formula.  Passed at run time, they left the formula's loops to the formula's own
    compilation, where they ran half as fast (CrossEntropy ``gradient`` at K = 10: 65 ns a row against 34)."""
    if want_grad and want_hess:
        return row_formula(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, gb, hb, want_loss, True,
                           True)
    if want_grad:
        return row_formula(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, gb, hb, want_loss, True,
                           False)
    if want_hess:
        return row_formula(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, gb, hb, want_loss, False,
                           True)
    return row_formula(params, i, z, m, e, y, s_rest, log_s, factor, s, grad_scale, gb, hb, want_loss, False, False)


@inlined_by_numba
def _chunked_block(row_formula, row_stats, stats_across_rows, params, rows, lab, sb, has_sw, has_ignore,
                   ignore_index, grad_scale, lb, gb, hb, exps, stats, row_counted, store_loss,
                   want_loss, want_grad, want_hess):
    """One block, a chunk of rows at a time (see ``_ROWS``); ``exps``, ``stats`` and ``row_counted``
    are this thread's scratch, its chunk the rows of ``row_counted``.

    ``stats_across_rows`` (a constant) says whether ``row_stats`` runs in a loop over
    the chunk's rows (for a logarithm or power) or inline in each row
    (cross-entropy's constants: that loop's stores alone cost its
    ``gradient_hessian`` about a tenth); the loss's ``log S`` always runs in that loop.
    Returns ``(loss_sum, first_bad_label, first_bad_raw)``, the rows as offsets in
    the block (``rows.shape[0]`` meaning none).
    """
    count, n_classes = rows.shape
    chunk_rows = row_counted.shape[0]
    across = stats_across_rows or want_loss
    acc = 0.0
    first_label = count
    first_raw = count
    for c_lo in range(0, count, chunk_rows):
        c_hi = min(c_lo + chunk_rows, count)
        first_label = min(first_label, _shift_exp_chunk(rows, lab, c_lo, c_hi, n_classes, has_ignore, ignore_index,
                                                        exps, stats[_MAX], row_counted))
        for i in range(c_lo, c_hi):
            r = i - c_lo
            e = exps[r * n_classes:(r + 1) * n_classes]
            s_rest = _chunk_row_sum(e, row_counted[r], i, lb, gb, hb, store_loss, want_grad, want_hess)
            if s_rest != s_rest:
                first_raw = min(first_raw, i)
            stats[_REST, r] = s_rest
            if across:
                # e_y, for the loop below (a row not counted may hold a bad label, which must not index)
                stats[_FACTOR, r] = e[lab[i]] if row_counted[r] else 0.0
        if across:
            rests = stats[_REST, :c_hi - c_lo]
            logs = stats[_LOG]
            factors = stats[_FACTOR]
            for r in range(rests.shape[0]):
                # with log S: either the loss is wanted or the formula needs it (for cross-entropy the two agree)
                logs[r], factors[r] = row_stats(params, rests[r], _one_minus_p_y(rests[r], factors[r]), True)
        for i in range(c_lo, c_hi):
            r = i - c_lo
            if row_counted[r]:
                e = exps[r * n_classes:(r + 1) * n_classes]
                y = lab[i]
                s_rest = stats[_REST, r]
                if across:
                    log_s, factor = stats[_LOG, r], stats[_FACTOR, r]
                else:
                    log_s, factor = row_stats(params, s_rest, _one_minus_p_y(s_rest, e[y]), False)
                s = np.float64(sb[i]) if has_sw else 1.0
                row_loss = _formula_call(row_formula, params, i, rows[i], stats[_MAX, r], e, y, s_rest, log_s,
                                         factor, s, grad_scale, gb, hb, want_loss, want_grad, want_hess)
                if want_loss:
                    acc += row_loss
                    if store_loss:
                        lb[i] = row_loss
    return acc, first_label, first_raw


def _labelled_kernel(labels, raw, sample_weight, params, has_ignore, ignore_index, grad_scale,
                     loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """The body of every kernel with class labels; each loss's copy binds ``ROW_FORMULA``,
    ``ROW_STATS`` and ``STATS_ACROSS_ROWS`` (see :func:`_chunked_block`).

    ``params`` is the formula's parameter tuple.  Returns ``(loss_sum,
    first_bad_label, first_bad_raw)``.
    """
    n, n_classes = raw.shape
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    # the gradient-and-Hessian call runs a copy of the block loop with constant flags (see the comment above _ROWS)
    gh_only = want_grad and want_hess and not want_loss
    nb = n_blocks(n)
    exps, stats, row_counted = _chunk_scratch(n_classes)
    partial = np.empty(nb)
    # each block's first bad label and raw row, combined after the loop: a prange min reduction fed from
    # these branches trips Numba's reduction analysis ("unexpected cycle in lookup()")
    first_bad = np.empty((nb, 2), dtype=np.int64)
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        rows, lab, sb, lb, gb, hb = _block_views(lo, hi, raw, labels, sample_weight, loss_out, grad_out, hess_out,
                                                 want_grad, want_hess)
        count = rows.shape[0]
        t = get_thread_id()
        if gh_only:
            acc, first_label, first_raw = _chunked_block(ROW_FORMULA, ROW_STATS,  # noqa: F821
                                                         STATS_ACROSS_ROWS, params, rows, lab, sb,  # noqa: F821
                                                         has_sw, has_ignore, ignore_index, grad_scale, lb, gb, hb,
                                                         exps[t], stats[t], row_counted[t], False,
                                                         False, True, True)
        else:
            acc, first_label, first_raw = _chunked_block(ROW_FORMULA, ROW_STATS,  # noqa: F821
                                                         STATS_ACROSS_ROWS, params, rows, lab, sb,  # noqa: F821
                                                         has_sw, has_ignore, ignore_index, grad_scale, lb, gb, hb,
                                                         exps[t], stats[t], row_counted[t], store_loss,
                                                         want_loss, want_grad, want_hess)
        partial[b] = acc
        first_bad[b, 0] = lo + first_label if first_label < count else n
        first_bad[b, 1] = lo + first_raw if first_raw < count else n
    return ordered_sum(partial), first_row(first_bad[:, 0], n), first_row(first_bad[:, 1], n)


def _labelled_kernel_for(name, row_formula, row_stats, stats_across_rows):
    bindings = {"ROW_FORMULA": row_formula, "ROW_STATS": row_stats, "STATS_ACROSS_ROWS": stats_across_rows}
    return parallel_kernel(renamed_copy(_labelled_kernel, name, bindings))


cross_entropy_labels = _labelled_kernel_for("cross_entropy_labels", cross_entropy_row, cross_entropy_stats, False)
# gamma outside SMALL_INT_EXPONENTS and HALF_INT_EXPONENTS, gamma in the first, gamma in the second
focal_labels = _labelled_kernel_for("focal_labels", focal_row, focal_stats, True)
focal_int_labels = _labelled_kernel_for("focal_int_labels", focal_row, focal_int_stats, True)
focal_half_labels = _labelled_kernel_for("focal_half_labels", focal_row, focal_half_stats, True)


@parallel_kernel
def softmax(raw, out):
    """``out = softmax(raw)`` row-wise.  Returns the first row holding a NaN (n if none)."""
    n = raw.shape[0]
    nb = n_blocks(n)
    bad_raw = n
    no_offset = np.empty(raw.shape[1])
    for k in range(no_offset.shape[0]):
        no_offset[k] = 0.0
    # per thread, a row's exponentials for float32 ``out`` (see _exp_row)
    scratch = np.empty((_iget_num_threads(), raw.shape[1]))
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        rows = raw[lo:hi]
        ob = out[lo:hi]
        row_scratch = scratch[get_thread_id()]
        for i in range(rows.shape[0]):
            z = rows[i]
            m = _row_max(z)
            row_exps = _exp_row(i, ob, ob, row_scratch, True, False)
            s_rest = _row_exp_store(z, m, row_exps)
            if s_rest != s_rest:
                bad_raw = min(bad_raw, lo + i)
            _softmax_terms(i, row_exps, 1.0 / (1.0 + s_rest), s_rest, 1.0, 0.0, no_offset, ob, ob, True, False)
    return bad_raw


@parallel_kernel
def hessian_product(proba, row_weight, v, out):
    """``out_i = r_i (diag(p_i) - p_i p_i^T) v_i`` row-wise: the full (not diagonal) Hessian of
    softmax cross-entropy in the logits times ``v``, for Newton solvers.  Shapes: ``proba``, ``v``,
    ``out`` (n, K); ``row_weight`` (n,)."""
    n, n_classes = proba.shape
    nb = n_blocks(n)
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        pb = proba[lo:hi]
        vb = v[lo:hi]
        rb = row_weight[lo:hi]
        ob = out[lo:hi]
        for i in range(pb.shape[0]):
            dot = 0.0
            for j in range(n_classes):
                dot += np.float64(pb[i, j]) * vb[i, j]
            for j in range(n_classes):
                ob[i, j] = np.float64(rb[i]) * pb[i, j] * (vb[i, j] - dot)
