"""The penalised objective of a linear model, over an nbloss loss.

Parameters ``w`` are the flat float64 vector of ``coef`` (L, d) followed, with
an intercept, by ``intercept`` (L,).  Margins are ``Z = X @ coef.T +
intercept``, (n, L): L = 1 for a binary logit or a regression, K for softmax.
The objective is the loss's weighted mean (``reduction="mean"``) plus
``alpha / 2 * ||coef||^2``; the intercept is not penalised.

One evaluation reads ``X`` twice (``X @ coef.T`` and ``G.T @ X``, both BLAS or
SciPy sparse products) and runs one fused kernel call for the loss and its
gradient in margin space.  A Hessian-vector product reads ``X`` twice more and
uses the curvature at the last point, computed once per point:

* element-wise losses (binary logit, regression): the kernel's exact diagonal
  Hessian ``h``; ``H v = X.T (h * (X v)) + alpha v``;
* softmax cross-entropy: the row Hessian ``s_i (diag p_i - p_i p_i^T)``
  (class weights and label smoothing do not change it once class weights are
  folded into ``s``, since the smoothed target of a row sums to 1).

Softmax focal loss has no cheap exact Hessian-vector product; its estimator
uses L-BFGS.

The mean is taken over ``total_weight`` (default: the sum of this ``X``'s
weights), so the objective of one row block of a larger dataset, built with
the whole dataset's total weight and ``alpha=0``, is that block's share of the
whole objective: the Dask objective (:mod:`._dask`) sums such shares.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._threading import launch
from ..kernels.softmax import hessian_product
from ..losses import CrossEntropy, _ElementwiseLoss


def classification_target(labels: np.ndarray, n_classes: int, label_smoothing: float, dtype) -> np.ndarray:
    """``target`` for class indices: (n,) int64 for softmax (K > 2), else the (n, 1) binary target in
    ``dtype``, mixed with 1/2 by ``label_smoothing``."""
    if n_classes > 2:
        return labels.astype(np.int64)
    target = labels.astype(dtype)[:, None]
    if label_smoothing:
        target = target * dtype.type(1.0 - label_smoothing) + dtype.type(label_smoothing / 2)
    return target


def linear_margins(X, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """(n, L) margins ``X @ coef.T + intercept`` of a fitted model in ``X``'s dtype (dense or sparse ``X``)."""
    z = X @ coef.T.astype(X.dtype, copy=False)
    return np.asarray(z) + np.atleast_1d(intercept).astype(X.dtype)


class PenalisedLinear:
    """What the in-memory and the Dask objective share: the layout of ``w`` and the L2 penalty.

    ``n_passes`` counts reads of ``X`` (each product one), reported by the estimators.
    """

    def __init__(self, loss, n_outputs: int, n_features: int, alpha: float, fit_intercept: bool, dtype):
        self.loss = loss
        self.n_outputs = n_outputs
        self.n_features = n_features
        self.alpha = float(alpha)
        self.fit_intercept = fit_intercept
        self.dtype = np.dtype(dtype)
        self.n_passes = 0

    @property
    def has_hessp(self) -> bool:
        return isinstance(self.loss, (CrossEntropy, _ElementwiseLoss))

    @property
    def size(self) -> int:
        return self.n_outputs * (self.n_features + int(self.fit_intercept))

    def unpack(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(coef (L, d), intercept (L,))`` views of ``w`` (zeros for no intercept)."""
        k, d = self.n_outputs, self.n_features
        coef = w[: k * d].reshape(k, d)
        intercept = w[k * d:] if self.fit_intercept else np.zeros(k)
        return coef, intercept

    def penalty(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """``alpha / 2 * ||coef||^2`` and its gradient (float64 of ``w``'s shape; it is linear, so the
        gradient at ``v`` is also the penalty's Hessian times ``v``)."""
        n_coef = self.n_outputs * self.n_features
        gradient = np.zeros(self.size)
        gradient[:n_coef] = self.alpha * w[:n_coef]
        return 0.5 * self.alpha * float(w[:n_coef] @ w[:n_coef]), gradient


class LinearObjective(PenalisedLinear):
    """Value, gradient and Hessian-vector products of a penalised linear model.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n, d), float32 or float64
    target : ndarray
        ``y_true`` as ``loss`` takes it: (n,) class indices for softmax losses, else (n, L).
    sample_weight : ndarray of shape (n,)
        In ``X``'s dtype; class weights already folded in.
    loss : nbloss loss object
    n_outputs : int
        L (1 for element-wise losses with one output, K for softmax).
    alpha : float
    fit_intercept : bool
    total_weight : float, optional
        The weight the mean is taken over (default ``sample_weight.sum()``).
    """

    def __init__(self, X, target, sample_weight, loss, n_outputs: int, alpha: float, fit_intercept: bool,
                 total_weight: float | None = None):
        super().__init__(loss, n_outputs, X.shape[1], alpha, fit_intercept, X.dtype)
        self.X = X
        self.target = target
        self.sample_weight = sample_weight
        self.own_weight = float(np.sum(sample_weight, dtype=np.float64))
        self.total_weight = self.own_weight if total_weight is None else float(total_weight)
        # Buffers reused by every evaluation: margins (and the point they are at) and gradient; for
        # Hessian-vector products, direction margins and the curvature product; ones for the intercept's
        # column sums.
        n = X.shape[0]
        self._z, self._grad = (np.empty((n, n_outputs), dtype=self.dtype) for _ in range(2))
        self._z_at = None
        if self.has_hessp:
            self._zv, self._hz = (np.empty((n, n_outputs), dtype=self.dtype) for _ in range(2))
        self._ones = np.ones(n, dtype=self.dtype)
        self._curvature_at = None
        self._curvature = None

    def margins(self, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, L) margins in ``X``'s dtype, into ``out`` if given."""
        coef, intercept = self.unpack(w)
        out = np.empty((self.X.shape[0], self.n_outputs), dtype=self.dtype) if out is None else out
        coef_t = coef.T.astype(self.dtype)
        self.n_passes += 1
        if sp.issparse(self.X):
            out[...] = self.X @ coef_t
        else:
            np.matmul(self.X, coef_t, out=out)
        if self.fit_intercept:
            out += intercept.astype(self.dtype)
        return out

    def _back(self, g: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Pull a margin-space (n, L) array back to parameter space: ``scale * [G.T @ X, G.sum(0)]``,
        float64 of ``w``'s shape."""
        k, d = self.n_outputs, self.n_features
        out = np.zeros(self.size)
        self.n_passes += 1
        gx = (self.X.T @ g).T if sp.issparse(self.X) else g.T @ self.X
        out[: k * d] = np.asarray(gx).ravel()
        if self.fit_intercept:
            out[k * d:] = self._ones @ g
        if scale != 1.0:
            out *= scale
        return out

    def value_and_gradient(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value and its gradient (float64, shape of ``w``)."""
        penalty, penalty_gradient = self.penalty(w)
        if self.own_weight == 0:  # a block of a larger dataset with no weight: no share of the mean
            return penalty, penalty_gradient
        z = self.margins(w, self._z)
        self._z_at = w.copy()
        value, g = self.loss.loss_gradient(self.target, z, self.sample_weight, reduction="mean",
                                           gradient_out=self._grad)
        # the kernel's mean is over this X's weights; a block's share is rescaled on the d-sized results
        share = self.own_weight / self.total_weight
        return float(value) * share + penalty, self._back(g, scale=share) + penalty_gradient

    def curvature(self, w: np.ndarray):
        """Margin-space curvature at ``w`` per unit of the mean: the (n, L) diagonal Hessian, or
        (softmax) the probabilities (n, K) and row weights (n,).  Computed once per point, from the
        margins of the last evaluation when it was at ``w`` (Newton asks at the point it just accepted)."""
        if self._curvature_at is None or not np.array_equal(self._curvature_at, w):
            z = self._z if self._z_at is not None and np.array_equal(self._z_at, w) else self.margins(w)
            scale = 1.0 / self.total_weight
            if isinstance(self.loss, CrossEntropy):
                self._curvature = (self.loss.predict_proba(z), (self.sample_weight * scale).astype(self.dtype))
            else:
                self._curvature = self.loss.hessian(self.target, z, self.sample_weight) * self.dtype.type(scale)
            self._curvature_at = w.copy()
        return self._curvature

    def hessp_at(self, curvature, v: np.ndarray) -> np.ndarray:
        """Hessian times ``v`` (float64, shape of ``w``), given :meth:`curvature` at the point."""
        zv = self.margins(v, self._zv)
        if isinstance(curvature, tuple):
            launch(hessian_product, *curvature, zv, self._hz)
        else:
            np.multiply(curvature, zv, out=self._hz)
        return self._back(self._hz) + self.penalty(v)[1]

    def hessp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian of the objective at ``w`` times ``v`` (float64, shape of ``w``)."""
        return self.hessp_at(self.curvature(w), v)
