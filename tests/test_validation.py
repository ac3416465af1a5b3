"""Every bad input of the contract raises the documented error, naming the
argument and, where it applies, the first bad row and its value."""

from __future__ import annotations

import numpy as np
import pytest

import nbloss

CE = nbloss.CrossEntropy
SOFTMAX_LOSSES = [CE(), CE(ignore_index=-100), nbloss.FocalLoss()]
ELEMENTWISE_LOSSES = [nbloss.BinaryCrossEntropy(), nbloss.BinaryFocalLoss(), nbloss.HuberLoss(),
                      nbloss.PseudoHuberLoss(), nbloss.SquaredError()]
METHODS = ["loss", "gradient", "hessian", "gradient_hessian", "loss_gradient"]


def _softmax_problem(n=6, k=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, k, size=n), rng.normal(size=(n, k))


def _elementwise_problem(loss, n=6):
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    return y, rng.normal(size=n)


def _call(loss, method, y, raw, **kw):
    return getattr(loss, method)(y, raw, **kw)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("loss", SOFTMAX_LOSSES, ids=repr)
@pytest.mark.parametrize("bad", [3, -1, 10**12, -(2**62)])
def test_out_of_range_label_names_row_and_value(loss, method, bad):
    y, raw = _softmax_problem()
    y[4] = bad
    with pytest.raises(ValueError, match=rf"y_true must hold class indices in \[0, 3\).*row 4 has {bad}"):
        _call(loss, method, y, raw)


@pytest.mark.parametrize("method", METHODS)
def test_huge_labels_never_read_memory(method):
    y, raw = _softmax_problem(n=2000, k=4)
    y[1234] = 2**40
    with pytest.raises(ValueError, match="row 1234"):
        _call(CE(), method, y, raw)


@pytest.mark.parametrize("label", [1.5, np.nan, np.inf])
def test_non_integral_labels(label):
    y, raw = _softmax_problem()
    y = y.astype(float)
    y[2] = label
    with pytest.raises(ValueError, match="y_true must hold integral class indices; row 2"):
        CE().loss(y, raw)


def test_integral_float_labels_are_accepted():
    y, raw = _softmax_problem()
    assert CE().loss(y.astype(np.float32), raw) == CE().loss(y, raw)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("loss", SOFTMAX_LOSSES, ids=repr)
def test_nan_logit_names_row(loss, method):
    y, raw = _softmax_problem()
    raw[3, 1] = np.nan
    with pytest.raises(ValueError, match="raw_prediction must not contain NaN; row 3"):
        _call(loss, method, y, raw)


@pytest.mark.parametrize("col", [0, 1, 2])
def test_nan_logit_found_in_every_column_and_first_row_reported(col):
    y, raw = _softmax_problem(n=3000)
    raw[2500, col] = np.nan
    raw[1700, (col + 1) % 3] = np.nan
    with pytest.raises(ValueError, match="row 1700"):
        CE().gradient_hessian(y, raw)


def test_nan_logit_in_ignored_row_is_still_an_error():
    y, raw = _softmax_problem()
    y[1] = -100
    raw[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1"):
        CE(ignore_index=-100).loss(y, raw)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES, ids=repr)
def test_elementwise_nan_logit(loss, method):
    y, raw = _elementwise_problem(loss)
    raw[5] = np.nan
    with pytest.raises(ValueError, match="raw_prediction must not contain NaN; row 5"):
        _call(loss, method, y, raw)


@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES, ids=repr)
@pytest.mark.parametrize("method", ["loss", "gradient_hessian"])
@pytest.mark.parametrize("shape", [(50_000,), (20_000, 3)])
@pytest.mark.parametrize("where", [0, 777, -1])
def test_elementwise_bad_values_found_anywhere_in_large_inputs(loss, method, shape, where):
    """Blocks hold thousands of elements: the first bad row is found wherever it is."""
    rng = np.random.default_rng(0)
    raw = rng.normal(size=shape)
    y = (rng.uniform(size=shape) < 0.5).astype(float)
    row = where % shape[0]
    raw.reshape(shape[0], -1)[row, -1] = np.nan
    raw.reshape(shape[0], -1)[-1, 0] = np.nan
    with pytest.raises(ValueError, match=f"raw_prediction must not contain NaN; row {row}"):
        getattr(loss, method)(y, raw)
    raw = np.nan_to_num(raw)
    y.reshape(shape[0], -1)[row, 0] = np.nan
    with pytest.raises(ValueError, match=f"y_true .*; row {row}"):
        getattr(loss, method)(y, raw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", [nbloss.BinaryCrossEntropy(), nbloss.BinaryFocalLoss(), nbloss.HuberLoss()], ids=repr)
@pytest.mark.parametrize("method", ["loss", "loss_gradient", "gradient", "gradient_hessian"])
@pytest.mark.parametrize("weighted_columns", [False, True])
@pytest.mark.parametrize("rows", [(30_010, 5), (7_000, 6_999, 29_000), (64, 63, 20_001), (12_345,)])
def test_elementwise_first_bad_row_across_blocks_and_chunks(loss, method, weighted_columns, rows, dtype):
    """Element-wise kernels flag bad elements as they compute and rescan a chunk of 64 elements that has
    any; blocks hold at least 4,096 elements.  Bad values in several chunks and blocks, in any order:
    the error names the first bad target row (checked before raw values), else the first NaN row, in
    the unweighted one-column loops and in the general loop (sample weights on 3 columns), and in
    float32 too (the float32 kernels of BinaryCrossEntropy and BinaryFocalLoss are kernels of their own)."""
    rng = np.random.default_rng(4)
    shape = (30_011, 3) if weighted_columns else (90_033,)
    sw = rng.uniform(0.5, 2.0, shape[0]).astype(dtype) if weighted_columns else None
    raw = rng.normal(size=shape).astype(dtype)
    y = (rng.uniform(size=shape) < 0.5).astype(dtype)
    n_rows = shape[0]
    rows = [r % n_rows for r in rows]
    raw2d, y2d = raw.reshape(n_rows, -1), y.reshape(n_rows, -1)
    for i, r in enumerate(rows):
        raw2d[r, i % raw2d.shape[1]] = np.nan
    with pytest.raises(ValueError, match=f"raw_prediction must not contain NaN; row {min(rows)} "):
        getattr(loss, method)(y, raw, sample_weight=sw)
    late = max(rows)  # a bad target after the first NaN still wins: targets are reported first
    y2d[late, -1] = np.nan
    with pytest.raises(ValueError, match=f"y_true .*; row {late} "):
        getattr(loss, method)(y, raw, sample_weight=sw)
    for r in rows:
        y2d[r, 0] = np.nan
    with pytest.raises(ValueError, match=f"y_true .*; row {min(rows)} "):
        getattr(loss, method)(y, raw, sample_weight=sw)


@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES[:2], ids=repr)
@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan, np.inf])
def test_binary_targets_outside_unit_interval(loss, bad):
    y, raw = _elementwise_problem(loss)
    y[2] = bad
    with pytest.raises(ValueError, match=r"y_true must hold values in \[0, 1\]; row 2"):
        loss.gradient(y, raw)


@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES[2:], ids=repr)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_regression_targets_must_be_finite(loss, bad):
    y, raw = _elementwise_problem(loss)
    y[3] = bad
    with pytest.raises(ValueError, match="y_true must be finite; row 3"):
        loss.loss(y, raw)


@pytest.mark.parametrize("bad_row", [[0.5, 0.6, 0.0], [1.2, -0.2, 0.0], [np.nan, 0.5, 0.5], [0.2, 0.2, 0.2]])
def test_soft_targets_must_be_distributions(bad_row):
    _, raw = _softmax_problem()
    q = np.full((6, 3), 1 / 3)
    q[4] = bad_row
    with pytest.raises(ValueError, match=r"class probabilities.*row 4"):
        CE().loss(q, raw)


def test_focal_rejects_soft_targets():
    _, raw = _softmax_problem()
    with pytest.raises(ValueError, match="takes class indices"):
        nbloss.FocalLoss().loss(np.full((6, 3), 1 / 3), raw)


@pytest.mark.parametrize("weight", [-1.0, np.nan, np.inf])
@pytest.mark.parametrize("loss", SOFTMAX_LOSSES + ELEMENTWISE_LOSSES, ids=repr)
def test_bad_sample_weight_names_row(loss, weight):
    y, raw = _softmax_problem() if loss in SOFTMAX_LOSSES else _elementwise_problem(loss)
    sw = np.ones(6)
    sw[2] = weight
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative.*row 2"):
        loss.loss(y, raw, sample_weight=sw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [(0,), (31, 32), (5_000, 4_999, 70), (19_999,), (15_000, 6_001, 6_000)])
def test_bad_sample_weight_first_row_across_blocks(rows, dtype):
    # n = 20_000 takes the parallel pass, over four blocks of 5,000 weights: the first bad row must win
    # whichever block holds it (the other tests' few rows take its serial twin)
    n = 20_000
    rng = np.random.default_rng(1)
    y, raw = rng.integers(0, 3, n), rng.normal(size=(n, 3)).astype(dtype)
    sw = rng.random(n)
    sw[::7] = 0.0
    sw[1::11] = -0.0  # a negative zero is a zero weight
    for row, value in zip(rows, [-1e-30, np.nan, -np.inf, np.inf]):
        sw[row] = value
    first = min(rows)
    with pytest.raises(ValueError, match=rf"sample_weight must be finite and non-negative.*row {first} "):
        CE().gradient(y, raw, sample_weight=sw)
    sw[list(rows)] = 1.0
    CE().gradient(y, raw, sample_weight=sw)


def test_sample_weight_overflowing_float32_is_rejected():
    y, raw = _softmax_problem()
    sw = np.ones(6)
    sw[1] = 1e300
    with pytest.raises(ValueError, match="in float32.*row 1"):
        CE().loss(y, raw.astype(np.float32), sample_weight=sw)


def test_shape_mismatches():
    y, raw = _softmax_problem()
    with pytest.raises(ValueError, match=r"y_true must have shape \(6,\)"):
        CE().loss(y[:5], raw)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(6,\)"):
        CE().loss(y, raw, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="at least 2 columns"):
        CE().loss(np.zeros(6, int), raw[:, :1])
    with pytest.raises(ValueError, match="raw_prediction must be 2-D"):
        CE().loss(y, raw[:, 0])
    with pytest.raises(ValueError, match="raw_prediction must be 1-D or 2-D"):
        nbloss.SquaredError().loss(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="shape of raw_prediction"):
        nbloss.BinaryCrossEntropy().loss(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match=r"class_weight must have shape \(3,\)"):
        CE(class_weight=[1.0, 2.0]).loss(y, raw)
    with pytest.raises(ValueError, match=r"pos_weight must have shape \(2,\)"):
        nbloss.BinaryCrossEntropy(pos_weight=[1.0, 2.0, 3.0]).loss(np.zeros((4, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("dtype", [np.complex128, object, "U3"])
def test_non_numeric_inputs_raise_type_error(dtype):
    y, raw = _softmax_problem()
    with pytest.raises(TypeError, match="raw_prediction"):
        CE().loss(y, raw.astype(dtype) if dtype != "U3" else raw.astype(str))
    with pytest.raises(TypeError, match="y_true"):
        CE().loss(y.astype(dtype) if dtype != "U3" else y.astype(str), raw)
    with pytest.raises(TypeError, match="sample_weight"):
        CE().loss(y, raw, sample_weight=np.ones(6).astype(dtype) if dtype != "U3" else np.ones(6).astype(str))


def test_integer_and_bool_raw_predictions_become_float64():
    y, raw = _softmax_problem()
    g = CE().gradient(y, np.round(raw).astype(np.int32))
    assert g.dtype == np.float64
    g = nbloss.BinaryCrossEntropy().gradient(np.ones(4), np.array([True, False, True, True]))
    assert g.dtype == np.float64


@pytest.mark.parametrize("loss", SOFTMAX_LOSSES + ELEMENTWISE_LOSSES, ids=repr)
def test_empty_inputs(loss):
    if loss in SOFTMAX_LOSSES:
        y, raw = np.zeros(0, int), np.zeros((0, 3))
    else:
        y, raw = np.zeros(0), np.zeros(0)
    with pytest.raises(ValueError, match="reduction='mean' is undefined"):
        loss.loss(y, raw)
    assert loss.loss(y, raw, reduction="sum") == 0
    assert loss.loss(y, raw, reduction="none").shape == (0,)
    g, h = loss.gradient_hessian(y, raw)
    assert g.shape == raw.shape and h.shape == raw.shape


def test_all_rows_ignored_or_zero_weight_has_no_mean():
    y, raw = _softmax_problem()
    with pytest.raises(ValueError, match="total weight"):
        CE(ignore_index=7).loss(np.full(6, 7), raw)
    with pytest.raises(ValueError, match="total weight"):
        CE().loss(y, raw, sample_weight=np.zeros(6))
    assert CE(ignore_index=7).loss(np.full(6, 7), raw, reduction="sum") == 0.0


def test_bad_reduction():
    y, raw = _softmax_problem()
    with pytest.raises(ValueError, match="reduction must be one of"):
        CE().loss(y, raw, reduction="avg")


def test_out_buffers_are_checked():
    y, raw = _softmax_problem()
    loss = CE()
    with pytest.raises(ValueError, match=r"gradient_out must have shape \(6, 3\) and dtype float64"):
        loss.gradient(y, raw, gradient_out=np.empty((6, 2)))
    with pytest.raises(ValueError, match="hessian_out must have shape"):
        loss.hessian(y, raw, hessian_out=np.empty((6, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        loss.gradient(y, raw, gradient_out=np.empty((3, 6)).T)
    ro = np.empty((6, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        loss.gradient(y, raw, gradient_out=ro)
    with pytest.raises(ValueError, match="must not share memory with raw_prediction"):
        loss.gradient(y, raw, gradient_out=raw)
    buf = np.empty((6, 3))
    with pytest.raises(ValueError, match="gradient_out and hessian_out must not share memory"):
        loss.gradient_hessian(y, raw, gradient_out=buf, hessian_out=buf)
    with pytest.raises(TypeError, match="gradient_out must be a numpy.ndarray"):
        loss.gradient(y, raw, gradient_out=[[0.0] * 3] * 6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: CE(label_smoothing=1.0), "label_smoothing must be in"),
        (lambda: CE(label_smoothing=-0.1), "label_smoothing must be finite and >= 0"),
        (lambda: CE(class_weight="auto"), "class_weight must be None, an array or 'balanced'"),
        (lambda: CE(class_weight=[1.0, -1.0]), "class_weight must be finite and non-negative; entry 1"),
        (lambda: CE(class_weight=[[1.0]]), "class_weight must have shape"),
        (lambda: nbloss.FocalLoss(gamma=-1.0), "gamma must be finite and >= 0"),
        (lambda: nbloss.FocalLoss(alpha=[1.0, np.nan]), "alpha must be finite and non-negative; entry 1"),
        (lambda: nbloss.BinaryFocalLoss(alpha=1.5), r"alpha must be in \[0, 1\] or None"),
        (lambda: nbloss.BinaryCrossEntropy(pos_weight=-2.0), "pos_weight must be finite and >= 0"),
        (lambda: nbloss.HuberLoss(delta=0.0), "delta must be finite and > 0"),
        (lambda: nbloss.PseudoHuberLoss(delta=np.inf), "delta must be finite and > 0"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_parameter_types():
    with pytest.raises(TypeError, match="ignore_index must be an integer or None"):
        CE(ignore_index=1.5)
    with pytest.raises(TypeError, match="gamma must be a real number"):
        nbloss.FocalLoss(gamma="2")
    with pytest.raises(TypeError, match="delta must be a real number"):
        nbloss.HuberLoss(delta=None)
