"""Focal-loss gradients and Hessians written out in NumPy from the published formulas.

Independent of the kernels on purpose (naive products of powers and logs, no
shared helpers): the boosting tests train the same model with these and with
the nbloss adapters.  Only for moderate margins, where the naive forms are
accurate.

Sigmoid focal loss (Lin et al. 2017; torchvision's ``sigmoid_focal_loss``),
``p = sigmoid(z)``: for ``y = 1`` the loss is ``-a (1-p)^g log p`` with

    dL/dz   = a (1-p)^g (g p log p - (1 - p))
    d2L/dz2 = a p (1-p)^g ((1-p)(g log p + g + 1) - g (g p log p - (1-p)))

and ``y = 0`` is the mirror image (``z -> -z``, ``a -> 1 - a``).

Softmax focal loss ``-a_y (1 - p_y)^g log p_y`` with ``G(p) = g p (1-p)^(g-1)
log p - (1-p)^g``: ``dL/dz_j = a_y G(p_y) ([j = y] - p_j)`` and the diagonal
Hessian ``a_y (G'(p_y) p_y ([j = y] - p_j)^2 - G(p_y) p_j (1 - p_j))`` with
``G'(p) = g (1-p)^(g-2) ((1-p) log p - (g-1) p log p + 2 (1-p))``.
"""

from __future__ import annotations

import numpy as np


def _sigmoid_focal_positive(z, alpha, gamma):
    p = 1.0 / (1.0 + np.exp(-z))
    grad = alpha * (1 - p) ** gamma * (gamma * p * np.log(p) - (1 - p))
    hess = alpha * p * (1 - p) ** gamma * ((1 - p) * (gamma * np.log(p) + gamma + 1)
                                           - gamma * (gamma * p * np.log(p) - (1 - p)))
    return grad, hess


def binary_focal_grad_hess(y, z, alpha=0.25, gamma=2.0):
    """Per-row gradient and Hessian of torchvision's sigmoid focal loss for hard labels y in {0, 1}."""
    z = np.asarray(z, dtype=np.float64)
    g1, h1 = _sigmoid_focal_positive(z, alpha, gamma)
    g0, h0 = _sigmoid_focal_positive(-z, 1 - alpha, gamma)
    positive = np.asarray(y) > 0.5
    return np.where(positive, g1, -g0), np.where(positive, h1, h0)


def softmax_focal_grad_hess(y, z, gamma=2.0, alpha=None):
    """(n, K) gradient and diagonal Hessian of the softmax focal loss for class indices y."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y).astype(int)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    py = p[rows, y][:, None]
    a = np.ones(z.shape[0]) if alpha is None else np.asarray(alpha)[y]
    a = a[:, None]
    onehot = np.zeros_like(p)
    onehot[rows, y] = 1.0
    G = gamma * py * (1 - py) ** (gamma - 1) * np.log(py) - (1 - py) ** gamma
    dG = gamma * (1 - py) ** (gamma - 2) * ((1 - py) * np.log(py) - (gamma - 1) * py * np.log(py) + 2 * (1 - py))
    grad = a * G * (onehot - p)
    hess = a * (dG * py * (onehot - p) ** 2 - G * p * (1 - p))
    return grad, hess
