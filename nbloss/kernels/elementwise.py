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
first parameter repeated; every kernel but ``bce_per_column`` reads
``col_param[0]`` alone); ``extra`` a second scalar parameter;
``loss_out``/``grad_out``/``hess_out`` (n, L) or (0, L) when not wanted;
flags ``want_loss``, ``want_grad``, ``want_hess``.  Returns ``(loss_sum,
first_bad_target_row, first_bad_raw_row)``.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, prange

# see nbloss.kernels.softmax: Numba's get_num_threads is not cached, this intrinsic is
from numba.np.ufunc.parallel import _iget_num_threads

from .._numerics import (
    MIN_FLAT_BLOCK,
    as_float32,
    as_float64,
    block_bounds,
    first_row,
    n_blocks,
    ordered_sum,
    weighted,
    weighted_f32,
)
from . import inlined, inlined_by_numba, parallel_kernel, renamed_copy
from .regression import huber_element, pseudo_huber_element, squared_error_element
from .sigmoid import (
    bce_element,
    bce_element_f32,
    binary_focal_element,
    binary_focal_element_f32,
    binary_focal_half_element,
    binary_focal_half_element_f32,
    binary_focal_half_hard_element,
    binary_focal_half_hard_element_f32,
    binary_focal_hard_element,
    binary_focal_hard_element_f32,
    binary_focal_int_element,
    binary_focal_int_element_f32,
    binary_focal_int_hard_element,
    binary_focal_int_hard_element_f32,
)

# Elements are taken a chunk at a time: one loop applies the formula to the
# chunk's elements and stores their weighted losses, which are then added in
# element order.  Adding them in the computing loop would serialise it (an
# ordered float sum does not vectorise), and a reassociated sum would change
# the last bits between ``loss`` and ``loss_gradient`` and with the compiled
# code.  The calls with one weight per element (one column, or no sample
# weights) and one parameter run ``_flat_block``; every other call runs
# ``_element_block``, which first lays out each element's row weight and
# column parameter in scratch, a row's run of columns at a time, and then runs
# the same kind of vectorised loop.  It used to find each element's row and
# column by integer division in a scalar loop: BCE ``gradient_hessian`` at
# n = 1e6, 10 columns, took 74 ms with sample weights against 10 ms without
# (now 16), and ``gradient`` alone at n = 1e7 59 ms against
# ``gradient_hessian``'s 10 (now 11).
_CHUNK = 64
# offsets in the per-thread scratch (one array indexed at fixed offsets)
_KEPT, _WEIGHTS, _PARAMS = 0, _CHUNK, 2 * _CHUNK


@inlined_by_numba
def _lay_out_chunk(row, col, count, n_cols, sample_weight, col_param, fill_weights, fill_params, scratch):
    """The row weights (``fill_weights``) and column parameters (``fill_params``) of ``count`` elements
    from ``(row, col)`` on, into ``scratch``, a row's run of columns at a time.  Returns the
    ``(row, col)`` after them."""
    i = 0
    while i < count:
        run = min(n_cols - col, count - i)
        if fill_weights:
            s = np.float64(sample_weight[row])
            for j in range(run):
                scratch[_WEIGHTS + i + j] = s
        if fill_params:
            for j in range(run):
                scratch[_PARAMS + i + j] = col_param[col + j]
        i += run
        col += run
        if col == n_cols:
            col = 0
            row += 1
    return row, col


@inlined
def _target_ok(y, target_lo, target_hi):
    """Whether the target lies in ``[target_lo, target_hi]`` (NaN does not): the one rule that both the
    count and the rescan apply, so that a chunk counted as bad always names its row."""
    return (y >= target_lo) & (y <= target_hi)


@inlined
def _is_bad(y, z, target_lo, target_hi):
    """Whether the target is out of range or the raw value is NaN.

    The computing loops OR these flags together.  Counting them instead (an int64 sum) made LLVM
    vectorise a float32 loop four lanes wide, as wide as the int64 count, not eight: binary
    cross-entropy's float32 kernel took 1.07 ms against 0.56 at n = 1e6 (a prototype).
    """
    return not (_target_ok(y, target_lo, target_hi) & (z == z))


@inlined_by_numba
def _first_bad_in_chunk(yb, zb, c_lo, c_count, target_lo, target_hi, first_target, first_raw):
    """``(first_target, first_raw)`` lowered to the chunk's first bad target and NaN raw value, if
    earlier (element offsets in the block).

    The computing loops only flag bad elements, which vectorises as an OR.  Tracking
    each first offset there instead (a select of the index and a min, twice) was most of the
    checks' cost: HuberLoss ``gradient_hessian`` at n = 1e5, one thread, took 96 us that way,
    77 this way and 58 with no check at all.  This scalar rescan runs only for a chunk that
    holds bad input.
    """
    for i in range(c_count):
        e = c_lo + i
        y = yb[e]
        z = zb[e]
        if not _target_ok(y, target_lo, target_hi):
            first_target = min(first_target, e)
        if z != z:
            first_raw = min(first_raw, e)
    return first_target, first_raw


@inlined_by_numba
def _all_hard(yb, c_lo, c_count):
    """Whether the chunk's ``c_count`` targets from ``c_lo`` on are all 0 or 1 (see :func:`_kernel_for`)."""
    hard = True
    for i in range(c_count):
        y = yb[c_lo + i]
        hard &= (y == 0.0) | (y == 1.0)
    return hard


@inlined_by_numba
def _flat_chunk(element, work, weigh, yb, zb, sb, has_sw, param, extra, target_lo, target_hi, grad_scale, gb, hb,
                kept, c_lo, c_count, want_loss, want_grad, want_hess):
    """The computing loop of :func:`_flat_block` over one chunk; returns whether it holds bad input."""
    any_bad = False
    for i in range(c_count):
        e = c_lo + i
        y = yb[e]
        z = zb[e]
        loss, grad, hess = element(y, z, param, extra, want_loss)
        any_bad |= _is_bad(y, z, target_lo, target_hi)
        s = work(sb[e]) if has_sw else work(1.0)
        if want_loss:
            kept[i] = weigh(s, loss)
        if want_grad:
            gb[e] = weigh(grad_scale * s, grad)
        if want_hess:
            hb[e] = weigh(grad_scale * s, hess)
    return any_bad


@inlined_by_numba
def _flat_block(element, hard_element, split_hard, work, weigh, yb, zb, sb, has_sw, param, extra, target_lo,
                target_hi, grad_scale, lb, gb, hb, kept, store_loss, want_loss, want_grad, want_hess):
    """One block of flat elements (one column, or unit weights and one parameter for all columns).

    Called with constant ``want_*`` flags, so each use compiles to a loop
    with no branch on them.  ``kept`` is this block's (``_CHUNK``,) scratch, in the working precision
    (a float32 loop storing float64 did not vectorise);
    per-element losses (``store_loss``) are copied from it a chunk at a time,
    outside the computing loop.  With ``split_hard`` (a constant), a chunk of 0/1 targets runs
    ``hard_element`` (see :func:`_kernel_for`).
    Returns ``(loss_sum, first_bad_target, first_bad_raw)`` as element
    offsets in the block (its length meaning none).
    """
    count = zb.shape[0]
    acc = 0.0
    first_target = count
    first_raw = count
    for c_lo in range(0, count, _CHUNK):
        c_count = min(_CHUNK, count - c_lo)
        if split_hard and _all_hard(yb, c_lo, c_count):
            any_bad = _flat_chunk(hard_element, work, weigh, yb, zb, sb, has_sw, param, extra, target_lo, target_hi,
                                  grad_scale, gb, hb, kept, c_lo, c_count, want_loss, want_grad, want_hess)
        else:
            any_bad = _flat_chunk(element, work, weigh, yb, zb, sb, has_sw, param, extra, target_lo, target_hi,
                                  grad_scale, gb, hb, kept, c_lo, c_count, want_loss, want_grad, want_hess)
        if any_bad:
            first_target, first_raw = _first_bad_in_chunk(yb, zb, c_lo, c_count, target_lo, target_hi, first_target,
                                                          first_raw)
        if want_loss:
            for i in range(c_count):
                acc += np.float64(kept[i])
            if store_loss:
                for i in range(c_count):
                    lb[c_lo + i] = kept[i]
    return acc, first_target, first_raw


@inlined_by_numba
def _element_block(element, work, weigh, per_column, yb, zb, lo, n_cols, sample_weight, col_param, extra, target_lo,
                   target_hi, grad_scale, lb, gb, hb, scratch, store_loss, want_loss, want_grad, want_hess):
    """One block of flat elements ``lo:lo + len(zb)`` in the general case, a chunk at a time (see
    ``_CHUNK``): any flags (read at run time), each element's row weight and column parameter.

    ``per_column`` (a constant) says the columns' parameters differ: each element's is then laid
    out and loaded, else ``col_param[0]`` is a constant of the loop for the formula to fold.
    ``scratch`` is this thread's (3 ``_CHUNK``,), in the working precision: kept losses, weights and
    parameters (a float32 kernel storing them in float64 scratch ran the loops that read them at four
    lanes or none).  Returns
    ``(loss_sum, first_bad_target, first_bad_raw)`` as element offsets in the block (its length
    meaning none).
    """
    count = zb.shape[0]
    has_sw = sample_weight.shape[0] > 0
    param = col_param[0]
    lay_out = n_cols > 1 and (has_sw or per_column)
    row = lo // n_cols
    col = lo - row * n_cols
    acc = 0.0
    first_target = count
    first_raw = count
    for c_lo in range(0, count, _CHUNK):
        c_count = min(_CHUNK, count - c_lo)
        any_bad = False
        if lay_out:
            row, col = _lay_out_chunk(row, col, c_count, n_cols, sample_weight, col_param, has_sw, per_column,
                                      scratch)
        elif has_sw:  # one column: a weight per element
            for i in range(c_count):
                scratch[_WEIGHTS + i] = np.float64(sample_weight[lo + c_lo + i])
        # the derivatives and the loss in loops of their own, each with the formula's want_loss a
        # constant: with it read at run time, the formula formed the loss's logarithm for every call
        if want_grad or want_hess or not want_loss:
            for i in range(c_count):
                e = c_lo + i
                y = yb[e]
                z = zb[e]
                s = work(scratch[_WEIGHTS + i]) if has_sw else work(1.0)
                _, grad, hess = element(y, z, scratch[_PARAMS + i] if per_column else param, extra, False)
                any_bad |= _is_bad(y, z, target_lo, target_hi)
                if want_grad:
                    gb[e] = weigh(grad_scale * s, grad)
                if want_hess:
                    hb[e] = weigh(grad_scale * s, hess)
        if want_loss:
            for i in range(c_count):
                e = c_lo + i
                y = yb[e]
                z = zb[e]
                loss = element(y, z, scratch[_PARAMS + i] if per_column else param, extra, True)[0]
                any_bad |= _is_bad(y, z, target_lo, target_hi)
                scratch[_KEPT + i] = weigh(work(scratch[_WEIGHTS + i]) if has_sw else work(1.0), loss)
            for i in range(c_count):
                acc += np.float64(scratch[_KEPT + i])
            if store_loss:
                for i in range(c_count):
                    lb[c_lo + i] = scratch[_KEPT + i]
        if any_bad:
            first_target, first_raw = _first_bad_in_chunk(yb, zb, c_lo, c_count, target_lo, target_hi, first_target,
                                                          first_raw)
    return acc, first_target, first_raw


@inlined_by_numba
def elementwise_pass(element, hard_element, split_hard, work, weigh, per_column, kept, scratch, targets, raw,
                     sample_weight, col_param, extra, target_lo, target_hi, grad_scale, loss_out, grad_out, hess_out,
                     want_loss, want_grad, want_hess):
    """Loss, gradient and Hessian of ``s_i * l(y_ij, z_ij)`` in one pass over the flat ``n * L`` elements.

    Targets must lie in ``[target_lo, target_hi]`` (NaN never does).  Blocks
    flag bad elements in their computing loops and rescan a chunk that has
    any (see :func:`_first_bad_in_chunk`); each block's first bad rows go to
    an array combined after the loop, as in the softmax kernels: a prange min
    reduction fed from the rescan trips Numba's reduction analysis
    ("unexpected cycle in lookup()").
    The three calls boosting and fitting make (gradient and Hessian; loss and
    gradient; loss), the loss summed or per element, each get their own
    constant-flag loop when no layout is needed; everything else, one copy
    of :func:`_element_block` that reads its flags at run time (one more copy
    per flag set cost compile time: with two, a kernel took 28 s to compile
    against 17).  ``split_hard`` (a constant) gives the first two a second loop, over
    ``hard_element``, for chunks of 0/1 targets (see :func:`_kernel_for`).
    ``work`` casts to the kernel's working precision and ``weigh`` is the :func:`weighted` of that
    precision; the scalar arguments are cast once, here, so that a float32 kernel's loops stay float32.
    ``kept`` is (``n_blocks(n, MIN_FLAT_BLOCK)``, ``_CHUNK``) scratch of that precision, (.., 0) without
    ``want_loss``, and ``scratch`` (threads, 3 ``_CHUNK``) too (see :func:`_element_block`).
    """
    work_lo, work_hi, work_scale = work(target_lo), work(target_hi), work(grad_scale)
    n_rows, n_cols = raw.shape
    n = n_rows * n_cols
    has_sw = sample_weight.shape[0] > 0
    store_loss = loss_out.shape[0] > 0
    flat = n_cols == 1 or not (has_sw or per_column)
    param = col_param[0]
    gh = want_grad and want_hess and not want_loss
    lg = want_loss and want_grad and not want_hess
    lonly = want_loss and not want_grad and not want_hess
    flat_y = targets.reshape(n)
    flat_z = raw.reshape(n)
    flat_loss = loss_out.reshape(loss_out.size)
    flat_grad = grad_out.reshape(grad_out.size)
    flat_hess = hess_out.reshape(hess_out.size)
    nb = n_blocks(n, MIN_FLAT_BLOCK)
    partial = np.empty(nb)
    first_bad = np.empty((nb, 2), dtype=np.int64)
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
            acc, first_target, first_raw = _flat_block(element, hard_element, split_hard, work, weigh, yb, zb, sb,
                                                       has_sw, param, extra, work_lo, work_hi, work_scale, lb, gb,
                                                       hb, kb, store_loss, False, True, True)
        elif flat and lg:
            acc, first_target, first_raw = _flat_block(element, hard_element, split_hard, work, weigh, yb, zb, sb,
                                                       has_sw, param, extra, work_lo, work_hi, work_scale, lb, gb,
                                                       hb, kb, store_loss, True, True, False)
        elif flat and lonly:  # no split: the loss alone gains less, and each loop costs compile time
            acc, first_target, first_raw = _flat_block(element, hard_element, False, work, weigh, yb, zb, sb,
                                                       has_sw, param, extra, work_lo, work_hi, work_scale, lb, gb,
                                                       hb, kb, store_loss, True, False, False)
        else:
            acc, first_target, first_raw = _element_block(element, work, weigh, per_column, yb, zb, lo, n_cols,
                                                          sample_weight, col_param, extra, work_lo, work_hi,
                                                          work_scale, lb, gb, hb, scratch[get_thread_id()],
                                                          store_loss, want_loss, want_grad, want_hess)
        partial[b] = acc
        count = zb.shape[0]
        first_bad[b, 0] = (lo + first_target) // n_cols if first_target < count else n_rows
        first_bad[b, 1] = (lo + first_raw) // n_cols if first_raw < count else n_rows
    return ordered_sum(partial), first_row(first_bad[:, 0], n_rows), first_row(first_bad[:, 1], n_rows)


def _kernel(targets, raw, sample_weight, col_param, extra, target_lo, target_hi, grad_scale,
            loss_out, grad_out, hess_out, want_loss, want_grad, want_hess):
    """The body of every element-wise kernel; each copy binds ``ELEMENT`` to its formula,
    ``HARD_ELEMENT``/``SPLIT_HARD`` to its formula for 0/1 targets and whether it has one, ``PER_COLUMN``
    to whether its columns' parameters may differ and ``WORK``/``WEIGH``/``WORK_DTYPE`` to its working
    precision."""
    kept = np.empty((n_blocks(raw.size, MIN_FLAT_BLOCK), _CHUNK if want_loss else 0), WORK_DTYPE)  # noqa: F821
    scratch = np.empty((_iget_num_threads(), 3 * _CHUNK), WORK_DTYPE)  # noqa: F821
    return elementwise_pass(ELEMENT, HARD_ELEMENT, SPLIT_HARD, WORK, WEIGH, PER_COLUMN, kept,  # noqa: F821
                            scratch, targets, raw, sample_weight, col_param, extra, target_lo, target_hi,
                            grad_scale, loss_out, grad_out, hess_out, want_loss, want_grad, want_hess)


def _kernel_for(name, element, hard_element=None, per_column=False, single=False):
    """The kernel ``name`` over ``element``; ``single``: float32 inputs, computed in float32.

    ``hard_element``: the same formula for a target known to be 0 or 1, which a chunk of such targets
    runs instead (binary focal loss's skips a division, and at a general gamma :func:`pow_unit`'s
    logarithm).  ``element`` must give a 0/1 target the same bits as ``hard_element``, so that a
    result does not depend on its neighbours' targets (tests/test_api.py checks it).  Only the
    gradient-and-Hessian and loss-and-gradient loops (boosting's call and fitting's) are split: each
    loop is compile time, and with all five split the binary focal kernels of one dtype took 127 s to
    compile cold against 74 unsplit.  Without ``hard_element`` the chunks' check and second loop are not
    compiled at all (``SPLIT_HARD`` is a constant that Numba's branch pruning removes).
    """
    bindings = {"ELEMENT": element, "HARD_ELEMENT": element if hard_element is None else hard_element,
                "SPLIT_HARD": hard_element is not None, "PER_COLUMN": per_column,
                "WORK": as_float32 if single else as_float64, "WEIGH": weighted_f32 if single else weighted,
                "WORK_DTYPE": np.float32 if single else np.float64}
    return parallel_kernel(renamed_copy(_kernel, name, bindings))


bce = _kernel_for("bce", bce_element)
# a pos_weight per column that is not one value: each element's loaded in the loop
bce_per_column = _kernel_for("bce_per_column", bce_element, per_column=True)
# float32 binary cross-entropy in float32 arithmetic, within a few float32 ulps rather than rounded once
# from float64 (tests/test_accuracy.py): ``gradient_hessian`` at n = 1e6 took 0.88-0.90 ms, against 2.21 in
# float64 arithmetic and 1.78-1.79 for float64 inputs (two threads, alternating with the old package)
bce_f32 = _kernel_for("bce_f32", bce_element_f32, single=True)
bce_per_column_f32 = _kernel_for("bce_per_column_f32", bce_element_f32, per_column=True, single=True)
binary_focal = _kernel_for("binary_focal", binary_focal_element, binary_focal_hard_element)
# gamma in SMALL_INT_EXPONENTS and in HALF_INT_EXPONENTS
binary_focal_int = _kernel_for("binary_focal_int", binary_focal_int_element, binary_focal_int_hard_element)
binary_focal_half = _kernel_for("binary_focal_half", binary_focal_half_element, binary_focal_half_hard_element)
# float32 binary focal loss in float32 arithmetic, as BCE's: ``gradient_hessian`` at n = 1e6, gamma 2, took
# 1.97 ms against 4.23 for float64 inputs, gamma 1.5 (by pow_unit then) 3.85 against 8.73 (two threads,
# alternating)
binary_focal_f32 = _kernel_for("binary_focal_f32", binary_focal_element_f32, binary_focal_hard_element_f32,
                               single=True)
binary_focal_int_f32 = _kernel_for("binary_focal_int_f32", binary_focal_int_element_f32,
                                   binary_focal_int_hard_element_f32, single=True)
binary_focal_half_f32 = _kernel_for("binary_focal_half_f32", binary_focal_half_element_f32,
                                    binary_focal_half_hard_element_f32, single=True)
huber = _kernel_for("huber", huber_element)
pseudo_huber = _kernel_for("pseudo_huber", pseudo_huber_element)
squared_error = _kernel_for("squared_error", squared_error_element)
