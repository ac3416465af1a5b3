"""CatBoost adapters: ``loss_function=`` and ``eval_metric=`` objects.

CatBoost maximises: a custom objective returns the first and second
derivatives of ``-loss``, already multiplied by the sample weight.  One-output
models call ``calc_ders_range(approxes, targets, weights)`` on chunks of rows
(NumPy arrays; a ``(n, 2)`` array of ``(der1, der2)`` is accepted back), so
the kernels run vectorised.  Multiclass models call ``calc_ders_multi(approx,
target, weight)`` once per row and want a ``K x K`` second-derivative matrix:
the adapter returns the diagonal one (the other libraries' choice), and this
per-row protocol bounds its speed: the adapter answers it with the loss's own
kernel compiled without threads (:class:`RowDerivatives`), with the parameters
resolved once.  Multi-target models
(``MultiTargetCustomObjective``) use the same per-row call with a vector of
targets; CatBoost 1.2 accepts no baseline for them.  CatBoost does not store a
starting margin given as ``baseline``: :meth:`CatBoostObjective.fold_baseline`
puts it into the model's bias.

CatBoost tries to compile a custom object's methods with Numba and warns
(``Can't optimze method ... because self argument is used``) when it cannot;
these methods call nbloss's own compiled kernels, so the warning is harmless.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..kernels import serial
from ._common import Derivatives, MetricValue, constant_of, is_softmax, per_row, require, starting_margin


class RowDerivatives:
    """CatBoost's per-row answer, ``(der1, der2)`` of ``-weight * loss`` as lists, under ``derivatives``'
    Hessian policy.

    CatBoost asks for multiclass and multi-target derivatives once per row, from
    several threads, and copies the answer out element by element in Python.  A
    full public call (validation, a parallel launch) would cost several times the
    row; instead, per calling OS thread, this object keeps a one-row problem
    validated once (class weights and smoothing resolved), its buffers and a
    ``K x K`` list of lists, copies each row in and runs the loss's own kernel
    compiled without threads, with ``grad_scale = -1`` (CatBoost maximises).  The
    kernel still checks every row's label range and NaN logits; the weight and
    the label's type are checked here.  Lists, because CatBoost reads them twice
    as fast as NumPy rows (one NumPy scalar per element).
    """

    def __init__(self, derivatives: Derivatives):
        loss = derivatives.loss
        if isinstance(getattr(loss, "class_weight", None), str):  # "balanced"
            raise ValueError("class_weight='balanced' is computed from the labels of each call, and CatBoost "
                             "hands multiclass rows over one at a time: pass the weights as an array, e.g. "
                             "sklearn.utils.class_weight.compute_class_weight('balanced', ...)")
        self.derivatives = derivatives
        # Per OS thread.  Not threading.local: CatBoost calls from its own C++ threads, and each call gets a
        # fresh Python thread state, so thread-local data would be rebuilt on every row.
        self._states: dict[int, tuple] = {}

    def __reduce__(self):  # CatBoost deep-copies its parameters; the buffers are rebuilt on use
        return RowDerivatives, (self.derivatives,)

    def _state(self, n_outputs: int) -> tuple:
        state = self._states.get(threading.get_ident())
        if state is None or state[0] != n_outputs:
            loss = self.derivatives.loss
            softmax = is_softmax(loss)
            target = np.zeros(1, dtype=np.int64) if softmax else np.zeros((1, n_outputs))
            rows = (target, np.zeros((1, n_outputs)), np.ones(1))  # each call writes its row here
            # the problem holds read-only views of these same buffers (of the right dtype, so not copied)
            prob = loss._prepare(*rows)
            neg_grad, neg_hess = np.empty((1, n_outputs)), np.empty((1, n_outputs))
            exact = self.derivatives.hessian == "exact"
            kernel, args = loss._kernel_call(prob, -1.0, loss._empty(prob, loss_shaped=True), neg_grad,
                                             neg_hess if exact else loss._empty(prob), False)
            der2 = [[0.0] * n_outputs for _ in range(n_outputs)]
            state = (n_outputs, softmax, exact, prob, rows, neg_grad[0], neg_hess[0], der2, serial(kernel), args)
            self._states[threading.get_ident()] = state
        return state

    def __call__(self, target, approx, weight) -> tuple[list, list]:
        """``target``: a class index (softmax losses) or the row's (L,) targets; ``approx``: the row's (L,)
        margins.  Returns ``der1`` (L,) and the diagonal ``der2`` (L x L), valid until this thread's next call."""
        approx = np.asarray(approx, dtype=np.float64)
        n_outputs, softmax, exact, prob, rows, neg_grad, neg_hess, der2, kernel, args = self._state(approx.shape[0])
        target_row, raw_row, weight_row = rows
        w = 1.0 if weight is None else float(weight)
        if not (0.0 <= w < math.inf):
            raise ValueError(f"sample_weight must be finite and non-negative, got {weight!r}")
        if softmax:
            label = float(target)
            if label != math.floor(label) or not abs(label) < 2.0**62:
                raise ValueError(f"y_true must hold integral class indices, got {target!r}")
            target_row[0] = int(label)
        else:
            target_row[0] = target
        raw_row[0] = approx
        weight_row[0] = w
        _, bad_target, bad_raw = kernel(*args)
        if bad_target == 0 or bad_raw == 0:
            self.derivatives.loss._raise(prob.replace(y_true=np.array([target])), bad_target, bad_raw)
        if exact:
            diagonal = np.minimum(neg_hess, -self.derivatives.min_hessian * w).tolist()
        else:
            diagonal = [-w] * n_outputs
        for k in range(n_outputs):
            der2[k][k] = diagonal[k]
        return neg_grad.tolist(), der2


class CatBoostObjective:
    """An nbloss loss as CatBoost's ``loss_function=``.

    Parameters
    ----------
    loss : nbloss loss object
        One-output losses (1-D binary or regression targets) through
        ``calc_ders_range``; softmax losses (``CatBoostClassifier`` with more
        than two classes) and multi-target element-wise losses through
        ``calc_ders_multi``.
    min_hessian : float, default 1e-16
        Hessian floor per unit of sample weight.
    hessian : {"exact", "constant"}, default "exact"
    multi_target : bool, default False
        For ``(n, T)`` targets of an element-wise loss (multi-label
        ``BinaryCrossEntropy``, multi-target ``HuberLoss``...), trained with
        ``CatBoostRegressor``: CatBoost recognises a multi-target objective by
        its base class ``catboost.MultiTargetCustomObjective``, which the
        returned object then has.

    Notes
    -----
    CatBoost needs ``eval_metric=`` when ``loss_function`` is an object; use
    :class:`CatBoostMetric` or a built-in metric name.
    """

    def __new__(cls, loss=None, min_hessian: float = 1e-16, hessian: str = "exact", multi_target: bool = False):
        catboost = require("catboost", "catboost", "CatBoostObjective")
        if multi_target and cls is CatBoostObjective:
            cls = _multi_target_class(cls, catboost.MultiTargetCustomObjective)
        return super().__new__(cls)

    def __init__(self, loss, min_hessian: float = 1e-16, hessian: str = "exact", multi_target: bool = False):
        self.derivatives = Derivatives(loss, min_hessian, hessian)
        self.multi_target = bool(multi_target)
        if self.multi_target and is_softmax(loss):
            raise ValueError("multi_target=True is for element-wise losses with (n, T) targets; "
                             f"{type(loss).__name__} is multiclass already")
        self.row_derivatives = RowDerivatives(self.derivatives) if is_softmax(loss) or self.multi_target else None

    def __reduce_ex__(self, protocol):
        if type(self) in _MULTI_TARGET.values():  # made at run time: rebuilt through the public class
            d = self.derivatives
            return CatBoostObjective, (d.loss, d.min_hessian, d.hessian, True)
        return super().__reduce_ex__(protocol)

    @property
    def loss(self):
        return self.derivatives.loss

    def calc_ders_range(self, approxes, targets, weights):
        """Derivatives of ``-weight * loss`` for a chunk of rows: (n, 2) float64 ``[der1, der2]``."""
        if is_softmax(self.loss):
            raise TypeError(f"{type(self.loss).__name__} needs a multiclass model (one margin per class); "
                            "CatBoost called the one-output protocol")
        grad, hess = self.derivatives(targets, np.asarray(approxes, dtype=np.float64), weights)
        ders = np.empty((grad.shape[0], 2))
        np.negative(grad, out=ders[:, 0])
        np.negative(hess, out=ders[:, 1])
        return ders

    def calc_ders_multi(self, approx, target, weight):
        """Derivatives of ``-weight * loss`` for one row: ``(der1 (K,), der2 (K, K) diagonal)`` as lists.

        ``target`` is a class index (softmax losses) or, for ``multi_target``, the row's (T,) targets.
        """
        if not (is_softmax(self.loss) or self.multi_target):
            raise TypeError(f"{type(self.loss).__name__} is a one-output loss; CatBoost called the multi-output "
                            "protocol (pass multi_target=True for (n, T) targets)")
        return self.row_derivatives(target, approx, weight)

    def baseline(self, y, sample_weight=None) -> np.ndarray:
        """Per-row starting margins ``loss.init_raw_prediction(y, sample_weight)`` for
        ``fit(baseline=...)`` or ``Pool(baseline=...)``: (n,) or (n, K) float64.

        For a ``CatBoostClassifier`` pass ``y`` as class indices 0..K-1 (CatBoost's own encoding).
        """
        if self.multi_target:
            raise ValueError("CatBoost 1.2 rejects a baseline for a custom multi-target objective ('baselines data "
                             "size (T) is not equal to expected dimension (1)'): multi-target models start at 0")
        return per_row(starting_margin(self.loss, y, sample_weight), np.shape(y)[0])

    @staticmethod
    def fold_baseline(model, baseline):
        """Store the (constant) ``baseline`` used in training as the model's bias, so that
        ``predict`` includes it; ``model`` is changed in place and returned."""
        constant = constant_of(baseline, "baseline")
        scale, bias = model.get_scale_and_bias()
        if constant.shape[0] == 1:
            model.set_scale_and_bias(scale, float(np.sum(bias)) + float(constant[0]))
        else:
            model.set_scale_and_bias(scale, [float(b) + float(c) for b, c in zip(np.broadcast_to(bias, constant.shape),
                                                                                constant)])
        return model

    def __repr__(self) -> str:
        d = self.derivatives
        return (f"CatBoostObjective({d.loss!r}, min_hessian={d.min_hessian}, hessian={d.hessian!r}, "
                f"multi_target={self.multi_target})")


_MULTI_TARGET: dict[type, type] = {}


def _multi_target_class(cls: type, marker: type) -> type:
    """``cls`` with CatBoost's multi-target marker base class, made once per class (CatBoost is imported lazily,
    so the base cannot be written in the class statement)."""
    if cls not in _MULTI_TARGET:
        name = cls.__name__.replace("CatBoost", "CatBoostMultiTarget")
        _MULTI_TARGET[cls] = type(name, (cls, marker), {"__module__": __name__, "__doc__": cls.__doc__})
    return _MULTI_TARGET[cls]


class CatBoostMetric:
    """An nbloss loss as CatBoost's ``eval_metric=``: ``loss.loss(y, margins, w, reduction="mean")``.

    CatBoost adds up ``evaluate``'s ``(sum, weight)`` over parts of the data and
    divides in ``get_final_error``, which gives exactly the loss's weighted mean.
    Lower is better.  ``multi_target=True`` goes with a multi-target
    :class:`CatBoostObjective` (CatBoost then wants a ``MultiTargetCustomMetric``).
    """

    def __new__(cls, loss=None, multi_target: bool = False):
        catboost = require("catboost", "catboost", "CatBoostMetric")
        if multi_target and cls is CatBoostMetric:
            cls = _multi_target_class(cls, catboost.MultiTargetCustomMetric)
        return super().__new__(cls)

    def __init__(self, loss, multi_target: bool = False):
        self.metric = MetricValue(loss)
        self.multi_target = bool(multi_target)

    def __reduce_ex__(self, protocol):
        if type(self) in _MULTI_TARGET.values():
            return CatBoostMetric, (self.metric.loss, True)
        return super().__reduce_ex__(protocol)

    def is_max_optimal(self) -> bool:
        return False

    def evaluate(self, approxes, target, weight) -> tuple[float, float]:
        columns = [np.asarray(a, dtype=np.float64) for a in approxes]
        margins = columns[0] if len(columns) == 1 else np.column_stack(columns)
        if self.multi_target:  # targets come as one array per output, like approxes
            target = np.column_stack([np.asarray(t, dtype=np.float64) for t in target])
        return self.metric.sum_and_weight(target, margins, weight)

    def get_final_error(self, error: float, weight: float) -> float:
        return error / weight if weight > 0 else 0.0
