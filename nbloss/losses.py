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
to share between threads.  The numerics live in :mod:`nbloss.kernels`; every
public method is one kernel pass over ``raw_prediction``.
"""

from __future__ import annotations

import copy
import functools
import numbers
from collections.abc import Callable

import numpy as np

from . import _validation as v
from . import kernels  # its modules are imported on first use (see nbloss.kernels)
from ._threading import launch

__all__ = [
    "CrossEntropy",
    "FocalLoss",
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "HuberLoss",
    "PseudoHuberLoss",
    "SquaredError",
]

_EPS = float(np.finfo(np.float64).eps)


@functools.lru_cache(maxsize=256)
def _shared_constant(shape: tuple[int, ...], value: float, dtype=np.float64) -> np.ndarray:
    """An array of ``value`` made once and shared by every call: parameters that do not change between
    calls (unit class weights, no label smoothing) and the zero-row arrays that stand for unwanted
    outputs.  Kernels only read the first and never index the second.  They stay writeable, as the
    kernels are compiled for writeable arrays (see :func:`nbloss._validation.read_only`).  Made per
    call, they were four NumPy allocations of a CrossEntropy ``gradient_hessian`` call, and about 5 of
    its 60 us at n = 1e3."""
    return np.full(shape, value, dtype=dtype)


class _Problem:
    """Validated inputs of one call.  A plain class, as one is built on every call: a NamedTuple took
    0.1 us more to build, and 0.5 us more to build again with the class weights, which need the rest."""

    __slots__ = ("raw", "shape", "target", "y_true", "sample_weight", "soft", "class_weight")

    def __init__(self, raw: np.ndarray, shape: tuple, target: np.ndarray, y_true, sample_weight: np.ndarray,
                 soft: bool):
        self.raw = raw  # (n, L) C-contiguous float32/float64
        self.shape = shape  # the caller's raw_prediction shape
        self.target = target  # int64 labels (n,) or targets (n, L) in raw's dtype
        self.y_true = y_true  # the caller's y_true, for error messages
        self.sample_weight = sample_weight  # (n,), or (0,) for none
        self.soft = soft  # softmax losses: targets are class probabilities
        self.class_weight: np.ndarray | None = None  # softmax losses: (K,) float64, resolved once per call

    def weights_or_ones(self) -> np.ndarray:
        sw = self.sample_weight
        return sw.astype(np.float64) if sw.shape[0] else np.ones(self.raw.shape[0])

    def total_sample_weight(self) -> float:
        """``weights_or_ones().sum()``, without making the ones (n itself: a sum of ones is exact)."""
        sw = self.sample_weight
        return float(sw.astype(np.float64).sum()) if sw.shape[0] else float(self.raw.shape[0])

    def replace(self, **fields) -> _Problem:
        """A copy with ``fields`` changed (for callers that keep a problem and report on another ``y_true``)."""
        new = copy.copy(self)
        for name, value in fields.items():
            setattr(new, name, value)
        return new


class _Loss:
    """The public methods, written once over the hooks that each family provides:
    ``_prepare`` (validation), ``_kernel_call`` (the one kernel pass), ``_raise``
    (its error message) and ``_total_weight`` (the denominator of ``"mean"``)."""

    _loss_per_row = False  # reduction="none" shape: (n,) if True, else raw_prediction's

    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raise NotImplementedError

    def _kernel_call(self, prob: _Problem, grad_scale: float, loss_out, grad_out, hess_out,
                     want_loss: bool) -> tuple:
        """``(kernel, arguments)`` of the one pass that fills the non-empty outputs.  The kernel returns
        ``(loss_sum, first_bad_target_row, first_bad_raw_row)``."""
        raise NotImplementedError

    def _raise(self, prob: _Problem, bad_target: int, bad_raw: int) -> None:
        """Raise for the first bad row the kernel reported (``n`` meaning none)."""
        raise NotImplementedError

    def _run(self, prob: _Problem, grad_scale: float, loss_out, grad_out, hess_out, want_loss: bool) -> float:
        """One kernel pass; fills the non-empty outputs, returns the loss sum (if ``want_loss``),
        raises on bad rows."""
        kernel, args = self._kernel_call(prob, grad_scale, loss_out, grad_out, hess_out, want_loss)
        total, bad_target, bad_raw = launch(kernel, *args)
        n = prob.raw.shape[0]
        if bad_target < n or bad_raw < n:  # the messages' rules are formatted only then
            self._raise(prob, bad_target, bad_raw)
        return total

    def _total_weight(self, prob: _Problem) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------------ plumbing
    def _empty(self, prob: _Problem, loss_shaped: bool = False) -> np.ndarray:
        """A zero-row array standing for an output the kernel must not write."""
        shape = (0,) if (loss_shaped and self._loss_per_row) else (0, prob.raw.shape[1])
        return _shared_constant(shape, 0.0, prob.raw.dtype)

    def _buffer(self, prob: _Problem, out, name: str):
        """``(returned array, (n, L) kernel view)`` for a wanted derivative."""
        raw = prob.raw
        arr = v.output_array(out, name, prob.shape, raw.dtype, raw)
        return arr, arr if arr.shape == raw.shape else arr.reshape(raw.shape)  # a reshape costs 0.25 us

    def _evaluate(self, y_true, raw_prediction, sample_weight, reduction, gradient_out, want_grad):
        v.check_reduction(reduction)
        prob = self._prepare(y_true, raw_prediction, sample_weight)
        denominator = 1.0
        if reduction == "mean":
            denominator = self._total_weight(prob)
            if not denominator > 0:
                raise ValueError("reduction='mean' is undefined: the total weight of the counted rows is zero "
                                 "(empty input, all rows ignored, or all weights zero)")
        if reduction == "none":
            per_sample = np.empty((prob.raw.shape[0],) if self._loss_per_row else prob.raw.shape, prob.raw.dtype)
        else:
            per_sample = self._empty(prob, loss_shaped=True)
        grad, grad2d = self._buffer(prob, gradient_out, "gradient_out") if want_grad else (None, self._empty(prob))
        total = self._run(prob, 1.0 / denominator, per_sample, grad2d, self._empty(prob), True)
        if reduction == "none":
            value = per_sample if self._loss_per_row else per_sample.reshape(prob.shape)
        else:
            value = prob.raw.dtype.type(total / denominator)
        return value, grad

    def _derivatives(self, y_true, raw_prediction, sample_weight, gradient_out, hessian_out, want_grad, want_hess):
        prob = self._prepare(y_true, raw_prediction, sample_weight)
        grad, grad2d = self._buffer(prob, gradient_out, "gradient_out") if want_grad else (None, self._empty(prob))
        hess, hess2d = self._buffer(prob, hessian_out, "hessian_out") if want_hess else (None, self._empty(prob))
        if want_grad and want_hess:
            v.check_distinct(grad, hess)
        self._run(prob, 1.0, self._empty(prob, loss_shaped=True), grad2d, hess2d, False)
        return grad, hess

    def _validated_for_init(self, y_true, sample_weight, raw_shape) -> _Problem:
        """Validate ``y_true`` (in the kernel, as every call does) against a zero prediction."""
        prob = self._prepare(y_true, np.zeros(raw_shape), sample_weight)
        self._run(prob, 1.0, self._empty(prob, loss_shaped=True), self._empty(prob), self._empty(prob), False)
        if not prob.total_sample_weight() > 0:
            raise ValueError("sample_weight sums to zero: no constant prediction is defined")
        return prob

    def _sum_and_total_weight(self, y_true, raw_prediction, sample_weight) -> tuple[float, float]:
        """``(loss sum, total weight)``: the numerator and denominator of ``reduction="mean"``, from one
        validation and one kernel pass (for metrics that add both up over parts of the data)."""
        prob = self._prepare(y_true, raw_prediction, sample_weight)
        total = self._run(prob, 1.0, self._empty(prob, loss_shaped=True), self._empty(prob), self._empty(prob), True)
        return float(total), float(self._total_weight(prob))

    # -------------------------------------------------------------- public API
    def loss(self, y_true, raw_prediction, sample_weight=None, reduction: str = "mean"):
        """Loss value.

        Parameters
        ----------
        y_true : array-like
            Targets; shape depends on the loss (see the class docstring).
        raw_prediction : array-like of float32 or float64
            Link-space predictions, (n,), (n, L) or (n, K).
        sample_weight : array-like of shape (n,), optional
            Finite, non-negative per-sample weights.
        reduction : {"mean", "sum", "none"}, default "mean"

        Returns
        -------
        value : scalar of raw_prediction's dtype, or ndarray for ``"none"``
            ((n,) for softmax losses, raw_prediction's shape otherwise).
        """
        return self._evaluate(y_true, raw_prediction, sample_weight, reduction, None, False)[0]

    def loss_gradient(self, y_true, raw_prediction, sample_weight=None, reduction: str = "mean",
                      gradient_out=None):
        """Loss value and its exact gradient, in one pass.

        Returns
        -------
        value : as :meth:`loss` with the same ``reduction`` (bit-identical)
        gradient : ndarray of raw_prediction's shape and dtype
            Gradient of ``value`` (for ``"none"``, of the sum of the per-sample values).
        """
        return self._evaluate(y_true, raw_prediction, sample_weight, reduction, gradient_out, True)

    def gradient(self, y_true, raw_prediction, sample_weight=None, gradient_out=None):
        """Per-sample gradient of ``w_i * l_i``: ndarray of raw_prediction's shape and dtype."""
        return self._derivatives(y_true, raw_prediction, sample_weight, gradient_out, None, True, False)[0]

    def hessian(self, y_true, raw_prediction, sample_weight=None, hessian_out=None):
        """Exact diagonal Hessian of ``w_i * l_i``: ndarray of raw_prediction's shape and dtype."""
        return self._derivatives(y_true, raw_prediction, sample_weight, None, hessian_out, False, True)[1]

    def gradient_hessian(self, y_true, raw_prediction, sample_weight=None, gradient_out=None, hessian_out=None):
        """Per-sample gradient and exact diagonal Hessian, in one pass.

        Returns
        -------
        gradient, hessian : ndarray, each of raw_prediction's shape and dtype
        """
        return self._derivatives(y_true, raw_prediction, sample_weight, gradient_out, hessian_out, True, True)

    def _params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={val!r}" for k, val in self._params().items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        mine, theirs = self._params(), other._params()
        return all(np.array_equal(mine[k], theirs[k]) if isinstance(mine[k], np.ndarray) else mine[k] == theirs[k]
                   for k in mine)

    __hash__ = None


@functools.cache
def _exponent_kinds() -> dict:
    """``{gamma: kernel name infix}`` for the exponents with kernels of their own (see
    :data:`nbloss._numerics.SMALL_INT_EXPONENTS`), imported with the kernels on first use (an import
    statement in :func:`_focal_kernel` took about a microsecond a call)."""
    from ._numerics import HALF_INT_EXPONENTS, SMALL_INT_EXPONENTS

    return {**dict.fromkeys(SMALL_INT_EXPONENTS, "_int"), **dict.fromkeys(HALF_INT_EXPONENTS, "_half")}


def _focal_kernel(gamma: float, module, prefix: str, suffix: str = ""):
    """The focal kernel of ``module`` for ``gamma``: ``prefix + "_int" + suffix`` for the integers 0 to 3 (the
    power by products chosen by selects, exact for 0, 1 and 2), ``prefix + "_half" + suffix`` for 0.5, 1.5
    and 2.5 (products and a square root), ``prefix + suffix`` (``pow_unit``) for any other."""
    return getattr(module, prefix + _exponent_kinds().get(gamma, "") + suffix)


def _minimise_constant(objective, start: np.ndarray) -> np.ndarray:
    """Minimise a smooth objective of a constant raw score (L-BFGS-B, tight tolerances)."""
    from scipy.optimize import minimize

    return minimize(objective, start, jac=True, method="L-BFGS-B",
                    options={"maxiter": 500, "gtol": 1e-12, "ftol": 1e-15}).x


# the polish below takes 2K gradients of K aggregated rows a step, K^3 work: FocalLoss's init took 0.21 s at
# K = 100 and 0.27 s at 128 with it (n = 1e5), 0.05 s at 129 without; beyond, L-BFGS's answer stands
# (its mean gradient 3e-11 at K = 129 there)
_POLISH_MAX_CLASSES = 128


def _newton_polish_coupled(gradient, z: np.ndarray, steps: int = 3, h: float = 1e-6) -> np.ndarray:
    """``z`` after up to ``steps`` Newton steps on ``gradient(z) = 0``, each kept only if it shrinks the
    gradient's norm; the Jacobian by central differences of ``gradient``, the step by least squares (a
    softmax loss's Jacobian is singular along the all-ones direction, which the minimum-norm step leaves).

    L-BFGS stops where the loss value's rounding hides further decrease: FocalLoss at gamma 1.7 with
    sample weights stopped with a mean gradient of 4e-10 (a Newton step on the gradient takes it to
    rounding; the element-wise losses' polish, :meth:`_ElementwiseLoss._newton_polish`, has their exact
    Hessian, a softmax focal loss's coupled Hessian is not at hand).
    """
    grad = gradient(z)
    k = z.shape[0]
    for _ in range(steps):
        jac = np.empty((k, k))
        for j in range(k):
            shift = np.zeros(k)
            shift[j] = h
            jac[:, j] = (gradient(z + shift) - gradient(z - shift)) / (2.0 * h)
        step = np.linalg.lstsq(jac, grad, rcond=None)[0]
        new_grad = gradient(z - step)
        if not np.linalg.norm(new_grad) < np.linalg.norm(grad):
            break
        z, grad = z - step, new_grad
    return z


def _logit(rate: np.ndarray) -> np.ndarray:
    rate = np.clip(rate, _EPS, 1.0 - _EPS)  # an all-0 or all-1 column keeps a finite margin
    return np.log(rate) - np.log1p(-rate)


# ---------------------------------------------------------------------- softmax
class _SoftmaxLoss(_Loss):
    _loss_per_row = True
    _accepts_soft_targets = False

    def __init__(self, ignore_index):
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, numbers.Integral)):
            raise TypeError(f"ignore_index must be an integer or None, got {type(ignore_index).__name__}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def _ignore(self) -> tuple[bool, int]:
        return (False, 0) if self.ignore_index is None else (True, self.ignore_index)

    def _class_weight(self, prob: _Problem) -> np.ndarray:
        """(K,) float64 weights for this call; ``w[y]`` also counts a row in the mean's
        denominator.  Called once, by ``_prepare``; kernels read ``prob.class_weight``."""
        raise NotImplementedError

    def _known_classes(self) -> int:
        """K implied by the parameters (0 if they do not fix it)."""
        return 0

    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raw, shape = v.as_raw(raw_prediction, two_d_only=True)
        y = np.asarray(y_true)
        soft = y.ndim == 2
        if soft and not self._accepts_soft_targets:
            raise ValueError(f"{type(self).__name__} takes class indices: y_true must be 1-D, got shape {y.shape}")
        target = v.as_targets(y, raw, shape) if soft else v.as_labels(y, raw.shape[0])
        prob = _Problem(raw, shape, target, y_true, v.as_sample_weight(sample_weight, raw.shape[0], raw.dtype), soft)
        prob.class_weight = self._class_weight(prob)
        return prob

    def _raise(self, prob: _Problem, bad_target: int, bad_raw: int) -> None:
        if prob.soft:
            rule = "must hold class probabilities: entries in [0, 1], rows summing to 1"
        else:
            rule = f"must hold class indices in [0, {prob.raw.shape[1]})"
            if self.ignore_index is not None:
                rule += f" or ignore_index={self.ignore_index}"
        v.raise_for_bad_rows(prob.raw.shape[0], bad_target, bad_raw, prob.y_true, prob.raw, rule)

    def _labelled_total(self, prob: _Problem, class_weight: np.ndarray) -> float:
        """``sum s_i w[y_i]`` over counted rows, validating labels before anything indexes with them."""
        total, bad = launch(kernels.softmax.label_weight_total, prob.target, prob.sample_weight, class_weight,
                            *self._ignore())
        if bad < prob.raw.shape[0]:
            self._raise(prob, bad, prob.raw.shape[0])
        return total

    def _total_weight(self, prob: _Problem) -> float:
        if prob.soft:  # PyTorch divides by n for probability targets
            return prob.total_sample_weight()
        return self._labelled_total(prob, prob.class_weight)

    def _counted(self, prob: _Problem) -> tuple[np.ndarray, np.ndarray]:
        """Labels and sample weights of the rows that count (not at ignore_index)."""
        labels, sw = prob.target, prob.weights_or_ones()
        if self.ignore_index is None:
            return labels, sw
        keep = labels != self.ignore_index
        return labels[keep], sw[keep]

    def _validated_labels_for_init(self, y_true, sample_weight) -> _Problem:
        y = np.asarray(y_true)
        if y.ndim == 2:
            return self._validated_for_init(y_true, sample_weight, y.shape)
        labels = v.as_labels(y, y.shape[0] if y.ndim == 1 else -1)
        counted = labels if self.ignore_index is None else labels[labels != self.ignore_index]
        if counted.size == 0:
            raise ValueError("y_true has no counted rows (empty, or every row at ignore_index)")
        n_classes = max(self._known_classes(), int(counted.max()) + 1, 2)
        return self._validated_for_init(labels, sample_weight, (labels.shape[0], n_classes))

    def predict_proba(self, raw_prediction):
        """Softmax of the logits, computed stably.

        Parameters
        ----------
        raw_prediction : array-like of shape (n, K)

        Returns
        -------
        proba : ndarray of shape (n, K), raw_prediction's dtype
        """
        raw, _ = v.as_raw(raw_prediction, two_d_only=True)
        out = np.empty_like(raw)
        bad = launch(kernels.softmax.softmax, raw, out)
        v.raise_for_bad_rows(raw.shape[0], raw.shape[0], bad, None, raw, "")
        return out


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
            class_weight = v.per_class_vector(class_weight, "class_weight",
                                              class_weight.shape[0] if class_weight.ndim == 1 else -1)
        self.class_weight = class_weight
        self.label_smoothing = v.positive_scalar(label_smoothing, "label_smoothing", allow_zero=True)
        if not self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")

    def _params(self):
        return {"class_weight": self.class_weight, "label_smoothing": self.label_smoothing,
                "ignore_index": self.ignore_index}

    def _known_classes(self) -> int:
        return self.class_weight.shape[0] if isinstance(self.class_weight, np.ndarray) else 0

    def _class_weight(self, prob: _Problem) -> np.ndarray:
        k = prob.raw.shape[1]
        if self.class_weight is None:
            return _shared_constant((k,), 1.0)
        if isinstance(self.class_weight, np.ndarray):
            return v.per_class_vector(self.class_weight, "class_weight", k)
        if prob.soft:  # "balanced"
            counts, n_counted = prob.target.sum(axis=0, dtype=np.float64), float(prob.raw.shape[0])
        else:
            self._labelled_total(prob, np.ones(k))  # labels must be valid before bincount
            labels, _ = self._counted(prob)
            counts, n_counted = np.bincount(labels, minlength=k).astype(np.float64), float(labels.shape[0])
        return np.divide(n_counted, k * counts, out=np.zeros(k), where=counts > 0)

    def _kernel_call(self, prob, grad_scale, loss_out, grad_out, hess_out, want_loss):
        w = prob.class_weight
        k = w.shape[0]
        eps = self.label_smoothing
        want = (want_loss, grad_out.shape[0] > 0, hess_out.shape[0] > 0)
        if prob.soft:
            # float32-rounded rows are off 1 by ~K * 6e-8; anything further is not a distribution
            tol = max(float(np.sqrt(np.finfo(prob.raw.dtype).eps)), 1e-6)
            return kernels.softmax.cross_entropy_soft, (prob.target, prob.raw, prob.sample_weight, w, eps, tol,
                                                        grad_scale, loss_out, grad_out, hess_out, *want)
        if eps == 0.0:  # the common case; the sums below cost ~9 us a call, the kernel ~30 us at n = 1e3
            no_smoothing = _shared_constant((k,), 0.0)
            params = (w, no_smoothing, no_smoothing, 0.0)
        else:
            smooth_w = (eps / k) * w
            # sum_{j != k} smooth_w[j] from prefix and suffix sums: no cancellation
            prefix = np.concatenate(([0.0], np.cumsum(smooth_w)[:-1]))
            suffix = np.concatenate((np.cumsum(smooth_w[::-1])[::-1][1:], [0.0]))
            params = ((1.0 - eps) * w, smooth_w, prefix + suffix, float(smooth_w.sum()))
        return kernels.softmax.cross_entropy_labels, (prob.target, prob.raw, prob.sample_weight, params,
                                                      *self._ignore(), grad_scale, loss_out, grad_out, hess_out, *want)

    def init_raw_prediction(self, y_true, sample_weight=None) -> np.ndarray:
        """Constant logits minimising the loss: the centred log of the weighted target mix.

        Parameters
        ----------
        y_true : array-like of shape (n,) or (n, K)
        sample_weight : array-like of shape (n,), optional

        Returns
        -------
        raw : ndarray of shape (K,), float64, zero mean
            K is ``len(class_weight)`` if given, else ``max(y_true) + 1``.
            Probabilities are floored at float64 eps so that an absent class
            gets a finite (very negative) logit.
        """
        prob = self._validated_labels_for_init(y_true, sample_weight)
        k, eps = prob.raw.shape[1], self.label_smoothing
        w = prob.class_weight
        if prob.soft:
            sw = prob.weights_or_ones()
            mix = w * ((1.0 - eps) * (sw @ prob.target) + eps / k * sw.sum())
        else:
            labels, sw = self._counted(prob)
            mix = np.bincount(labels, weights=sw * (1.0 - eps) * w[labels], minlength=k) + eps / k * w * sw.sum()
        if not mix.sum() > 0:
            raise ValueError("y_true, class_weight and sample_weight give zero total weight")
        raw = np.log(np.maximum(mix / mix.sum(), _EPS))
        return raw - raw.mean()


class FocalLoss(_SoftmaxLoss):
    """Softmax focal loss ``-alpha[y] (1 - p_y)^gamma log p_y``, ``p = softmax(raw)``.

    Parameters
    ----------
    gamma : float >= 0, default 2.0
        Focusing parameter; 0 gives (alpha-weighted) cross-entropy.  The
        multiples of 0.5 up to 3 take faster kernels (the power by products
        and a square root) than other values (``exp(gamma log v)``).
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

    def _class_weight(self, prob: _Problem) -> np.ndarray:
        k = prob.raw.shape[1]
        return _shared_constant((k,), 1.0) if self.alpha is None else v.per_class_vector(self.alpha, "alpha", k)

    def _kernel_call(self, prob, grad_scale, loss_out, grad_out, hess_out, want_loss):
        kernel = _focal_kernel(self.gamma, kernels.softmax, "focal", "_labels")
        return kernel, (prob.target, prob.raw, prob.sample_weight, (prob.class_weight, float(self.gamma)),
                        *self._ignore(), grad_scale, loss_out, grad_out, hess_out, want_loss,
                        grad_out.shape[0] > 0, hess_out.shape[0] > 0)

    def init_raw_prediction(self, y_true, sample_weight=None) -> np.ndarray:
        """Constant logits minimising the loss: ndarray of shape (K,), float64, zero mean.

        The loss of a constant prediction depends on the data only through each
        class's weighted count, so the search (L-BFGS from the cross-entropy
        optimum, then Newton steps on the gradient for K <= 128) runs on K
        aggregated rows.
        """
        prob = self._validated_labels_for_init(y_true, sample_weight)
        k = prob.raw.shape[1]
        labels, sw = self._counted(prob)
        counts = np.bincount(labels, weights=sw, minlength=k)
        present = np.flatnonzero(counts > 0)
        total = counts.sum()

        def objective(z):
            value, grad = self.loss_gradient(present, np.broadcast_to(z, (present.shape[0], k)), counts[present],
                                             reduction="sum")
            return float(value) / total, grad.sum(axis=0) / total

        start = np.log(np.maximum(counts / total, _EPS))
        raw = _minimise_constant(objective, start - start.mean())
        if k <= _POLISH_MAX_CLASSES:
            raw = _newton_polish_coupled(lambda z: objective(z)[1], raw)
        return raw - raw.mean()


# ------------------------------------------------------------------ element-wise
class _ElementwiseLoss(_Loss):
    _kernel_name: str  # the name of the loss's kernel in nbloss.kernels.elementwise
    _target_rule = "must be finite"
    _target_range = (-float(np.finfo(np.float64).max), float(np.finfo(np.float64).max))

    def _column_params(self, n_cols: int) -> tuple[np.ndarray, float]:
        """``(col_param (L,) float64, extra)`` for the family's element formula."""
        raise NotImplementedError

    def _prepare(self, y_true, raw_prediction, sample_weight) -> _Problem:
        raw, shape = v.as_raw(raw_prediction, two_d_only=False)
        target = v.as_targets(y_true, raw, shape)
        return _Problem(raw, shape, target, y_true, v.as_sample_weight(sample_weight, raw.shape[0], raw.dtype), False)

    def _total_weight(self, prob: _Problem) -> float:
        return prob.total_sample_weight() * prob.raw.shape[1]

    @property
    def _kernel(self) -> Callable:
        return getattr(kernels.elementwise, self._kernel_name)

    def _kernel_for(self, col_param: np.ndarray, dtype: np.dtype) -> Callable:
        """The kernel for these column parameters and this dtype (BCE's depend on both)."""
        return self._kernel

    def _kernel_call(self, prob, grad_scale, loss_out, grad_out, hess_out, want_loss):
        col_param, extra = self._column_params(prob.raw.shape[1])
        kernel = self._kernel_for(col_param, prob.raw.dtype)
        return kernel, (prob.target, prob.raw, prob.sample_weight, col_param, extra, *self._target_range,
                        grad_scale, loss_out, grad_out, hess_out, want_loss, grad_out.shape[0] > 0,
                        hess_out.shape[0] > 0)

    def _raise(self, prob, bad_target, bad_raw):
        v.raise_for_bad_rows(prob.raw.shape[0], bad_target, bad_raw, prob.y_true, prob.raw, self._target_rule)

    def _validated_targets_for_init(self, y_true, sample_weight) -> _Problem:
        y = v.as_float_array(y_true, "y_true", dtype=np.float64)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(f"y_true must be a non-empty 1-D or 2-D array, got shape {y.shape}")
        return self._validated_for_init(y, sample_weight, y.shape)

    @staticmethod
    def _as_result(prob: _Problem, raw: np.ndarray):
        return np.float64(raw[0]) if len(prob.shape) == 1 else raw

    def _start(self, y: np.ndarray, sw: np.ndarray) -> np.ndarray:
        """Starting point of the numeric search: the weighted median of each column."""
        out = np.empty(y.shape[1])
        for j in range(y.shape[1]):
            order = np.argsort(y[:, j])
            cum = np.cumsum(sw[order])
            out[j] = y[order[np.searchsorted(cum, 0.5 * cum[-1])], j]
        return out

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Constant raw score minimising the weighted loss (numerically: L-BFGS, then Newton steps).

        Returns
        -------
        raw : float64 scalar for 1-D ``y_true``, else ndarray of shape (L,) / (T,)
        """
        prob = self._validated_targets_for_init(y_true, sample_weight)
        y, sw = prob.target, prob.weights_or_ones()

        def objective(z):
            value, grad = self.loss_gradient(y, np.broadcast_to(z, y.shape), sw, reduction="mean")
            return float(value), grad.sum(axis=0)

        return self._as_result(prob, self._newton_polish(y, sw, _minimise_constant(objective, self._start(y, sw))))

    def _newton_polish(self, y: np.ndarray, sw: np.ndarray, z: np.ndarray, steps: int = 4) -> np.ndarray:
        """``z`` after up to ``steps`` Newton steps on each column's gradient sum, each kept only where it
        shrinks that column's gradient (the columns' constants are independent).

        L-BFGS stops where the loss value's rounding hides further decrease: with far outliers the value
        is large and the curvature small, and PseudoHuberLoss stopped with a mean gradient of 2e-7 when
        the gradient itself, bounded per element, could still be driven to rounding.
        """
        def sums(z):
            g, h = self.gradient_hessian(y, np.broadcast_to(z, y.shape), sw)
            return g.sum(axis=0), h.sum(axis=0)

        grad, hess = sums(z)
        for _ in range(steps):
            step = np.divide(grad, hess, out=np.zeros_like(grad), where=hess > 0)
            if not step.any():
                break
            new_grad, new_hess = sums(z - step)
            better = np.abs(new_grad) < np.abs(grad)
            if not better.any():
                break
            z = np.where(better, z - step, z)
            grad, hess = np.where(better, new_grad, grad), np.where(better, new_hess, hess)
        return z


class _SigmoidLoss(_ElementwiseLoss):
    _target_rule = "must hold values in [0, 1]"
    _target_range = (0.0, 1.0)

    def _start(self, y, sw):
        return _logit((sw @ y) / sw.sum())

    def predict_proba(self, raw_prediction):
        """Sigmoid of the logits, computed stably.

        Parameters
        ----------
        raw_prediction : array-like of shape (n,) or (n, L)

        Returns
        -------
        proba : ndarray of raw_prediction's shape and dtype
            Probability of the positive class of each output.
        """
        raw, shape = v.as_raw(raw_prediction, two_d_only=False)
        out = np.empty_like(raw)
        bad = launch(kernels.sigmoid.sigmoid, raw, out)
        v.raise_for_bad_rows(raw.shape[0], raw.shape[0], bad, None, raw, "")
        return out.reshape(shape)


class BinaryCrossEntropy(_SigmoidLoss):
    """Binary cross-entropy on logits (PyTorch's ``binary_cross_entropy_with_logits``).

    Parameters
    ----------
    pos_weight : float, array-like of shape (L,), or None
        Weight of the positive term of each output (> 1 favours recall).

    Notes
    -----
    ``y_true`` has the shape of ``raw_prediction``: (n,) or (n, L)
    (multilabel), values in [0, 1].
    """

    _kernel_name = "bce"

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
        if isinstance(self.pos_weight, np.ndarray):
            return v.per_class_vector(self.pos_weight, "pos_weight", n_cols), 0.0
        return _shared_constant((n_cols,), 1.0 if self.pos_weight is None else float(self.pos_weight)), 0.0

    def _kernel_for(self, col_param, dtype):
        per_column = isinstance(self.pos_weight, np.ndarray) and (col_param != col_param[0]).any()
        # float32 input runs the kernels that compute in float32 (see nbloss.kernels.elementwise)
        suffix = ("_per_column" if per_column else "") + ("_f32" if dtype == np.float32 else "")
        return getattr(kernels.elementwise, self._kernel_name + suffix)

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Logit of the weighted positive rate, ``log(sum s pw y / sum s (1 - y))`` per output.

        Returns a float64 scalar for 1-D ``y_true``, else (L,); rates are
        clipped at float64 eps so that an all-0 or all-1 column stays finite.
        """
        prob = self._validated_targets_for_init(y_true, sample_weight)
        y, sw = prob.target, prob.weights_or_ones()
        pos = self._column_params(y.shape[1])[0] * (sw @ y)
        return self._as_result(prob, _logit(pos / (pos + sw @ (1.0 - y))))


class BinaryFocalLoss(_SigmoidLoss):
    """Sigmoid focal loss (torchvision's ``sigmoid_focal_loss``).

    Parameters
    ----------
    gamma : float >= 0, default 2.0
        Focusing parameter; 0 gives (alpha-weighted) binary cross-entropy.  As
        in :class:`FocalLoss`, the multiples of 0.5 up to 3 are the fastest.
    alpha : float in [0, 1] or None, default 0.25
        Weight of positives (``1 - alpha`` for negatives); ``None`` disables.

    Notes
    -----
    ``y_true`` has the shape of ``raw_prediction``, (n,) or (n, L), values in [0, 1].
    0/1 targets take a shorter formula than soft ones (``gradient_hessian`` and
    ``loss_gradient``, a run of 64 such targets at a time), which gives the same
    values for them: an element's result never depends on its neighbours' targets.
    """

    _kernel_name = "binary_focal"  # and "_int" or "_half" after it (see _focal_kernel), "_f32" for float32

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
        return _shared_constant((n_cols,), float(self.gamma)), -1.0 if self.alpha is None else self.alpha

    def _kernel_for(self, col_param, dtype):
        # float32 input runs the kernels that compute in float32 (see nbloss.kernels.elementwise)
        suffix = "_f32" if dtype == np.float32 else ""
        return _focal_kernel(self.gamma, kernels.elementwise, self._kernel_name, suffix)


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

    _kernel_name = "huber"

    def __init__(self, delta: float = 1.0):
        self.delta = v.positive_scalar(delta, "delta")

    def _params(self):
        return {"delta": self.delta}

    def _column_params(self, n_cols):
        return _shared_constant((n_cols,), float(self.delta)), 0.0


class PseudoHuberLoss(HuberLoss):
    """Pseudo-Huber loss ``delta^2 (sqrt(1 + (r / delta)^2) - 1)``: smooth, Hessian > 0.

    Parameters
    ----------
    delta : float > 0, default 1.0

    Notes
    -----
    ``y_true`` and ``raw_prediction`` are (n,) or (n, T).
    """

    _kernel_name = "pseudo_huber"


class SquaredError(_ElementwiseLoss):
    """Half squared error ``r^2 / 2`` per element, ``r = raw - y``.

    Notes
    -----
    ``y_true`` and ``raw_prediction`` are (n,) or (n, T).  An infinite
    prediction has an infinite loss and gradient (the mathematical limit).
    """

    _kernel_name = "squared_error"

    def _column_params(self, n_cols):
        return _shared_constant((n_cols,), 0.0), 0.0

    def init_raw_prediction(self, y_true, sample_weight=None):
        """Weighted mean of ``y_true``: float64 scalar for 1-D, else (T,)."""
        prob = self._validated_targets_for_init(y_true, sample_weight)
        sw = prob.weights_or_ones()
        return self._as_result(prob, (sw @ prob.target) / sw.sum())
