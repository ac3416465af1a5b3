"""Semantics against PyTorch itself: ``CrossEntropy`` is ``F.cross_entropy``,
``BinaryCrossEntropy`` is ``F.binary_cross_entropy_with_logits``,
``BinaryFocalLoss`` is torchvision's ``sigmoid_focal_loss`` (its published
formula, written with torch ops since torchvision is not installed here), and
``FocalLoss`` is ``-alpha_y (1 - p_y)^gamma log p_y``.  Gradients and Hessian
diagonals come from torch autograd in float64.  Skipped when torch is absent
(CI installs it)."""

from __future__ import annotations

import numpy as np
import pytest

import nbloss

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def _autograd(fn, raw):
    """Gradient and diagonal Hessian of ``fn(raw).sum()`` for row-separable ``fn``."""
    z = _t(raw).requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(z).sum(), z, create_graph=True)
    hess = torch.zeros_like(z)
    for idx in np.ndindex(raw.shape[1:]):  # rows are independent: one backward per column
        sel = (slice(None),) + idx
        (h,) = torch.autograd.grad(grad[sel].sum(), z, retain_graph=True)
        hess[sel] = h[sel]
    return grad.detach().numpy(), hess.detach().numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [None, 1])
def test_cross_entropy_is_torch_cross_entropy(reduction, weighted, smoothing, ignore_index):
    rng = np.random.default_rng(0)
    n, k = 40, 5
    raw = rng.normal(scale=3, size=(n, k))
    y = rng.integers(0, k, size=n)
    w = rng.uniform(0.2, 2.0, size=k) if weighted else None
    ours = nbloss.CrossEntropy(class_weight=w, label_smoothing=smoothing, ignore_index=ignore_index)
    theirs = F.cross_entropy(_t(raw), torch.tensor(y), weight=None if w is None else _t(w), reduction=reduction,
                             label_smoothing=smoothing, ignore_index=-100 if ignore_index is None else ignore_index)
    np.testing.assert_allclose(ours.loss(y, raw, reduction=reduction), theirs.numpy(), rtol=1e-12, atol=1e-15)
    z = _t(raw).requires_grad_(True)
    value = F.cross_entropy(z, torch.tensor(y), weight=None if w is None else _t(w), reduction=reduction,
                            label_smoothing=smoothing, ignore_index=-100 if ignore_index is None else ignore_index)
    value.sum().backward()
    _, grad = ours.loss_gradient(y, raw, reduction=reduction)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_soft_target_cross_entropy_is_torch_cross_entropy(reduction, smoothing):
    rng = np.random.default_rng(1)
    n, k = 30, 4
    raw = rng.normal(scale=3, size=(n, k))
    q = rng.dirichlet(np.ones(k), size=n)
    w = rng.uniform(0.2, 2.0, size=k)
    ours = nbloss.CrossEntropy(class_weight=w, label_smoothing=smoothing)
    theirs = F.cross_entropy(_t(raw), _t(q), weight=_t(w), reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(ours.loss(q, raw, reduction=reduction), theirs.numpy(), rtol=1e-12)
    grad, hess = ours.gradient_hessian(q, raw)
    g_t, h_t = _autograd(lambda z: F.cross_entropy(z, _t(q), weight=_t(w), reduction="none",
                                                   label_smoothing=smoothing), raw)
    np.testing.assert_allclose(grad, g_t, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hess, h_t, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, 2.5, "vector"])
def test_binary_cross_entropy_is_torch_bce_with_logits(reduction, pos_weight):
    rng = np.random.default_rng(2)
    raw = rng.normal(scale=4, size=(50, 3))
    y = rng.uniform(size=raw.shape)
    y[::2] = np.round(y[::2])
    pw = rng.uniform(0.3, 3.0, size=3) if pos_weight == "vector" else pos_weight
    ours = nbloss.BinaryCrossEntropy(pos_weight=pw)
    pw_t = None if pw is None else _t(np.broadcast_to(pw, (3,)))
    theirs = F.binary_cross_entropy_with_logits(_t(raw), _t(y), pos_weight=pw_t, reduction=reduction)
    np.testing.assert_allclose(ours.loss(y, raw, reduction=reduction), theirs.numpy(), rtol=1e-12)
    grad, hess = ours.gradient_hessian(y, raw)
    g_t, h_t = _autograd(lambda z: F.binary_cross_entropy_with_logits(z, _t(y), pos_weight=pw_t,
                                                                      reduction="none"), raw)
    np.testing.assert_allclose(grad, g_t, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hess, h_t, rtol=1e-10, atol=1e-14)


def _torchvision_sigmoid_focal_loss(inputs, targets, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss with reduction='none', as published."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


@pytest.mark.parametrize("alpha", [0.25, None])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.3])
def test_binary_focal_is_torchvision_sigmoid_focal_loss(alpha, gamma):
    rng = np.random.default_rng(3)
    raw = rng.normal(scale=4, size=(40, 2))
    y = rng.uniform(size=raw.shape)
    y[::2] = np.round(y[::2])
    ours = nbloss.BinaryFocalLoss(gamma=gamma, alpha=alpha)
    a = -1.0 if alpha is None else alpha

    def fn(z):
        return _torchvision_sigmoid_focal_loss(z, _t(y), a, gamma)

    # torch's soft-target BCE cancels (ours sums non-negative terms; mpmath tests pin ours at 1e-12),
    # so semantics are compared at torch's accuracy
    np.testing.assert_allclose(ours.loss(y, raw, reduction="none"), fn(_t(raw)).numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.loss(y, raw), fn(_t(raw)).mean().item(), rtol=1e-9)
    grad, hess = ours.gradient_hessian(y, raw)
    g_t, h_t = _autograd(fn, raw)
    np.testing.assert_allclose(grad, g_t, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(hess, h_t, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.3])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_softmax_focal_derivatives_match_torch_autograd(gamma, with_alpha):
    rng = np.random.default_rng(4)
    n, k = 30, 4
    raw = rng.normal(scale=3, size=(n, k))
    y = rng.integers(0, k, size=n)
    alpha = rng.uniform(0.2, 2.0, size=k) if with_alpha else None
    ours = nbloss.FocalLoss(gamma=gamma, alpha=alpha)
    a = _t(np.ones(k) if alpha is None else alpha)[torch.tensor(y)]

    def fn(z):
        logp = F.log_softmax(z, dim=1)[torch.arange(n), torch.tensor(y)]
        return -a * (1 - logp.exp()) ** gamma * logp

    np.testing.assert_allclose(ours.loss(y, raw, reduction="none"), fn(_t(raw)).detach().numpy(), rtol=1e-12)
    grad, hess = ours.gradient_hessian(y, raw)
    g_t, h_t = _autograd(fn, raw)
    np.testing.assert_allclose(grad, g_t, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(hess, h_t, rtol=1e-9, atol=1e-13)
