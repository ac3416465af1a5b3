"""One row-parallel driver for every element-wise loss.

The per-element formulas live with their family (:mod:`.sigmoid`,
:mod:`.regression`); ``kind`` picks one.  It is loop-invariant, so the branch
costs nothing measurable and one compiled kernel per dtype serves all five
losses.  Shapes: ``targets`` and ``raw`` (n, L); ``col_param`` (L,) float64
(``pos_weight`` per column, else the loss's first parameter repeated);
``loss_out``/``grad_out``/``hess_out`` (n, L) or (0, L).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numerics import block_start, n_blocks, ordered_sum, weighted
from .regression import huber_element, pseudo_huber_element, squared_error_element
from .sigmoid import bce_element, binary_focal_element

BCE = 0
BINARY_FOCAL = 1
HUBER = 2
PSEUDO_HUBER = 3
SQUARED_ERROR = 4


@njit(inline="always", cache=True)
def _element(kind, y, z, col_param, extra):
    if kind == BCE:
        return bce_element(y, z, col_param)
    if kind == BINARY_FOCAL:
        return binary_focal_element(y, z, col_param, extra)
    if kind == HUBER:
        return huber_element(y, z, col_param)
    if kind == PSEUDO_HUBER:
        return pseudo_huber_element(y, z, col_param)
    return squared_error_element(y, z, col_param)


@njit(parallel=True, cache=True)
def elementwise(kind, targets, raw, sample_weight, col_param, extra, grad_scale,
                loss_out, grad_out, hess_out, want_grad, want_hess):
    """Loss, gradient and Hessian of ``s_i * l(y_ij, z_ij)`` in one pass.

    Returns ``(loss_sum, first_bad_target_row, first_bad_raw_row)``.
    """
    n, n_cols = raw.shape
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    nb = n_blocks(n)
    partial = np.zeros(nb)
    bad_target = n
    bad_raw = n
    for b in prange(nb):
        acc = 0.0
        for i in range(block_start(b, n, nb), block_start(b + 1, n, nb)):
            s = float(sample_weight[i]) if has_sw else 1.0
            g_scale = grad_scale * s
            row_loss = 0.0
            for j in range(n_cols):
                z = raw[i, j]
                loss, grad, hess, target_ok = _element(kind, targets[i, j], z, col_param[j], extra)
                if not target_ok:
                    bad_target = min(bad_target, i)
                if z != z:
                    bad_raw = min(bad_raw, i)
                weighted_loss = weighted(s, loss)
                row_loss += weighted_loss
                if store_loss:
                    loss_out[i, j] = weighted_loss
                if want_grad:
                    grad_out[i, j] = weighted(g_scale, grad)
                if want_hess:
                    hess_out[i, j] = weighted(g_scale, hess)
            acc += row_loss
        partial[b] = acc
    return ordered_sum(partial), bad_target, bad_raw
