"""The contract's conventions: dtypes, copies, buffers, limits at +-inf,
init_raw_prediction, predict_proba, threads, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

import nbloss
from nbloss import _validation
from nbloss._numerics import HALF_INT_EXPONENTS, SMALL_INT_EXPONENTS
from nbloss.kernels import elementwise as ew
from nbloss.kernels import softmax as sm

ALL_LOSSES = [
    nbloss.CrossEntropy(), nbloss.CrossEntropy(class_weight=[1.0, 2.0, 0.5], label_smoothing=0.1, ignore_index=1),
    nbloss.FocalLoss(gamma=1.7, alpha=[0.2, 0.3, 0.5]), nbloss.BinaryCrossEntropy(pos_weight=2.0),
    nbloss.BinaryFocalLoss(gamma=2.0, alpha=None), nbloss.HuberLoss(delta=0.7), nbloss.PseudoHuberLoss(2.0),
    nbloss.SquaredError(),
]


def _problem(loss, n=50, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    if isinstance(loss, (nbloss.CrossEntropy, nbloss.FocalLoss)):
        return rng.integers(0, 3, size=n), rng.normal(scale=3, size=(n, 3)).astype(dtype)
    raw = rng.normal(scale=3, size=(n, 2)).astype(dtype)
    if isinstance(loss, (nbloss.BinaryCrossEntropy, nbloss.BinaryFocalLoss)):
        return (rng.uniform(size=raw.shape) < 0.4).astype(float), raw
    return rng.normal(size=raw.shape), raw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_outputs_keep_the_dtype_and_shape(loss, dtype):
    y, raw = _problem(loss, dtype=dtype)
    g, h = loss.gradient_hessian(y, raw)
    assert g.dtype == h.dtype == dtype and g.shape == h.shape == raw.shape
    assert isinstance(loss.loss(y, raw), dtype)
    assert loss.loss(y, raw, reduction="none").dtype == dtype


def test_c_contiguous_input_is_not_copied():
    raw = np.zeros((10, 3), np.float32)
    assert np.shares_memory(_validation.as_raw(raw, two_d_only=True)[0], raw)
    vec = np.zeros(10)
    assert np.shares_memory(_validation.as_raw(vec, two_d_only=False)[0], vec)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_non_contiguous_and_read_only_inputs_are_accepted_and_untouched(loss):
    y, raw = _problem(loss, n=40)
    expected = loss.gradient_hessian(y, raw)
    big = np.zeros((raw.shape[0] * 2,) + raw.shape[1:][::-1] * 0 + raw.shape[1:])
    big[::2] = raw
    strided = big[::2]
    fortran = np.asfortranarray(raw)
    readonly = raw.copy()
    readonly.flags.writeable = False
    for variant in (strided, fortran, readonly):
        before = variant.copy()
        got = loss.gradient_hessian(y, variant)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(variant, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_inputs_in_either_byte_order_or_unpickled_give_the_same_results(loss, dtype):
    """The validation's fast path takes NumPy's native dtype objects by identity; arrays whose dtype is
    equal but another object (unpickled) or in the other byte order must take the general path."""
    y, raw = _problem(loss, n=40, dtype=dtype)
    w = np.linspace(0.5, 2.0, raw.shape[0])
    swapped = [a.astype(a.dtype.newbyteorder()) for a in (y, raw, w)]
    unpickled = [pickle.loads(pickle.dumps(a)) for a in (y, raw, w)]
    assert unpickled[1].dtype is not raw.dtype
    for y_v, raw_v, w_v in (swapped, unpickled):
        for weights, weights_v in ((w, w_v), (None, None)):
            got = loss.gradient_hessian(y_v, raw_v, weights_v)
            for g, e in zip(got, loss.gradient_hessian(y, raw, weights)):
                assert g.dtype == dtype and g.dtype.isnative
                np.testing.assert_array_equal(g, e)
            assert loss.loss(y_v, raw_v, weights_v) == loss.loss(y, raw, weights)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_out_buffers_are_filled_and_returned(loss):
    y, raw = _problem(loss)
    g_buf, h_buf = np.full(raw.shape, np.nan), np.full(raw.shape, np.nan)
    g, h = loss.gradient_hessian(y, raw, gradient_out=g_buf, hessian_out=h_buf)
    assert g is g_buf and h is h_buf
    np.testing.assert_array_equal(g, loss.gradient(y, raw))
    value, g2 = loss.loss_gradient(y, raw, reduction="sum", gradient_out=np.empty_like(raw))
    np.testing.assert_array_equal(g2, g)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_results_are_bitwise_identical_for_any_thread_count(loss):
    y, raw = _problem(loss, n=20_000)
    before = nbloss.get_num_threads()
    try:
        results = []
        for threads in (1, before):
            nbloss.set_num_threads(threads)
            assert nbloss.get_num_threads() == threads
            results.append((loss.loss(y, raw), *loss.gradient_hessian(y, raw)))
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)
    finally:
        nbloss.set_num_threads(before)


def test_kernels_run_with_nbloss_thread_count_in_every_thread():
    """``launch`` gives each kernel nbloss's count, whatever the calling thread's own Numba count."""
    import threading

    import numba

    from nbloss._threading import launch

    @numba.njit(parallel=True)
    def threads_seen(x):
        for i in numba.prange(x.shape[0]):
            x[i] = numba.get_num_threads()
        return numba.get_num_threads()

    before = nbloss.get_num_threads()
    seen = []
    try:
        for threads in sorted({1, before}):
            nbloss.set_num_threads(threads)
            numba.set_num_threads(before)  # the calling thread's own count, which launch must override
            seen.append((threads, launch(threads_seen, np.zeros(4))))
            worker = threading.Thread(target=lambda t=threads: seen.append((t, launch(threads_seen, np.zeros(4)))))
            worker.start()
            worker.join()
    finally:
        nbloss.set_num_threads(before)
    assert seen and all(wanted == got for wanted, got in seen), seen


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="n must be in"):
        nbloss.set_num_threads(0)
    with pytest.raises(TypeError):
        nbloss.set_num_threads(1.5)
    assert nbloss.threading_layer() in ("tbb", "workqueue")


def test_cross_entropy_matches_plain_numpy_formula():
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(30, 4))
    y = rng.integers(0, 4, size=30)
    sw = rng.uniform(size=30)
    logp = log_softmax(raw, axis=1)
    expected = -(sw * logp[np.arange(30), y]).sum() / sw.sum()
    np.testing.assert_allclose(nbloss.CrossEntropy().loss(y, raw, sw), expected, rtol=1e-13)
    p = softmax(raw, axis=1)
    np.testing.assert_allclose(nbloss.CrossEntropy().gradient(y, raw, sw),
                               sw[:, None] * (p - np.eye(4)[y]), rtol=1e-12, atol=1e-16)


def test_infinite_logits_take_their_limits():
    ce = nbloss.CrossEntropy()
    raw = np.array([[np.inf, 0.0, -np.inf], [np.inf, np.inf, 0.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0]])
    y = np.array([0, 1, 2, 1])
    losses = ce.loss(y, raw, reduction="none")
    np.testing.assert_allclose(losses, [0.0, np.log(2), np.log(3), np.inf])
    g, h = ce.gradient_hessian(y, raw)
    assert np.isfinite(g).all() and np.isfinite(h).all()
    np.testing.assert_allclose(g[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(g[1], [0.5, -0.5, 0.0])
    np.testing.assert_allclose(g[3], [1.0, -1.0, 0.0])
    # label smoothing puts mass on a -inf logit: an infinite loss, finite derivatives
    smooth = nbloss.CrossEntropy(label_smoothing=0.1)
    assert smooth.loss(y[:1], raw[:1], reduction="sum") == np.inf
    assert np.isfinite(smooth.gradient_hessian(y[:1], raw[:1])[0]).all()
    bce = nbloss.BinaryCrossEntropy()
    z = np.array([np.inf, -np.inf, np.inf, -np.inf])
    t = np.array([1.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(bce.loss(t, z, reduction="none"), [0.0, 0.0, np.inf, np.inf])
    np.testing.assert_array_equal(bce.gradient(t, z), [0.0, 0.0, 1.0, -0.5])
    np.testing.assert_array_equal(nbloss.HuberLoss(2.0).gradient(np.zeros(2), np.array([np.inf, -np.inf])), [2.0, -2.0])
    for loss in (nbloss.FocalLoss(), nbloss.BinaryFocalLoss(), nbloss.PseudoHuberLoss()):
        yy, rr = (y, raw) if isinstance(loss, nbloss.FocalLoss) else (t if loss.__class__ is not nbloss.PseudoHuberLoss
                                                                     else np.zeros(4), z)
        g, h = loss.gradient_hessian(yy, rr)
        assert np.isfinite(g).all() and np.isfinite(h).all()


def test_zero_weight_rows_with_infinite_loss_contribute_zero():
    y = np.array([0, 1])
    raw = np.array([[-np.inf, 0.0], [0.0, 1.0]])
    value = nbloss.CrossEntropy().loss(y, raw, sample_weight=np.array([0.0, 1.0]), reduction="sum")
    assert np.isfinite(value)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
@pytest.mark.parametrize("weighted", [False, True])
def test_init_raw_prediction_minimises_the_loss(loss, weighted):
    y, raw = _problem(loss, n=400, seed=5)
    if isinstance(loss, (nbloss.HuberLoss, nbloss.SquaredError)):
        y = y + np.random.default_rng(1).standard_cauchy(size=y.shape)  # outliers: mean != median
    sw = np.random.default_rng(2).uniform(0.1, 2.0, size=y.shape[0]) if weighted else None
    init = loss.init_raw_prediction(y, sw)
    assert np.shape(init) == raw.shape[1:]
    const = np.broadcast_to(init, raw.shape)
    grad = loss.gradient(y, const, sw).sum(axis=0) / (y.shape[0])
    # to rounding: L-BFGS alone left PseudoHuberLoss's with these outliers at 2e-7 (its loss value's rounding)
    np.testing.assert_allclose(grad, 0.0, atol=1e-11)
    base = float(loss.loss(y, const, sw))
    for direction in np.eye(raw.shape[1]):
        for step in (-1e-3, 1e-3):
            assert float(loss.loss(y, const + step * direction, sw)) >= base - 1e-12


@pytest.mark.parametrize("k", [100, 128])
def test_softmax_focal_init_is_polished_to_rounding(k):
    """FocalLoss's constant is polished by Newton steps up to K = 128 classes: L-BFGS alone stopped with a
    mean gradient of 4e-10 (K = 3, gamma 1.7, weighted) where the loss value's rounding hid the rest."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, k, 20_000)
    y[y == 1] = 0  # a class with no rows: its logit stays far below the others, not pushed off by a step
    sw = rng.uniform(0.1, 2.0, y.shape[0])
    loss = nbloss.FocalLoss(gamma=1.7)
    init = loss.init_raw_prediction(y, sw)
    grad = loss.gradient(y, np.broadcast_to(init, (y.shape[0], k)), sw).sum(axis=0) / y.shape[0]
    np.testing.assert_allclose(grad, 0.0, atol=1e-14)
    assert abs(init.mean()) < 1e-12
    assert -60.0 < init[1] < init[[0, 2]].min() - 20.0


def test_init_raw_prediction_shapes_and_closed_forms():
    y = np.array([0, 0, 1, 2, 2, 2])
    init = nbloss.CrossEntropy().init_raw_prediction(y)
    np.testing.assert_allclose(softmax(init), [2 / 6, 1 / 6, 3 / 6], rtol=1e-14)
    assert abs(init.mean()) < 1e-15
    b = nbloss.BinaryCrossEntropy().init_raw_prediction(np.array([1.0, 0.0, 0.0, 0.0]))
    assert np.ndim(b) == 0 and np.isclose(expit(b), 0.25)
    assert np.ndim(nbloss.HuberLoss().init_raw_prediction(np.arange(5.0))) == 0
    assert nbloss.SquaredError().init_raw_prediction(np.ones((4, 3))).shape == (3,)
    soft = nbloss.CrossEntropy().init_raw_prediction(np.array([[0.2, 0.8], [0.6, 0.4]]))
    np.testing.assert_allclose(softmax(soft), [0.4, 0.6], rtol=1e-14)


def test_predict_proba_is_stable():
    raw = np.array([[1e4, -1e4, 0.0], [1.0, 2.0, 3.0], [-1e4, -1e4, -1e4]])
    p = nbloss.CrossEntropy().predict_proba(raw)
    np.testing.assert_allclose(p, softmax(raw, axis=1), rtol=1e-15, atol=1e-300)
    p32 = nbloss.FocalLoss().predict_proba(raw.astype(np.float32))
    assert p32.dtype == np.float32
    z = np.array([-800.0, -30.0, 0.0, 30.0, 800.0, np.inf])
    np.testing.assert_allclose(nbloss.BinaryCrossEntropy().predict_proba(z), expit(z), rtol=1e-15)
    assert nbloss.BinaryFocalLoss().predict_proba(np.zeros((3, 2))).shape == (3, 2)
    with pytest.raises(ValueError, match="row 1"):
        nbloss.BinaryCrossEntropy().predict_proba(np.array([0.0, np.nan]))


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_losses_pickle_compare_and_repr(loss):
    clone = pickle.loads(pickle.dumps(loss))
    assert clone == loss and repr(clone) == repr(loss)
    y, raw = _problem(loss)
    np.testing.assert_array_equal(clone.gradient(y, raw), loss.gradient(y, raw))


def test_balanced_class_weight_is_sklearn_rule():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 0, 1, 2, 2])
    raw = np.random.default_rng(0).normal(size=(6, 3))
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    explicit = nbloss.CrossEntropy(class_weight=expected)
    np.testing.assert_array_equal(nbloss.CrossEntropy(class_weight="balanced").gradient(y, raw),
                                  explicit.gradient(y, raw))


ELEMENTWISE_LOSSES = [loss for loss in ALL_LOSSES if not isinstance(loss, (nbloss.CrossEntropy, nbloss.FocalLoss))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES, ids=repr)
def test_elementwise_fast_loops_match_the_general_loop(loss, dtype):
    """Element-wise kernels run three calls (gradient and Hessian; loss and gradient; loss, summed or per
    element) in their own vectorised loops over flat elements, and everything else (row weights with several
    outputs) in a general loop.  Unit row weights on (n, 2) targets take the general loop: every result must
    be the same bits as the fast loops', and the loss sum the same as the sum of the per-element losses."""
    y, raw = _problem(loss, n=12_001, dtype=dtype)  # blocks of uneven length, chunks with a remainder
    rtol = 1e-12 if dtype == np.float64 else 1e-6  # sums are returned in the input's dtype
    ones = np.ones(raw.shape[0])
    for args in ((y, raw), (y[:, 0], raw[:, 0])):  # one output (fast loops also with weights) and two
        fast_g, fast_h = loss.gradient_hessian(*args)
        slow_g, slow_h = loss.gradient_hessian(*args, sample_weight=ones)
        np.testing.assert_array_equal(fast_g, slow_g)
        np.testing.assert_array_equal(fast_h, slow_h)
        fast_value, fast_lg = loss.loss_gradient(*args, reduction="sum")
        slow_value, slow_lg = loss.loss_gradient(*args, sample_weight=ones, reduction="sum")
        np.testing.assert_array_equal(fast_lg, fast_g)
        np.testing.assert_array_equal(slow_lg, fast_g)
        assert fast_value == loss.loss(*args, reduction="sum")
        fast_none, fast_none_g = loss.loss_gradient(*args, reduction="none")
        slow_none, slow_none_g = loss.loss_gradient(*args, sample_weight=ones, reduction="none")
        np.testing.assert_array_equal(fast_none, slow_none)
        np.testing.assert_array_equal(fast_none_g, fast_g)
        np.testing.assert_array_equal(slow_none_g, fast_g)
        np.testing.assert_array_equal(loss.loss(*args, reduction="none"), slow_none)
        np.testing.assert_allclose(fast_value, slow_value, rtol=rtol)
        np.testing.assert_allclose(fast_value, loss.loss(*args, reduction="none").sum(dtype=np.float64), rtol=rtol)
    with pytest.raises(ValueError, match="raw_prediction"):
        bad = raw.copy()
        bad[11_999, 1] = np.nan
        loss.gradient_hessian(y, bad)


def test_bce_per_output_pos_weight_takes_each_outputs_weight():
    rng = np.random.default_rng(3)
    y, raw = (rng.uniform(size=(200, 3)) < 0.4).astype(float), rng.normal(size=(200, 3))
    vector = nbloss.BinaryCrossEntropy(pos_weight=[0.5, 1.0, 3.0])
    g, h = vector.gradient_hessian(y, raw)
    for j, pw in enumerate([0.5, 1.0, 3.0]):
        g_j, h_j = nbloss.BinaryCrossEntropy(pos_weight=pw).gradient_hessian(y[:, j], raw[:, j])
        np.testing.assert_array_equal(g[:, j], g_j)
        np.testing.assert_array_equal(h[:, j], h_j)


@pytest.mark.parametrize("pos_weight", [None, 2.0, [0.5, 1.0, 3.0], [2.0, 2.0, 2.0]], ids=repr)
def test_bce_float32_runs_the_float32_kernels(pos_weight):
    """float32 BinaryCrossEntropy runs the kernels that compute in float32 (eight lanes on AVX2), float64
    the float64 ones; a per-output pos_weight that is one value runs the one-parameter kernel."""
    loss = nbloss.BinaryCrossEntropy(pos_weight=pos_weight)
    per_column = isinstance(pos_weight, list) and len(set(pos_weight)) > 1
    for dtype, suffix in ((np.float32, "_f32"), (np.float64, "")):
        col_param = loss._column_params(3)[0]
        expected = getattr(ew, ("bce_per_column" if per_column else "bce") + suffix)
        assert loss._kernel_for(col_param, np.dtype(dtype)) is expected
        y, raw = np.zeros((4, 3), dtype), np.ones((4, 3), dtype)
        g, h = loss.gradient_hessian(y, raw)
        assert g.dtype == h.dtype == dtype
        assert any(str(sig[1].dtype) == np.dtype(dtype).name for sig in expected.signatures)


_ELEMENTWISE_LAYOUTS = [
    (lambda pw: nbloss.BinaryCrossEntropy(pos_weight=pw), True),
    (lambda pw: nbloss.BinaryFocalLoss(gamma=1.7, alpha=0.3), True),
    (lambda pw: nbloss.BinaryFocalLoss(gamma=2.0), True),
    (lambda pw: nbloss.HuberLoss(delta=0.7), False),
    (lambda pw: nbloss.PseudoHuberLoss(), False),
    (lambda pw: nbloss.SquaredError(), False),
]


@pytest.mark.parametrize("case", range(len(_ELEMENTWISE_LAYOUTS)))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elementwise_columns_match_their_one_column_calls(case, dtype):
    """A multi-output call with sample weights (and for BCE a ``pos_weight`` per column) lays out
    each element's row weight and column parameter a chunk at a time; with 7 columns and blocks of
    ~4,378 elements, blocks and chunks start mid-row.  Every column must match the one-column call
    with that column's parameter (the unweighted loop that reads weights directly) bit for bit, for
    every call: ``gradient`` and ``hessian`` (a loop reading its flags at run time), the
    per-element loss, and the summed loss to rounding."""
    make, binary = _ELEMENTWISE_LAYOUTS[case]
    rng = np.random.default_rng(11)
    n, n_cols = 5_003, 7
    raw = rng.normal(scale=4.0, size=(n, n_cols)).astype(dtype)
    raw[0, 3], raw[1, 0] = np.inf, -1e4
    y = ((rng.uniform(size=raw.shape) < 0.4) if binary else rng.normal(size=raw.shape)).astype(dtype)
    if binary:
        y[::13] = rng.uniform(size=y[::13].shape)  # soft targets
    sw = rng.uniform(0.0, 3.0, n).astype(dtype)
    sw[::17] = 0.0
    pw = np.linspace(0.5, 3.0, n_cols)
    loss = make(pw)
    per_element, g, h = _assert_calls_agree(loss, y, raw, sw)
    for j in range(n_cols):
        one = make(pw[j])
        g_j, h_j = one.gradient_hessian(y[:, j], raw[:, j], sample_weight=sw)
        np.testing.assert_array_equal(g[:, j], g_j)
        np.testing.assert_array_equal(h[:, j], h_j)
        np.testing.assert_array_equal(per_element[:, j],
                                      one.loss(y[:, j], raw[:, j], sample_weight=sw, reduction="none"))
        np.testing.assert_array_equal(one.gradient(y[:, j], raw[:, j], sample_weight=sw), g_j)
    total = loss.loss(y, raw, sample_weight=sw, reduction="sum")
    np.testing.assert_allclose(total, per_element.astype(np.float64).sum(), rtol=1e-12 if dtype == np.float64 else 1e-6)
    for row in (38, n - 1):  # the first bad row is found wherever it falls in a chunk
        bad = raw.copy()
        bad[row, n_cols - 1] = np.nan
        for call in (loss.gradient, loss.hessian, loss.loss, loss.loss_gradient):
            with pytest.raises(ValueError, match=f"raw_prediction.*row {row}"):
                call(y, bad, sample_weight=sw)


_LABELLED = [nbloss.CrossEntropy(), nbloss.CrossEntropy(label_smoothing=0.1, class_weight=[1.0, 2.0, 0.5, 3.0, 1.0]),
             nbloss.CrossEntropy(ignore_index=2), nbloss.FocalLoss(),
             nbloss.FocalLoss(gamma=0.5, alpha=[0.25, 1.0, 2.0, 1.0, 0.5], ignore_index=-1)]


def _assert_calls_agree(loss, y, raw, sw):
    """Every call's outputs, bit for bit: ``gradient_hessian`` (the loop with constant flags) against
    ``gradient``, ``hessian``, ``loss`` and ``loss_gradient`` (the loop reading its flags at run time)."""
    g, h = loss.gradient_hessian(y, raw, sample_weight=sw)
    np.testing.assert_array_equal(g, loss.gradient(y, raw, sample_weight=sw))
    np.testing.assert_array_equal(h, loss.hessian(y, raw, sample_weight=sw))
    per_row, g_none = loss.loss_gradient(y, raw, sample_weight=sw, reduction="none")
    np.testing.assert_array_equal(g_none, g)
    np.testing.assert_array_equal(per_row, loss.loss(y, raw, sample_weight=sw, reduction="none"))
    mean, _ = loss.loss_gradient(y, raw, sample_weight=sw)
    assert mean == loss.loss(y, raw, sample_weight=sw)
    return per_row, g, h


@pytest.mark.parametrize("loss", _LABELLED, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_calls_agree_bit_for_bit(loss, dtype):
    """Every call of the labelled softmax kernels takes a loop over chunks of rows (shift, one flat
    exponential pass in float64, the row sums, then the loss and derivatives): a copy with constant flags
    for ``gradient_hessian``, one reading them at run time for the other calls.  They must give the same
    bits, in both dtypes, with adversarial and ignored rows; and every call must still find the first bad
    label or NaN row when it is the last row of a chunk or of the input."""
    rng = np.random.default_rng(7)
    n, k = 20_011, 5  # blocks of ~39 rows: a full chunk of 32 and a remainder
    raw = rng.normal(scale=4.0, size=(n, k)).astype(dtype)
    raw[0] = np.inf
    raw[1, 2] = -np.inf
    raw[2] = [1e4, -1e4, 0.0, 1e4, 3.0]
    raw[3] = 7.0  # ties
    y = rng.integers(0, k, n)
    y[::97] = loss.ignore_index if loss.ignore_index is not None else 0
    weights = rng.uniform(0.0, 3.0, n)
    for sw in (None, weights):
        per_row, g, h = _assert_calls_agree(loss, y, raw, sw)
        if loss.ignore_index is not None:
            ignored = y == loss.ignore_index
            assert not per_row[ignored].any() and not g[ignored].any() and not h[ignored].any()
    for row in (31, n - 1):
        bad_y = y.copy()
        bad_y[row] = k
        bad_raw = raw.copy()
        bad_raw[row, 4] = np.nan
        for call in (loss.gradient_hessian, loss.loss, loss.gradient):
            with pytest.raises(ValueError, match=f"y_true.*row {row}"):
                call(bad_y, raw)
            with pytest.raises(ValueError, match=f"raw_prediction.*row {row}"):
                call(y, bad_raw)


@pytest.mark.parametrize("k", [300, 5000])
def test_softmax_long_rows_take_shorter_chunks(k):
    """Chunks hold at most 4096 exponentials: 13 rows of K = 300, one row of K = 5000 (more than a
    chunk's worth).  Cross-entropy against NumPy's formulas in float64, and every call bit for bit."""
    rng = np.random.default_rng(k)
    n = 20_000 // k + 37
    raw = rng.normal(scale=5.0, size=(n, k))
    y = rng.integers(0, k, n)
    shifted = raw - raw.max(axis=1, keepdims=True)
    log_s = np.log(np.exp(shifted).sum(axis=1))
    p = np.exp(shifted - log_s[:, None])
    onehot = np.eye(k)[y]
    per_row, g, h = _assert_calls_agree(nbloss.CrossEntropy(), y, raw, None)
    np.testing.assert_allclose(per_row, log_s - shifted[np.arange(n), y], rtol=1e-12)
    np.testing.assert_allclose(g, p - onehot, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, p * (1 - p), rtol=1e-12, atol=1e-15)
    for loss in (nbloss.CrossEntropy(label_smoothing=0.2), *[nbloss.FocalLoss(gamma=g) for g in (2.0, 1.5, 1.7)]):
        _assert_calls_agree(loss, y, raw, rng.uniform(0.5, 2.0, n))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_soft_target_losses_span_chunks(smoothing):
    """Soft targets: row losses are formed a chunk of rows at a time (their logarithms in one loop over
    the chunk), blocks of ~39 rows making a full chunk of 32 and a remainder.  Every call against NumPy's
    formulas, and ``loss``, ``loss_gradient`` and ``gradient_hessian`` bit for bit."""
    rng = np.random.default_rng(11)
    n, k = 20_011, 6
    raw = rng.normal(scale=4.0, size=(n, k))
    raw[0] = [1e4, -1e4, 0.0, 1e4, 3.0, 7.0]
    q = rng.dirichlet(np.ones(k), n)
    q[1] = np.eye(k)[2]
    sw = rng.uniform(0.0, 3.0, n)
    w = rng.uniform(0.5, 2.0, k)
    loss = nbloss.CrossEntropy(class_weight=w, label_smoothing=smoothing)
    per_row, g, h = _assert_calls_agree(loss, q, raw, sw)
    c = sw[:, None] * w * ((1 - smoothing) * q + smoothing / k)
    np.testing.assert_allclose(per_row, -(c * log_softmax(raw, axis=1)).sum(axis=1), rtol=1e-12)
    p = softmax(raw, axis=1)
    np.testing.assert_allclose(g, c.sum(axis=1, keepdims=True) * p - c, rtol=1e-10, atol=1e-12)
    one_minus_p = np.stack([np.delete(p, j, axis=1).sum(axis=1) for j in range(k)], axis=1)  # no cancellation
    np.testing.assert_allclose(h, c.sum(axis=1, keepdims=True) * p * one_minus_p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(loss.loss(q, raw, sw, reduction="sum"), per_row.sum(), rtol=1e-13)


# (store per-row or per-element losses, want the loss sum, the gradient, the Hessian): each loop a
# kernel compiles, for the integer-gamma focal kernels' comparisons with the general ones
_EVERY_LOOP = [(False, False, True, True), (False, True, True, False), (False, True, False, False),
               (True, True, True, True)]


def _assert_powers_agree(a, b, dtype, float32_arithmetic=False, gamma=0.0):
    """Outputs of the product (``small_int_power``, ``half_int_power``) and ``pow_unit`` focal kernels at
    their exponents: the focal factor is the same to within its rounding (``pow_unit`` is within 1.14 ulps,
    the products within 1.25), so the outputs agree to a few float64 ulps (measured at the integers: at most
    4.4e-16 relative, 2 ulps), or in the last bit of a float32 output; kernels that compute in float32
    (``pow_unit_f32`` within 1.3 float32 ulps at these exponents) to a few float32 ulps (measured at the
    integers: 1.4e-7 relative).  Infinities and NaN must match, and zeros too, but for a factor that
    underflows.  The binary ``pow_unit`` kernels take a 0/1 target's factor by ``sigmoid_power`` instead,
    within ``1 + 1.4 gamma`` ulps in float64 (tests/test_exp.py; inside 2e-15 up to gamma 3) and
    ``1.25 + 1.5 gamma`` in float32, so there the bar grows with ``gamma`` (measured: 5.6e-7 relative,
    4.7 eps32, at gamma 3)."""
    eps32 = float(np.finfo(np.float32).eps)
    rtol = 2e-15 if dtype == np.float64 else (2.0 + 1.5 * gamma) * eps32 if float32_arithmetic else eps32
    np.testing.assert_allclose(a, b, rtol=rtol, atol=float(np.finfo(dtype).tiny))


_OWN_KERNEL_EXPONENTS = [(g, "_int") for g in SMALL_INT_EXPONENTS] + [(g, "_half") for g in HALF_INT_EXPONENTS]


@pytest.mark.parametrize(("gamma", "kind"), _OWN_KERNEL_EXPONENTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_focal_small_gamma_kernels_match_the_general_kernel(gamma, kind, dtype):
    """``FocalLoss`` with gamma 0, 1, 2 or 3 runs ``focal_int_labels`` (``(1 - p_y)^gamma`` by selects and
    products), with 0.5, 1.5 or 2.5 ``focal_half_labels`` (products and a square root), any other gamma
    ``focal_labels`` (``pow_unit``).  At their exponents these must agree with the general kernel
    in every loop they compile (constant and run-time flags, each output set), on infinite, saturating
    and tied rows, ignored rows, with class weights and sample weights."""
    rng = np.random.default_rng(13)
    n, k = 3_001, 6
    raw = rng.normal(scale=5.0, size=(n, k))
    raw[0] = np.inf
    raw[1, 2] = -np.inf
    raw[2] = [1e4, -1e4, 0.0, 1e4, 3.0, -745.0]
    raw[3] = 7.0
    raw = raw.astype(dtype)
    y = rng.integers(0, k, n)
    y[::41] = -1
    own_kernel = getattr(sm, "focal" + kind + "_labels")

    def run(kernel, loss, prob, store, want_loss, want_grad, want_hess):
        outs = [np.full(prob.raw.shape[:1], np.nan, dtype) if store else loss._empty(prob, loss_shaped=True)]
        outs += [np.full(prob.raw.shape, np.nan, dtype) if w else loss._empty(prob) for w in (want_grad, want_hess)]
        chosen, args = loss._kernel_call(prob, 1.0, *outs, want_loss)
        return chosen, kernel(*args), outs

    for alpha in (None, [0.25, 1.0, 2.0, 1.0, 0.5, 3.0]):
        loss = nbloss.FocalLoss(gamma=gamma, alpha=alpha, ignore_index=-1)
        for sw in (None, rng.uniform(0.0, 2.0, n)):
            prob = loss._prepare(y, raw, sw)
            for call in _EVERY_LOOP:
                chosen, result_general, outs_general = run(sm.focal_labels, loss, prob, *call)
                _, result_own, outs_own = run(own_kernel, loss, prob, *call)
                assert chosen is own_kernel
                assert result_general[1:] == result_own[1:]  # the first bad rows
                np.testing.assert_allclose(result_general[0], result_own[0], rtol=2e-15)
                for a, b in zip(outs_general, outs_own):
                    _assert_powers_agree(a, b, dtype)
    general = nbloss.FocalLoss(gamma=gamma + 0.25, ignore_index=-1)
    assert run(sm.focal_labels, general, general._prepare(y, raw, None), *_EVERY_LOOP[0])[0] is sm.focal_labels


@pytest.mark.parametrize(("gamma", "kind"), _OWN_KERNEL_EXPONENTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_focal_small_gamma_kernels_match_the_pow_kernel(gamma, kind, dtype):
    """``BinaryFocalLoss`` with gamma 0, 1, 2 or 3 runs ``binary_focal_int`` (powers by selects and products),
    with 0.5, 1.5 or 2.5 ``binary_focal_half`` (products and a square root), any other gamma ``binary_focal``
    (``pow_unit``).  At their exponents these must agree with ``binary_focal``: loss sums, per-element losses,
    gradients and Hessians, on saturating and infinite logits, hard and soft targets, with and without
    weights, one column and several."""
    suffix = "_f32" if dtype == np.float32 else ""  # float32 input: the kernels that compute in float32
    pow_kernel, own_kernel = getattr(ew, "binary_focal" + suffix), getattr(ew, "binary_focal" + kind + suffix)
    col_param = np.ones(1)
    assert nbloss.BinaryFocalLoss(gamma=gamma)._kernel_for(col_param, np.dtype(dtype)) is own_kernel
    assert nbloss.BinaryFocalLoss(gamma=gamma + 0.25)._kernel_for(col_param, np.dtype(dtype)) is pow_kernel
    rng = np.random.default_rng(11)
    edge = np.array([0.0, 1e-300, 1e-8, 17.0, 37.0, 709.0, 745.0, 1e4, np.inf])
    z = np.concatenate([edge, -edge, rng.normal(scale=6.0, size=4000)])
    y = np.concatenate([np.tile([0.0, 1.0, 0.3], 6), (rng.uniform(size=4000) < 0.3) * 1.0])
    z, y = z.astype(dtype), y.astype(dtype)

    def run(kernel, loss, prob, store, want_loss, want_grad, want_hess):
        outs = [np.full(prob.raw.shape, np.nan, dtype) if w else loss._empty(prob)
                for w in (store, want_grad, want_hess)]
        _, args = loss._kernel_call(prob, 1.0, *outs, want_loss)
        return kernel(*args), outs

    for alpha in (0.25, None):
        loss = nbloss.BinaryFocalLoss(gamma=gamma, alpha=alpha)
        weights = rng.uniform(0.0, 2.0, z.shape[0]).astype(dtype)
        for yy, zz, sw in ((y, z, None), (y, z, weights), (y.reshape(-1, 2), z.reshape(-1, 2), None)):
            prob = loss._prepare(yy, zz, sw)
            for call in _EVERY_LOOP:
                result_pow, outs_pow = run(pow_kernel, loss, prob, *call)
                result_own, outs_own = run(own_kernel, loss, prob, *call)
                assert result_pow[1:] == result_own[1:]  # the first bad rows
                np.testing.assert_allclose(result_pow[0], result_own[0],
                                           rtol=2e-15 if dtype == np.float64 else 4 * np.finfo(np.float32).eps)
                for a, b in zip(outs_pow, outs_own):
                    _assert_powers_agree(a, b, dtype, float32_arithmetic=True, gamma=gamma)


@pytest.mark.parametrize("gamma", [2.0, 1.5, 1.7])  # each kind of kernel: products, square root, sigmoid_power
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_focal_0_1_targets_do_not_depend_on_their_neighbours(gamma, dtype):
    """The element-wise kernels run a chunk of 0/1 targets through the binary focal loss's short form for them
    and any other chunk through the general form, which must give a 0/1 target the same bits: a 0/1
    target's loss, gradient and Hessian are the same whether soft targets share its chunk or not (every
    200th element made soft), in every call, with and without sample weights, one column and several, on
    saturating and infinite logits."""
    rng = np.random.default_rng(17)
    n, n_cols = 3_000, 3
    z = rng.normal(scale=5.0, size=(n, n_cols))
    z.flat[:12] = [np.inf, -np.inf, 0.0, 1e4, -1e4, 40.0, -40.0, 745.0, -745.0, 1e-300, -1e-300, 30.0]
    hard = (rng.uniform(size=(n, n_cols)) < 0.4) * 1.0
    mixed = hard.copy()
    mixed.flat[::200] = 0.37
    weights = rng.uniform(0.5, 1.5, n)
    for alpha in (0.25, None):
        loss = nbloss.BinaryFocalLoss(gamma=gamma, alpha=alpha)
        for cols in (1, n_cols):
            z_c = z[:, :cols].astype(dtype)
            keep = mixed[:, :cols] != 0.37
            for sw in (None, weights):
                outputs = []
                for y in (hard[:, :cols].astype(dtype), mixed[:, :cols].astype(dtype)):
                    outputs.append([loss.loss(y, z_c, sw, reduction="none"), *loss.gradient_hessian(y, z_c, sw),
                                    *loss.loss_gradient(y, z_c, sw, reduction="none")])
                for all_hard, with_soft in zip(*outputs):
                    np.testing.assert_array_equal(all_hard[keep], with_soft[keep])
