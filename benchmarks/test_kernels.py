"""pytest-benchmark suite of the kernels: ``pytest benchmarks --benchmark-only -n 0``.

Each group times one call shape for nbloss, scikit-learn's Cython loss module
(where it has the loss) and a memory floor: copying the bytes the call must
read and write, which no kernel can beat.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn._loss.loss import HuberLoss as SkHuber

import nbloss

N_SOFTMAX, K = 200_000, 10
N_ELEMENTWISE = 2_000_000
METHODS = ["gradient_hessian", "loss_gradient", "loss"]
DTYPES = [np.float64, np.float32]


def _softmax_data(dtype, soft=False):
    """Labels (soft: rows of class probabilities, Dirichlet-distributed) and logits; the labels are
    drawn either way, so that soft and hard targets meet the same logits."""
    rng = np.random.default_rng(0)
    labels, raw = rng.integers(0, K, N_SOFTMAX), rng.normal(scale=3, size=(N_SOFTMAX, K)).astype(dtype)
    return (rng.dirichlet(np.ones(K), N_SOFTMAX).astype(dtype) if soft else labels), raw


def _elementwise_data(dtype, binary):
    rng = np.random.default_rng(1)
    raw = rng.normal(scale=3, size=N_ELEMENTWISE).astype(dtype)
    y = (rng.uniform(size=N_ELEMENTWISE) < 0.3) if binary else rng.normal(size=N_ELEMENTWISE)
    return y.astype(dtype), raw


def _call(loss, method, y, raw):
    if method == "loss_gradient":
        return lambda: loss.loss_gradient(y, raw, reduction="sum")
    if method == "loss":
        return lambda: loss.loss(y, raw, reduction="sum")
    return lambda: loss.gradient_hessian(y, raw)


def _floor(raw, method):
    """Copy as many bytes as the call reads and writes (raw in, 0-2 outputs out)."""
    n_out = {"gradient_hessian": 2, "loss_gradient": 1, "loss": 0}[method]
    src = np.concatenate([raw.ravel()] * (n_out + 1)) if n_out else raw.ravel()
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


SOFTMAX = {"cross_entropy": nbloss.CrossEntropy(), "cross_entropy_smoothing": nbloss.CrossEntropy(label_smoothing=0.1),
           "cross_entropy_soft_targets": nbloss.CrossEntropy(), "focal": nbloss.FocalLoss()}
ELEMENTWISE = {"bce": (nbloss.BinaryCrossEntropy(), True), "binary_focal": (nbloss.BinaryFocalLoss(), True),
               "huber": (nbloss.HuberLoss(), False), "pseudo_huber": (nbloss.PseudoHuberLoss(), False),
               "squared_error": (nbloss.SquaredError(), False)}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_softmax_kernels(benchmark, name, method, dtype):
    y, raw = _softmax_data(dtype, soft=name.endswith("soft_targets"))
    benchmark.group = f"softmax n={N_SOFTMAX} K={K} {method} {np.dtype(dtype).name}"
    fn = _call(SOFTMAX[name], method, y, raw)
    fn()  # compile outside the timing
    benchmark(fn)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_kernels(benchmark, name, method, dtype):
    loss, binary = ELEMENTWISE[name]
    y, raw = _elementwise_data(dtype, binary)
    benchmark.group = f"elementwise n={N_ELEMENTWISE} {method} {np.dtype(dtype).name}"
    fn = _call(loss, method, y, raw)
    fn()
    benchmark(fn)


def _sklearn_call(loss, method, y, raw):
    threads = nbloss.get_num_threads()
    if method == "gradient_hessian":
        return lambda: loss.gradient_hessian(y, raw, n_threads=threads)
    if method == "loss_gradient":
        return lambda: loss.loss_gradient(y, raw, n_threads=threads)
    return lambda: loss.loss(y, raw, n_threads=threads)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
def test_sklearn_multinomial(benchmark, method, dtype):
    y, raw = _softmax_data(dtype)
    benchmark.group = f"softmax n={N_SOFTMAX} K={K} {method} {np.dtype(dtype).name}"
    benchmark(_sklearn_call(HalfMultinomialLoss(n_classes=K), method, y.astype(dtype), raw))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["binomial", "huber"])
def test_sklearn_elementwise(benchmark, name, method, dtype):
    y, raw = _elementwise_data(dtype, name == "binomial")
    benchmark.group = f"elementwise n={N_ELEMENTWISE} {method} {np.dtype(dtype).name}"
    loss = HalfBinomialLoss() if name == "binomial" else SkHuber(quantile=0.9, delta=1.0)
    benchmark(_sklearn_call(loss, method, y, raw))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", ["softmax", "elementwise"])
def test_memory_floor(benchmark, family, method, dtype):
    if family == "softmax":
        _, raw = _softmax_data(dtype)
        benchmark.group = f"softmax n={N_SOFTMAX} K={K} {method} {np.dtype(dtype).name}"
    else:
        _, raw = _elementwise_data(dtype, True)
        benchmark.group = f"elementwise n={N_ELEMENTWISE} {method} {np.dtype(dtype).name}"
    benchmark(_floor(raw, method))


N_MULTILABEL, N_LABELS = 200_000, 10
LAYOUTS = ["unweighted", "sample_weight", "pos_weight_per_column"]


@pytest.mark.parametrize("method", ["gradient_hessian", "gradient", "hessian", "loss_gradient"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_multilabel_layouts(benchmark, layout, method):
    """Multilabel BCE (n, 10), float64: row weights and per-column ``pos_weight`` are laid out a
    chunk at a time and run the same vectorised loop; each group compares them with the unweighted call."""
    rng = np.random.default_rng(2)
    raw = rng.normal(scale=3, size=(N_MULTILABEL, N_LABELS))
    y = (rng.uniform(size=raw.shape) < 0.3).astype(np.float64)
    sw = rng.uniform(0.5, 2.0, N_MULTILABEL) if layout == "sample_weight" else None
    pw = np.linspace(1.0, 3.0, N_LABELS) if layout == "pos_weight_per_column" else None
    loss = nbloss.BinaryCrossEntropy(pos_weight=pw)
    benchmark.group = f"multilabel BCE n={N_MULTILABEL} L={N_LABELS} {method}"
    fn = (lambda: loss.loss_gradient(y, raw, sw, reduction="sum")) if method == "loss_gradient" else \
        (lambda: getattr(loss, method)(y, raw, sw))
    fn()
    benchmark(fn)
