"""Public loss objects.

Conventions (shared by every class, see ``shared/nbloss-api.md`` §1):

* Arguments are ``(y_true, raw_prediction)``; ``raw_prediction`` is in link
  space (logits, or the prediction itself for regression) and may be float32 or
  float64; every returned array has its dtype.
* ``gradient``, ``hessian`` and ``gradient_hessian`` return the element-wise
  derivatives of each sample's weighted loss ``w_i * l_i`` (the exact diagonal
  Hessian), with the shape of ``raw_prediction``.
* ``reduction="none"`` gives per-sample weighted losses ((n,) for softmax
  losses, the shape of ``raw_prediction`` for element-wise ones); ``"sum"``
  their sum; ``"mean"`` that sum over the total weight (softmax losses: the sum
  of ``sample_weight * class_weight[y]`` over counted rows, PyTorch's
  normalisation; soft targets: the sum of ``sample_weight``; element-wise
  losses: the sum of ``sample_weight`` times the number of outputs per row).

A loss object holds only its parameters: cheap to create, picklable, and safe
to share between threads.  The numerics live in :mod:`nbloss.kernels`.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from . import _validation as v
from ._threading import launch
from .kernels import elementwise as ew
from .kernels import softmax as sm
from .kernels.sigmoid import sigmoid as _sigmoid_kernel

__all__ = [
    "CrossEntropy",
    "FocalLoss",
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "HuberLoss",
    "PseudoHuberLoss",
    "SquaredError",
]


class _Problem(NamedTuple):
    """Validated inputs of one call."""

    raw: np.ndarray  # (n, L), C-contiguous, float32/float64
    shape: tuple  # the caller's raw_prediction shape
    target: np.ndarray  # kernel targets: int64 labels (n,) or floats (n, L)
    y_true: object  # the caller's y_true, for error messages
    sample_weight: np.ndarray  # (n,) or (0,) for none
    soft: bool  # softmax losses: targets are class probabilities


class _Loss:
    """Public methods, written once over three hooks of each family:
    ``_prepare`` (validation), ``_run`` (one kernel pass) and
    ``_total_weight`` (the denominator of ``"mean"``)."""

    _per_sample_loss_shape_is_rows = False

    # ----------------------------------------------------------------- hooks
    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raise NotImplementedError

    def _run(self, prob: _Problem, grad_scale, loss_out, grad_out, hess_out) -> float:
        raise NotImplementedError

    def _total_weight(self, prob: _Problem) -> float:
        raise NotImplementedError

    # ---------------------------------------------------------------- shared
    def _none_shape(self, prob: _Problem):
        return (prob.raw.shape[0],) if self._per_sample_loss_shape_is_rows else prob.raw.shape

    def _mean_denominator(self, prob: _Problem) -> float:
        total = self._total_weight(prob)
        if not total > 0:
            raise ValueError(
                "reduction='mean' is undefined: the total weight of the counted rows is zero "
                "(empty input, all rows ignored, or all weights zero)"
            )
        return total

    def _derivative_buffers(self, prob, gradient_out, hessian_out, want_grad, want_hess):
        dtype = prob.raw.dtype
        empty = np.empty((0, prob.raw.shape[1]), dtype=dtype)
        grad = v.output_array(gradient_out, "gradient_out", prob.shape, dtype, prob.raw) if want_grad else None
        hess = v.output_array(hessian_out, "hessian_out", prob.shape, dtype, prob.raw) if want_hess else None
        if want_grad and want_hess:
            v.check_distinct(grad, hess)
        return grad, hess, (empty if grad is None else grad.reshape(prob.raw.shape)), (
            empty if hess is None else hess.reshape(prob.raw.shape)
        )

    def _evaluate(self, y_true, raw_prediction, sample_weight, reduction, gradient_out=None,
                  want_grad=False):
        v.check_reduction(reduction)
        prob = self._prepare(y_true, raw_prediction, sample_weight)
        dtype = prob.raw.dtype
        denominator = self._mean_denominator(prob) if reduction == "mean" else 1.0
        loss_none = np.empty(self._none_shape(prob), dtype=dtype) if reduction == "none" else None
        loss_out = loss_none if loss_none is not None else np.empty((0,) * len(self._none_shape(prob)), dtype=dtype)
        grad, _, grad2d, empty = self._derivative_buffers(prob, gradient_out, None, want_grad, False)
        total = self._run(prob, 1.0 / denominator, loss_out, grad2d, empty)
        if reduction == "none":
            value = loss_none.reshape(prob.shape) if not self._per_sample_loss_shape_is_rows else loss_none
        else:
            value = dtype.type(total / denominator)
        return value, grad

    def loss(self, y_true, raw_prediction, sample_weight=None, reduction: str = "mean"):
        """Loss value.

        Parameters
        ----------
        y_true : array-like
            Targets; shape depends on the loss (see the class docstring).
        raw_prediction : array-like of float32 or float64
            Link-space predictions, (n,) or (n, L) / (n, K).
        sample_weight : array-like of shape (n,), optional
            Finite, non-negative per-sample weights.
        reduction : {"mean", "sum", "none"}, default "mean"

        Returns
        -------
        value : scalar of raw_prediction's dtype, or ndarray for ``"none"``
            (shape (n,) for softmax losses, raw_prediction's shape otherwise).
        """
        return self._evaluate(y_true, raw_prediction, sample_weight, reduction)[0]

    def loss_gradient(self, y_true, raw_prediction, sample_weight=None, reduction: str = "mean",
                      gradient_out=None):
        """Loss value and its exact gradient, in one pass.

        Returns
        -------
        value : as :meth:`loss` with the same ``reduction``
        gradient : ndarray, shape of raw_prediction
            Gradient of ``value`` (for ``"none"``, of the sum of the per-sample values).
        """
        return self._evaluate(y_true, raw_prediction, sample_weight, reduction, gradient_out, want_grad=True)

    def gradient(self, y_true, raw_prediction, sample_weight=None, gradient_out=None):
        """Per-sample gradient of ``w_i * l_i``, shape of raw_prediction."""
        return self.gradient_hessian(y_true, raw_prediction, sample_weight, gradient_out, None, _want=(True, False))[0]

    def hessian(self, y_true, raw_prediction, sample_weight=None, hessian_out=None):
        """Exact diagonal Hessian of ``w_i * l_i``, shape of raw_prediction."""
        return self.gradient_hessian(y_true, raw_prediction, sample_weight, None, hessian_out, _want=(False, True))[1]

    def gradient_hessian(self, y_true, raw_prediction, sample_weight=None, gradient_out=None,
                         hessian_out=None, *, _want=(True, True)):
        """Per-sample gradient and exact diagonal Hessian, in one pass.

        Returns
        -------
        gradient, hessian : ndarray, each of the shape and dtype of raw_prediction
        """
        want_grad, want_hess = _want
        prob = self._prepare(y_true, raw_prediction, sample_weight)
        grad, hess, grad2d, hess2d = self._derivative_buffers(prob, gradient_out, hessian_out, want_grad, want_hess)
        loss_out = np.empty((0,) * len(self._none_shape(prob)), dtype=prob.raw.dtype)
        self._run(prob, 1.0, loss_out, grad2d, hess2d)
        return grad, hess

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={val!r}" for k, val in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self) -> dict:
        return {}

    def __eq__(self, other) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        a, b = self._params(), other._params()
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray)
                                            else a[k] == b[k] for k in a)

    __hash__ = None


def _minimise_constant(objective, x0: np.ndarray) -> np.ndarray:
    """Minimise a smooth objective of a constant raw score (L-BFGS-B, tight tolerances)."""
    from scipy.optimize import minimize

    res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-12, "ftol": 1e-15})
    return res.x


# --------------------------------------------------------------------- softmax
class _SoftmaxLoss(_Loss):
    _per_sample_loss_shape_is_rows = True
    _accepts_soft_targets = False

    def __init__(self, ignore_index):
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
            raise TypeError(f"ignore_index must be an integer or None, got {type(ignore_index).__name__}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def _ignore(self):
        return (False, 0) if self.ignore_index is None else (True, self.ignore_index)

    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raw, shape = v.as_raw(raw_prediction, two_d_only=True)
        n = raw.shape[0]
        y_arr = np.asarray(y_true)
        soft = y_arr.ndim == 2
        if soft:
            if not self._accepts_soft_targets:
                raise ValueError(f"{type(self).__name__} takes class indices: y_true must be 1-D, got shape {y_arr.shape}")
            target = v.as_targets(y_arr, raw, shape)
        else:
            target = v.as_labels(y_arr, n)
        sw = v.as_sample_weight(sample_weight, n, raw.dtype)
        return _Problem(raw, shape, target, y_true, sw, soft)

    def _row_class_weight(self, prob: _Problem) -> np.ndarray:
        """(K,) weights whose ``w[y]`` counts a row in the mean's denominator."""
        raise NotImplementedError

    def _check_labels(self, prob: _Problem, class_weight: np.ndarray) -> float:
        has_ignore, ignore = self._ignore()
        total, bad = launch(sm.label_weight_total, prob.target, prob.sample_weight, class_weight, has_ignore, ignore)
        self._raise(prob, bad, prob.raw.shape[0])
        return total

    def _raise(self, prob: _Problem, bad_target: int, bad_raw: int) -> None:
        k = prob.raw.shape[1]
        if prob.soft:
            rule = "must hold class probabilities: entries in [0, 1], rows summing to 1"
        else:
            rule = f"must hold class indices in [0, {k})" + (
                f" or ignore_index={self.ignore_index}" if self.ignore_index is not None else "")
        v.raise_for_bad_rows(prob.raw.shape[0], bad_target, bad_raw, prob.y_true, prob.raw, rule)

    def _total_weight(self, prob: _Problem) -> float:
        if prob.soft:
            sw = prob.sample_weight
            return float(sw.sum(dtype=np.float64)) if sw.shape[0] else float(prob.raw.shape[0])
        return self._check_labels(prob, self._row_class_weight(prob))

    def predict_proba(self, raw_prediction):
        """Softmax of the logits, computed stably.

        Parameters
        ----------
        raw_prediction : array-like of shape (n, K)

        Returns
        -------
        proba : ndarray of shape (n, K), dtype of raw_prediction
        """
        raw, _ = v.as_raw(raw_prediction, two_d_only=True)
        out = np.empty_like(raw)
        bad = launch(sm.softmax, raw, out)
        v.raise_for_bad_rows(raw.shape[0], raw.shape[0], bad, None, raw, "")
        return out

    def _class_totals(self, y_true, sample_weight, per_row_class_weight: np.ndarray | None = None):
        """Validated problem plus per-class weighted label counts (hard labels)."""
        y_arr = np.asarray(y_true)
        n = y_arr.shape[0] if y_arr.ndim else 0
        if y_arr.ndim == 1:
            labels = v.as_labels(y_arr, n)
            k = self._n_classes_hint(labels)
            prob = _Problem(np.empty((n, k)), (n, k), labels, y_true, v.as_sample_weight(sample_weight, n, np.float64), False)
            self._check_labels(prob, np.ones(k))
            return prob, k
        raise ValueError("y_true must be 1-D class indices here")

    def _n_classes_hint(self, labels: np.ndarray) -> int:
        counted = labels if self.ignore_index is None else labels[labels != self.ignore_index]
        if counted.size == 0:
            raise ValueError("y_true has no counted rows (empty, or all rows at ignore_index)")
        k = max(int(counted.max()) + 1, self._known_classes())
        return max(k, 2)

    def _known_classes(self) -> int:
        return 0


class CrossEntropy(_SoftmaxLoss):
    """Multiclass cross-entropy on logits (PyTorch's ``cross_entropy``).

    Parameters
    ----------
    class_weight : array-like of shape (K,), "balanced" or None
        Per-class weights (PyTorch's ``weight``).  ``"balanced"`` uses
        ``n / (K * count_k)`` from the counted rows of each call's ``y_true``
        (scikit-learn's rule; soft targets count their probabilities).  A class
        absent from the counted rows gets weight 0: it has nothing to balance.
    label_smoothing : float in [0, 1), default 0
        Mixes the target with the uniform distribution, as PyTorch.
    ignore_index : int or None
        Rows whose label equals it contribute nothing and do not count in the mean.

    Notes
    -----
    ``y_true`` is (n,) class indices, or (n, K) class probabilities (soft
    targets; rows sum to 1); ``raw_prediction`` is (n, K) logits, K >= 2.  With
    soft targets ``"mean"`` divides by the sum of ``sample_weight``, as PyTorch
    divides by n.
    """

    _accepts_soft_targets = True

    def __init__(self, class_weight=None, label_smoothing: float = 0.0, ignore_index: int | None = None):
        super().__init__(ignore_index)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be None, an array or 'balanced', got {class_weight!r}")
        elif class_weight is not None:
            class_weight = np.array(class_weight, dtype=np.float64)
            class_weight = v.per_class_vector(class_weight, "class_weight", class_weight.shape[0] if class_weight.ndim == 1 else -1)
        self.class_weight = class_weight
        smoothing = v.positive_scalar(label_smoothing, "label_smoothing", allow_zero=True)
        if not smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = smoothing

    def _params(self):
        return {"class_weight": self.class_weight, "label_smoothing": self.label_smoothing,
                "ignore_index": self.ignore_index}

    def _known_classes(self) -> int:
        return self.class_weight.shape[0] if isinstance(self.class_weight, np.ndarray) else 0

    def _weights(self, prob: _Problem) -> np.ndarray:
        k = prob.raw.shape[1]
        if self.class_weight is None:
            return np.ones(k)
        if isinstance(self.class_weight, np.ndarray):
            return v.per_class_vector(self.class_weight, "class_weight", k)
        # "balanced"
        if prob.soft:
            counts = prob.target.sum(axis=0, dtype=np.float64)
            n_counted = float(prob.raw.shape[0])
        else:
            self._check_labels(prob, np.ones(k))
            labels = prob.target
            if self.ignore_index is not None:
                labels = labels[labels != self.ignore_index]
            counts = np.bincount(labels, minlength=k).astype(np.float64)
            n_counted = float(labels.shape[0])
        present = counts > 0
        return np.divide(n_counted, k * counts, out=np.zeros(k), where=present)

    _row_class_weight = _weights

    def _run(self, prob, grad_scale, loss_out, grad_out, hess_out):
        w = self._weights(prob)
        k = w.shape[0]
        eps = self.label_smoothing
        want_grad, want_hess = grad_out.shape[0] > 0, hess_out.shape[0] > 0
        if prob.soft:
            # rows rounded to float32 are off 1 by ~K * 6e-8; anything further is not a distribution
            tol = max(float(np.sqrt(np.finfo(prob.raw.dtype).eps)), 1e-6)
            total, bad_target, bad_raw = launch(
                sm.cross_entropy_soft, prob.target, prob.raw, prob.sample_weight, w, eps, tol,
                grad_scale, loss_out, grad_out, hess_out, want_grad, want_hess)
        else:
            smooth_w = (eps / k) * w
            # sum_{j != k} smooth_w[j] from prefix and suffix sums: no cancellation
            prefix = np.concatenate(([0.0], np.cumsum(smooth_w)[:-1]))
            suffix = np.concatenate((np.cumsum(smooth_w[::-1])[::-1][1:], [0.0]))
            has_ignore, ignore = self._ignore()
            total, bad_target, bad_raw = launch(
                sm.cross_entropy_labels, prob.target, prob.raw, prob.sample_weight, (1.0 - eps) * w,
                smooth_w, prefix + suffix, float(smooth_w.sum()), has_ignore, ignore, grad_scale,
                loss_out, grad_out, hess_out, want_grad, want_hess)
        self._raise(prob, bad_target, bad_raw)
        return total

    def init_raw_prediction(self, y_true, sample_weight=None) -> np.ndarray:
        """Constant logits minimising the loss: centred log of the weighted class mix.

        Parameters
        ----------
        y_true : array-like of shape (n,) or (n, K)
        sample_weight : array-like of shape (n,), optional

        Returns
        -------
        raw : ndarray of shape (K,), float64
            Logits with zero mean; probabilities are clipped at float64 eps so
            that an absent class gets a finite (very negative) logit.
        """
        y_arr = np.asarray(y_true)
        if y_arr.ndim == 2:
            n, k = y_arr.shape
            q = v.as_float_array(y_arr, "y_true", dtype=np.float64)
            prob = _Problem(np.empty((n, k)), (n, k), q, y_true, v.as_sample_weight(sample_weight, n, np.float64), True)
            w = self._weights(prob)
            sw = prob.sample_weight if prob.sample_weight.shape[0] else np.ones(n)
            if ((q < 0) | (q > 1) | ~np.isfinite(q)).any() or (np.abs(q.sum(1) - 1) > 1e-8).any():
                bad = int(np.argmax(((q < 0) | (q > 1) | ~np.isfinite(q)).any(1) | (np.abs(q.sum(1) - 1) > 1e-8)))
                raise ValueError(f"y_true must hold class probabilities; row {bad} has {q[bad]!r}")
            mix = sw @ q
            totals = w * ((1 - self.label_smoothing) * mix + self.label_smoothing / k * sw.sum())
        else:
            prob, k = self._class_totals(y_true, sample_weight)
            prob = prob._replace(raw=np.empty((prob.raw.shape[0], k)))
            w = self._weights(prob)
            labels = prob.target
            sw = prob.sample_weight if prob.sample_weight.shape[0] else np.ones(labels.shape[0])
            if self.ignore_index is not None:
                keep = labels != self.ignore_index
                labels, sw = labels[keep], sw[keep]
            eps = self.label_smoothing
            totals = np.bincount(labels, weights=sw * (1 - eps) * w[labels], minlength=k) + (eps / k) * w * sw.sum()
        if not totals.sum() > 0:
            raise ValueError("y_true and sample_weight give zero total weight")
        p = np.maximum(totals / totals.sum(), np.finfo(np.float64).eps)
        raw = np.log(p)
        return raw - raw.mean()


class FocalLoss(_SoftmaxLoss):
    """Softmax focal loss ``-alpha[y] (1 - p_y)^gamma log p_y``, ``p = softmax(raw)``.

    Parameters
    ----------
    gamma : float >= 0, default 2.0
        Focusing parameter; 0 gives (alpha-weighted) cross-entropy.
    alpha : array-like of shape (K,) or None
        Per-class weights; they also weight the mean's denominator, like
        ``class_weight`` in :class:`CrossEntropy`.
    ignore_index : int or None

    Notes
    -----
    ``y_true`` is (n,) class indices; ``raw_prediction`` (n, K) logits.  The
    Hessian is the exact diagonal and is negative for badly misclassified rows.
    """

    def __init__(self, gamma: float = 2.0, alpha=None, ignore_index: int | None = None):
        super().__init__(ignore_index)
        self.gamma = v.positive_scalar(gamma, "gamma", allow_zero=True)
        if alpha is not None:
            alpha = np.array(alpha, dtype=np.float64)
            alpha = v.per_class_vector(alpha, "alpha", alpha.shape[0] if alpha.ndim == 1 else -1)
        self.alpha = alpha

    def _params(self):
        return {"gamma": self.gamma, "alpha": self.alpha, "ignore_index": self.ignore_index}

    def _known_classes(self) -> int:
        return 0 if self.alpha is None else self.alpha.shape[0]

    def _row_class_weight(self, prob: _Problem) -> np.ndarray:
        k = prob.raw.shape[1]
        return np.ones(k) if self.alpha is None else v.per_class_vector(self.alpha, "alpha", k)

    def _run(self, prob, grad_scale, loss_out, grad_out, hess_out):
        has_ignore, ignore = self._ignore()
        total, bad_target, bad_raw = launch(
            sm.focal_labels, prob.target, prob.raw, prob.sample_weight, self._row_class_weight(prob),
            self.gamma, has_ignore, ignore, grad_scale, loss_out, grad_out, hess_out,
            grad_out.shape[0] > 0, hess_out.shape[0] > 0)
        self._raise(prob, bad_target, bad_raw)
        return total

    def init_raw_prediction(self, y_true, sample_weight=None) -> np.ndarray:
        """Constant logits minimising the loss (numerically; returns (K,) float64, zero mean).

        The loss of a constant prediction depends on the data only through the
        weighted count of each class, so the search runs on K aggregated rows.
        """
        prob, k = self._class_totals(y_true, sample_weight)
        labels = prob.target
        sw = prob.sample_weight if prob.sample_weight.shape[0] else np.ones(labels.shape[0])
        if self.ignore_index is not None:
            keep = labels != self.ignore_index
            labels, sw = labels[keep], sw[keep]
        counts = np.bincount(labels, weights=sw, minlength=k)
        classes = np.arange(k)
        present = counts > 0
        start = np.log(np.maximum(counts / counts.sum(), np.finfo(np.float64).eps))

        def objective(z):
            value, grad = self.loss_gradient(classes[present], np.broadcast_to(z, (int(present.sum()), k)),
                                             counts[present], reduction="sum")
            total = counts.sum()
            return float(value) / total, grad.sum(axis=0) / total

        raw = _minimise_constant(objective, start - start.mean())
        return raw - raw.mean()


# ----------------------------------------------------------------- element-wise
class _ElementwiseLoss(_Loss):
    _kind: int
    _target_rule = "must be finite"

    def _column_params(self, n_cols: int) -> tuple[np.ndarray, float]:
        """``(col_param (L,), extra)`` for the element formula."""
        raise NotImplementedError

    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raw, shape = v.as_raw(raw_prediction, two_d_only=False)
        target = v.as_targets(y_true, raw, shape)
        sw = v.as_sample_weight(sample_weight, raw.shape[0], raw.dtype)
        return _Problem(raw, shape, target, y_true, sw, False)

    def _total_weight(self, prob: _Problem) -> float:
        n, n_cols = prob.raw.shape
        sw = prob.sample_weight
        return (float(sw.sum(dtype=np.float64)) if sw.shape[0] else float(n)) * n_cols

    def _run(self, prob, grad_scale, loss_out, grad_out, hess_out):
        col_param, extra = self._column_params(prob.raw.shape[1])
        total, bad_target, bad_raw = launch(
            ew.elementwise, self._kind, prob.target, prob.raw, prob.sample_weight, col_param, extra,
            grad_scale, loss_out, grad_out, hess_out, grad_out.shape[0] > 0, hess_out.shape[0] > 0)
        v.raise_for_bad_rows(prob.raw.shape[0], bad_target, bad_raw, prob.y_true, prob.raw, self._target_rule)
        return total

    def _init_problem(self, y_true, sample_weight):
        y = v.as_float_array(y_true, "y_true", dtype=np.float64)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(f"y_true must be a non-empty 1-D or 2-D array, got shape {y.shape}")
        y2 = y.reshape(y.shape[0], -1)
        prob = self._prepare(y, y, sample_weight)  # validates y (as targets) and weights
        self._run(prob, 1.0, np.empty((0, y2.shape[1])), np.empty((0, y2.shape[1])), np.empty((0, y2.shape[1])))
        sw = prob.sample_weight if prob.sample_weight.shape[0] else np.ones(y.shape[0])
        if not sw.sum() > 0:
            raise ValueError("sample_weight sums to zero: no constant prediction is defined")
        return y, y2, sw

    def _numeric_init(self, y_true, sample_weight, start) -> np.ndarray | np.floating:
        y, y2, sw = self._init_problem(y_true, sample_weight)

        def objective(z):
            value, grad = self.loss_gradient(y2, np.broadcast_to(z, y2.shape), sw, reduction="mean")
            return float(value), grad.sum(axis=0)

        raw = _minimise_constant(objective, start(y2, sw))
        return np.float64(raw[0]) if y.ndim == 1 else raw

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Constant raw score minimising the weighted loss.

        Returns
        -------
        raw : float64 scalar for 1-D ``y_true``, else ndarray of shape (L,) / (T,)
        """
        return self._numeric_init(y_true, sample_weight, _weighted_median)


def _weighted_median(y2: np.ndarray, sw: np.ndarray) -> np.ndarray:
    out = np.empty(y2.shape[1])
    for j in range(y2.shape[1]):
        order = np.argsort(y2[:, j])
        cum = np.cumsum(sw[order])
        out[j] = y2[order[np.searchsorted(cum, 0.5 * cum[-1])], j]
    return out


class _SigmoidLoss(_ElementwiseLoss):
    _target_rule = "must hold values in [0, 1]"

    def predict_proba(self, raw_prediction):
        """Sigmoid of the logits, computed stably.

        Parameters
        ----------
        raw_prediction : array-like of shape (n,) or (n, L)

        Returns
        -------
        proba : ndarray of raw_prediction's shape and dtype
            Probability of the positive class for each output.
        """
        raw, shape = v.as_raw(raw_prediction, two_d_only=False)
        out = np.empty_like(raw)
        bad = launch(_sigmoid_kernel, raw, out)
        v.raise_for_bad_rows(raw.shape[0], raw.shape[0], bad, None, raw, "")
        return out.reshape(shape)


class BinaryCrossEntropy(_SigmoidLoss):
    """Binary cross-entropy on logits (PyTorch's ``binary_cross_entropy_with_logits``).

    Parameters
    ----------
    pos_weight : float, array-like of shape (L,), or None
        Weight of the positive term of each output (> 0 boosts recall).

    Notes
    -----
    ``y_true`` has the shape of ``raw_prediction``: (n,) or (n, L)
    (multilabel), values in [0, 1].
    """

    _kind = ew.BCE

    def __init__(self, pos_weight=None):
        if pos_weight is not None:
            arr = np.array(pos_weight, dtype=np.float64)
            if arr.ndim == 0:
                pos_weight = v.positive_scalar(float(arr), "pos_weight", allow_zero=True)
            else:
                pos_weight = v.per_class_vector(arr, "pos_weight", arr.shape[0] if arr.ndim == 1 else -1)
        self.pos_weight = pos_weight

    def _params(self):
        return {"pos_weight": self.pos_weight}

    def _column_params(self, n_cols):
        if self.pos_weight is None:
            return np.ones(n_cols), 0.0
        if isinstance(self.pos_weight, float):
            return np.full(n_cols, self.pos_weight), 0.0
        return v.per_class_vector(self.pos_weight, "pos_weight", n_cols), 0.0

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Logit of the weighted positive rate: ``log(sum s pw y / sum s (1 - y))`` per output.

        Returns a float64 scalar for 1-D ``y_true``, else (L,); rates are
        clipped at float64 eps so an all-0 or all-1 column stays finite.
        """
        y, y2, sw = self._init_problem(y_true, sample_weight)
        pw, _ = self._column_params(y2.shape[1])
        pos = pw * (sw @ y2)
        neg = sw @ (1.0 - y2)
        eps = np.finfo(np.float64).eps
        rate = np.clip(pos / (pos + neg), eps, 1 - eps)
        raw = np.log(rate) - np.log1p(-rate)
        return np.float64(raw[0]) if y.ndim == 1 else raw


class BinaryFocalLoss(_SigmoidLoss):
    """Sigmoid focal loss (torchvision's ``sigmoid_focal_loss``).

    Parameters
    ----------
    gamma : float >= 0, default 2.0
    alpha : float in [0, 1] or None, default 0.25
        Weight of positives (``1 - alpha`` for negatives); ``None`` disables.

    Notes
    -----
    ``y_true`` has the shape of ``raw_prediction``, (n,) or (n, L), values in [0, 1].
    """

    _kind = ew.BINARY_FOCAL

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25):
        self.gamma = v.positive_scalar(gamma, "gamma", allow_zero=True)
        if alpha is not None:
            alpha = v.positive_scalar(alpha, "alpha", allow_zero=True)
            if alpha > 1:
                raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
        self.alpha = alpha

    def _params(self):
        return {"gamma": self.gamma, "alpha": self.alpha}

    def _column_params(self, n_cols):
        return np.full(n_cols, self.gamma), -1.0 if self.alpha is None else self.alpha

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Constant logits minimising the loss (numerically, from the BCE optimum)."""
        return self._numeric_init(y_true, sample_weight, _bce_start)


def _bce_start(y2, sw):
    eps = np.finfo(np.float64).eps
    rate = np.clip((sw @ y2) / sw.sum(), eps, 1 - eps)
    return np.log(rate) - np.log1p(-rate)


class HuberLoss(_ElementwiseLoss):
    """Huber loss: ``r^2 / 2`` for ``|r| <= delta``, else ``delta (|r| - delta / 2)``, ``r = raw - y``.

    Parameters
    ----------
    delta : float > 0, default 1.0

    Notes
    -----
    ``y_true`` and ``raw_prediction`` are (n,) or (n, T).  The Hessian is 1
    inside ``|r| <= delta`` and 0 outside (exact; adapters may floor it).
    """

    _kind = ew.HUBER

    def __init__(self, delta: float = 1.0):
        self.delta = v.positive_scalar(delta, "delta")

    def _params(self):
        return {"delta": self.delta}

    def _column_params(self, n_cols):
        return np.full(n_cols, self.delta), 0.0


class PseudoHuberLoss(HuberLoss):
    """Pseudo-Huber loss ``delta^2 (sqrt(1 + (r / delta)^2) - 1)``: smooth, Hessian > 0.

    Parameters
    ----------
    delta : float > 0, default 1.0
    """

    _kind = ew.PSEUDO_HUBER


class SquaredError(_ElementwiseLoss):
    """Half squared error ``r^2 / 2`` per element, ``r = raw - y``.

    Notes
    -----
    ``y_true`` and ``raw_prediction`` are (n,) or (n, T).  An infinite
    prediction has an infinite loss and gradient (the mathematical limit).
    """

    _kind = ew.SQUARED_ERROR

    def _column_params(self, n_cols):
        return np.zeros(n_cols), 0.0

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Weighted mean of ``y_true`` (float64 scalar for 1-D, else (T,))."""
        y, y2, sw = self._init_problem(y_true, sample_weight)
        mean = (sw @ y2) / sw.sum()
        return np.float64(mean[0]) if y.ndim == 1 else mean
