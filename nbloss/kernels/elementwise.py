"""The row-parallel pass shared by every element-wise loss, one kernel per loss.

The per-element formulas live with their family (:mod:`.sigmoid`,
:mod:`.regression`) as ``element(y, z, param, extra, want_loss) -> (loss,
grad, hess)``.  Each loss's kernel (a copy of ``_kernel``, named after the
loss) is :func:`elementwise_pass` inlined with its formula, so the formula
is known at compile time and LLVM vectorises the loop (the formulas call no
libm function, see :mod:`nbloss._numerics`);
one generic driver switching on the loss at run time did not vectorise
(measured: BCE ``gradient_hessian`` at n = 1e7 took 101 ms with it, 14 ms now).

Kernel arguments: ``targets`` and ``raw`` (n, L); ``sample_weight`` (n,) or
(0,); ``col_param`` (L,) float64 (``pos_weight`` per column, else the loss's
first parameter repeated); ``extra`` a second scalar parameter;
``loss_out``/``grad_out``/``hess_out`` (n, L) or (0, L) when not wanted;
flags ``want_loss``, ``want_grad``, ``want_hess``.  Returns ``(loss_sum,
first_bad_target_row, first_bad_raw_row)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numerics import block_bounds, n_blocks, ordered_sum, weighted
from . import parallel_kernel, renamed_copy
from .regression import huber_element, pseudo_huber_element, squared_error_element
from .sigmoid import bce_element, binary_focal_element, binary_focal_int_element

_inline = njit(inline="always", cache=True)

# Loss sums are formed a chunk at a time: the chunk's weighted losses are
# stored, then added in element order.  Adding them in the computing loop
# would serialise it (an ordered float sum does not vectorise), and a
# reassociated sum would change the last bits between ``loss`` and
# ``loss_gradient`` and with the compiled code.
_CHUNK = 64


@_inline
def _flat_block(element, yb, zb, sb, has_sw, param, extra, target_lo, target_hi, grad_scale,
                lb, gb, hb, kept, store_loss, want_loss, want_grad, want_hess):
    """One block of flat elements (one column, or unit weights and one parameter for all columns).

    Called with constant ``want_*`` flags, so each use compiles to a loop
    with no branch on them.  ``kept`` is this block's (``_CHUNK``,) scratch;
    per-element losses (``store_loss``) are copied from it a chunk at a time,
    outside the computing loop.
    Returns ``(loss_sum, first_bad_target, first_bad_raw)`` as element
    offsets in the block (its length meaning none).
    """
    count = zb.shape[0]
    acc = 0.0
    first_target = count
    first_raw = count
    for c_lo in range(0, count, _CHUNK):
        c_count = min(_CHUNK, count - c_lo)
        for i in range(c_count):
            e = c_lo + i
            y = yb[e]
            z = zb[e]
            loss, grad, hess = element(y, z, param, extra, want_loss)
            first_target = min(first_target, count if (y >= target_lo) & (y <= target_hi) else e)
            first_raw = min(first_raw, count if z == z else e)
            s = float(sb[e]) if has_sw else 1.0
            if want_loss:
                kept[i] = weighted(s, loss)
            if want_grad:
                gb[e] = weighted(grad_scale * s, grad)
            if want_hess:
                hb[e] = weighted(grad_scale * s, hess)
        if want_loss:
            for i in range(c_count):
                acc += kept[i]
            if store_loss:
                for i in range(c_count):
                    lb[c_lo + i] = kept[i]
    return acc, first_target, first_raw


@_inline
def _row_block(element, yb, zb, lo, n_cols, sample_weight, col_param, extra, target_lo, target_hi, grad_scale,
               lb, gb, hb, store_loss, want_loss, want_grad, want_hess):
    """One block in the general case: each element's row weight and column parameter, any outputs."""
    has_sw = sample_weight.shape[0] > 0
    count = zb.shape[0]
    acc = 0.0
    first_target = count
    first_raw = count
    for e in range(count):
        row = (lo + e) // n_cols
        s = float(sample_weight[row]) if has_sw else 1.0
        y = yb[e]
        z = zb[e]
        loss, grad, hess = element(y, z, col_param[lo + e - row * n_cols], extra, want_loss)
        first_target = min(first_target, count if (y >= target_lo) & (y <= target_hi) else e)
        first_raw = min(first_raw, count if z == z else e)
        if want_loss:
            weighted_loss = weighted(s, loss)
            acc += weighted_loss
            if store_loss:
                lb[e] = weighted_loss
        if want_grad:
            gb[e] = weighted(grad_scale * s, grad)
        if want_hess:
            hb[e] = weighted(grad_scale * s, hess)
    return acc, first_target, first_raw


@_inline
def elementwise_pass(element, targets, raw, sample_weight, col_param, extra, target_lo, target_hi, grad_scale,
                     loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """Loss, gradient and Hessian of ``s_i * l(y_ij, z_ij)`` in one pass over the flat ``n * L`` elements.

    Targets must lie in ``[target_lo, target_hi]`` (NaN never does).  Blocks
    track their first bad element with integer min reductions in the main
    loop (they vectorise); a rescan under ``if`` would hit a Numba bug that
    drops reductions made in a loop nested in a conditional of a prange body.
    The three calls boosting and fitting make (gradient and Hessian; loss and
    gradient; loss), the loss summed or per element, each get their own
    constant-flag loop.
    """
    n_rows, n_cols = raw.shape
    n = n_rows * n_cols
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    uniform = True
    for j in range(1, n_cols):
        uniform = uniform and col_param[j] == col_param[0]
    flat = n_cols == 1 or (uniform and not has_sw)
    param = col_param[0]
    gh = want_grad and want_hess and not want_loss
    lg = want_loss and want_grad and not want_hess
    lonly = want_loss and not want_grad and not want_hess
    flat_y = targets.reshape(n)
    flat_z = raw.reshape(n)
    flat_loss = loss_out.reshape(loss_out.size)
    flat_grad = grad_out.reshape(grad_out.size)
    flat_hess = hess_out.reshape(hess_out.size)
    nb = n_blocks(n)
    partial = np.zeros(nb)
    kept = np.empty((nb, _CHUNK if want_loss else 0))
    bad_target = n
    bad_raw = n
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        yb = flat_y[lo:hi]
        zb = flat_z[lo:hi]
        lb = flat_loss[lo:hi] if store_loss else flat_loss
        gb = flat_grad[lo:hi] if want_grad else flat_grad
        hb = flat_hess[lo:hi] if want_hess else flat_hess
        sb = sample_weight[lo:hi] if has_sw and n_cols == 1 else sample_weight
        kb = kept[b]
        if flat and gh:
            acc, first_target, first_raw = _flat_block(element, yb, zb, sb, has_sw, param, extra, target_lo,
                                                       target_hi, grad_scale, lb, gb, hb, kb, store_loss,
                                                       False, True, True)
        elif flat and lg:
            acc, first_target, first_raw = _flat_block(element, yb, zb, sb, has_sw, param, extra, target_lo,
                                                       target_hi, grad_scale, lb, gb, hb, kb, store_loss,
                                                       True, True, False)
        elif flat and lonly:
            acc, first_target, first_raw = _flat_block(element, yb, zb, sb, has_sw, param, extra, target_lo,
                                                       target_hi, grad_scale, lb, gb, hb, kb, store_loss,
                                                       True, False, False)
        else:
            acc, first_target, first_raw = _row_block(element, yb, zb, lo, n_cols, sample_weight, col_param, extra,
                                                      target_lo, target_hi, grad_scale, lb, gb, hb, store_loss,
                                                      want_loss, want_grad, want_hess)
        partial[b] = acc
        count = zb.shape[0]
        if first_target < count:
            bad_target = min(bad_target, (lo + first_target) // n_cols)
        if first_raw < count:
            bad_raw = min(bad_raw, (lo + first_raw) // n_cols)
    return ordered_sum(partial), min(bad_target, n_rows), min(bad_raw, n_rows)


def _kernel(targets, raw, sample_weight, col_param, extra, target_lo, target_hi, grad_scale,
            loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """The body of every element-wise kernel; each loss's copy binds ``ELEMENT`` to its formula."""
    return elementwise_pass(ELEMENT, targets, raw, sample_weight, col_param, extra, target_lo, target_hi,  # noqa: F821
                            grad_scale, loss_out, grad_out, hess_out, want_loss, want_grad, want_hess)


def _kernel_for(name, element):
    return parallel_kernel(renamed_copy(_kernel, name, {"ELEMENT": element}))


bce = _kernel_for("bce", bce_element)
binary_focal = _kernel_for("binary_focal", binary_focal_element)
binary_focal_int = _kernel_for("binary_focal_int", binary_focal_int_element)  # gamma in SMALL_INT_EXPONENTS
huber = _kernel_for("huber", huber_element)
pseudo_huber = _kernel_for("pseudo_huber", pseudo_huber_element)
squared_error = _kernel_for("squared_error", squared_error_element)
