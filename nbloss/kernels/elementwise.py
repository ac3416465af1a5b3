"""One row-parallel driver for every element-wise loss.

The per-element formulas live with their family (:mod:`.sigmoid`,
:mod:`.regression`); ``kind`` picks one at run time, so one compiled kernel
per dtype serves all five losses and compiles in seconds.  Shapes:
``targets`` and ``raw`` (n, L); ``col_param`` (L,) float64 (``pos_weight``
per column, else the loss's first parameter repeated);
``loss_out``/``grad_out``/``hess_out`` (n, L) or (0, L).  The loop runs over
the flat ``n * L`` elements in sliced blocks.

Known limit (measured, left for the kernel-speed work): LLVM does not
vectorise this loop, because the ``kind`` switch holds libm calls and
loop-invariant flags it does not unswitch.  Giving each loss its own kernel
with a compile-time formula vectorises it (BCE gradient_hessian 3x faster)
but, with Numba's inlining, multiplies cold compile time (20 s+ per kernel
and dtype); that trade-off is open.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numerics import block_bounds, n_blocks, ordered_sum, weighted
from .regression import huber_element, pseudo_huber_element, squared_error_element
from .sigmoid import bce_element, binary_focal_element

BCE = 0
BINARY_FOCAL = 1
HUBER = 2
PSEUDO_HUBER = 3
SQUARED_ERROR = 4


@njit(inline="always", cache=True)
def _element(kind, y, z, param, extra, want_loss):
    if kind == BCE:
        return bce_element(y, z, param, want_loss)
    if kind == BINARY_FOCAL:
        return binary_focal_element(y, z, param, extra, want_loss)
    if kind == HUBER:
        return huber_element(y, z, param)
    if kind == PSEUDO_HUBER:
        return pseudo_huber_element(y, z, param)
    return squared_error_element(y, z, param)


@njit(parallel=True, cache=True)
def elementwise(kind, targets, raw, sample_weight, col_param, extra, target_lo, target_hi, grad_scale,
                loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """Loss, gradient and Hessian of ``s_i * l(y_ij, z_ij)`` in one pass.

    ``want_loss`` asks for the loss sum (``loss_out`` with rows stores each
    element's loss too).  Targets must lie in ``[target_lo, target_hi]`` (NaN
    never does).  Returns ``(loss_sum, first_bad_target_row, first_bad_raw_row)``.

    Each block tracks its first bad element with integer min reductions in the
    main loop; a rescan under ``if`` would hit a Numba bug that silently drops
    reductions made in a loop nested in a conditional of a prange body.
    """
    n_rows, n_cols = raw.shape
    n = n_rows * n_cols
    single = n_cols == 1
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    flat_y = targets.reshape(n)
    flat_z = raw.reshape(n)
    flat_loss = loss_out.reshape(loss_out.size)
    flat_grad = grad_out.reshape(grad_out.size)
    flat_hess = hess_out.reshape(hess_out.size)
    nb = n_blocks(n)
    partial = np.zeros(nb)
    bad_target = n
    bad_raw = n
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        yb = flat_y[lo:hi]
        zb = flat_z[lo:hi]
        lb = flat_loss[lo:hi] if store_loss else flat_loss
        gb = flat_grad[lo:hi] if want_grad else flat_grad
        hb = flat_hess[lo:hi] if want_hess else flat_hess
        count = zb.shape[0]
        acc = 0.0
        first_target = count
        first_raw = count
        for e in range(count):
            row = lo + e if single else (lo + e) // n_cols
            s = float(sample_weight[row]) if has_sw else 1.0
            y = yb[e]
            z = zb[e]
            loss, grad, hess = _element(kind, y, z, col_param[lo + e - row * n_cols], extra, want_loss)
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
        partial[b] = acc
        if first_target < count:
            bad_target = min(bad_target, (lo + first_target) // n_cols)
        if first_raw < count:
            bad_raw = min(bad_raw, (lo + first_raw) // n_cols)
    return ordered_sum(partial), min(bad_target, n_rows), min(bad_raw, n_rows)
