"""``LinearClassifier`` and ``LinearRegressor``: scikit-learn estimators over nbloss losses.

Both minimise the weighted mean loss plus ``alpha / 2 * ||coef||^2`` (the
intercept is not penalised), built by :class:`._objective.LinearObjective`
and solved by :mod:`._solvers`: truncated Newton with exact Hessian-vector
products where the loss has one (cross-entropy, every element-wise loss),
L-BFGS otherwise (softmax focal loss).  The stopping criterion is
``max |gradient| <= tol``.

Data: ``X`` dense, a pandas DataFrame or SciPy sparse (CSR/CSC); float32 ``X``
stays float32 in every product and kernel (the solver's parameter vector is
float64).  Dask arrays and DataFrames are fitted on the Dask workers
(:mod:`._dask_objective`), and predictions on Dask input are Dask arrays.
Class weights are folded into the sample weights, so a class weight of 2
counts like duplicating the class's rows, as in scikit-learn.
"""

from __future__ import annotations

import numbers
import warnings
from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from .. import _dask, _threading
from .._validation import one_of
from ..losses import (
    BinaryCrossEntropy,
    BinaryFocalLoss,
    CrossEntropy,
    FocalLoss,
    HuberLoss,
    PseudoHuberLoss,
    SquaredError,
)
from ._dask_objective import DaskFitData
from ._objective import LinearObjective, classification_target, linear_margins
from ._solvers import SOLVERS


class _LinearModel(BaseEstimator):
    """What both estimators share: validation of the common parameters, the solve, warm starts."""

    def _check_common_params(self) -> None:
        for name in ("alpha", "tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (np.isfinite(value)
                                                                                     and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.n_threads is not None and (isinstance(self.n_threads, bool)
                                           or not isinstance(self.n_threads, numbers.Integral)
                                           or self.n_threads < 1):
            raise ValueError(f"n_threads must be None or a positive integer, got {self.n_threads!r}")

    def _validate_X_y(self, X, y, sample_weight, classifier: bool):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
                             y_numeric=not classifier, multi_output=False)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        return X, y, sample_weight

    def _start(self, objective, start_intercept: np.ndarray, warm: bool) -> np.ndarray:
        w0 = np.zeros(objective.size)
        coef, intercept = objective.unpack(w0)
        previous = getattr(self, "coef_", None)
        if warm and self.warm_start and previous is not None and np.shape(previous) in (coef.shape, coef.shape[1:]):
            coef[...] = np.asarray(previous, dtype=np.float64).reshape(coef.shape)
            if self.fit_intercept:
                intercept[...] = np.asarray(self.intercept_, dtype=np.float64).reshape(intercept.shape)
        elif self.fit_intercept:
            intercept[...] = start_intercept
        return w0

    def _solve(self, objective, start_intercept: np.ndarray, warm: bool = True) -> np.ndarray:
        """Minimise ``objective`` (in memory or Dask); ``warm``: the previous fit may be the start."""
        solver = SOLVERS["newton-cg" if objective.has_hessp else "lbfgs"]
        # float32 data: the objective is only known to ~1e-7 relative; below that no step shows a decrease
        stall_tol = max(self.tol, 1e3 * float(np.finfo(objective.dtype).eps)) if objective.dtype == np.float32 else 0
        with _threading.num_threads(self.n_threads):
            w, n_iter, converged = solver(objective, self._start(objective, start_intercept, warm), self.tol,
                                          self.max_iter, self.verbose, stall_tol)
        if not converged:
            warnings.warn(f"{type(self).__name__} did not converge to tol={self.tol} in {n_iter} iterations "
                          f"(max_iter={self.max_iter}); increase max_iter, loosen tol or standardise X",
                          ConvergenceWarning, stacklevel=3)
        self.n_iter_ = n_iter
        self.n_passes_ = objective.n_passes
        return w

    def _store(self, objective, w: np.ndarray) -> None:
        coef, intercept = objective.unpack(w)
        self.coef_ = coef.astype(objective.dtype)
        self.intercept_ = intercept.astype(objective.dtype)

    def _record_dask_features(self, X, data: DaskFitData) -> None:
        """``n_features_in_`` and ``feature_names_in_`` of a Dask fit, set once the fit has succeeded."""
        _check_n_features(self, data.X, reset=True)
        _check_feature_names(self, _dask.column_names_of(X), reset=True)

    def _dask_rows(self, X):
        """A fitted model's Dask ``X`` (array or DataFrame) as checked row blocks."""
        check_is_fitted(self)
        _check_feature_names(self, _dask.column_names_of(X), reset=False)
        X = _dask.feature_matrix(X)
        _check_n_features(self, X, reset=False)
        return X

    def _output(self, X, transform, n_columns: int | None, dtype=None):
        """``transform`` of the (n, L) margins of ``X``: a NumPy result, or for Dask ``X`` a Dask array
        ((n,) if ``n_columns`` is None, else (n, n_columns); ``dtype`` defaults to ``X``'s)."""
        if _dask.is_dask(X):
            X = self._dask_rows(X)
            coef = self.coef_.reshape(-1, self.n_features_in_)
            return _dask.map_rows(X, partial(_transformed_margins, transform, coef, self.intercept_), n_columns,
                                  X.dtype if dtype is None else dtype)
        return transform(self._margins(X))

    def _margins(self, X) -> np.ndarray:
        """(n, L) margins of validated ``X`` (the regressor's (d,) ``coef_`` counts as one row)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=False)
        return linear_margins(X, self.coef_.reshape(-1, self.n_features_in_), self.intercept_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class LinearClassifier(ClassifierMixin, _LinearModel):
    """Linear classifier trained on an nbloss loss: logistic regression, softmax regression, or their
    focal-loss versions.

    Parameters
    ----------
    loss : {"cross_entropy", "focal"}, default "cross_entropy"
        Two classes: one logit with :class:`~nbloss.BinaryCrossEntropy` /
        :class:`~nbloss.BinaryFocalLoss` (``alpha=None``); more: softmax with
        :class:`~nbloss.CrossEntropy` / :class:`~nbloss.FocalLoss`.
    alpha : float, default 1e-4
        L2 penalty ``alpha / 2 * ||coef||^2`` added to the weighted mean loss.
        ``alpha = 1 / (C * sum(sample_weight))`` gives scikit-learn's
        ``LogisticRegression(C=C)`` optimum.
    gamma : float, default 2.0
        Focal loss focusing parameter (``loss="focal"`` only).
    label_smoothing : float in [0, 1), default 0.0
        Mixes each target with the uniform distribution over the classes
        (two classes: targets ``eps / 2`` and ``1 - eps / 2``).
    class_weight : dict, "balanced" or None
        Multiplies each row's sample weight (scikit-learn's convention; "balanced" is
        ``n / (K * count_k)`` with rows counted by their sample weights).
    fit_intercept : bool, default True
    max_iter : int, default 200
        Newton (or L-BFGS) iterations.
    tol : float, default 1e-6
        Stop when the largest absolute entry of the objective's gradient is at
        most ``tol``.  With float32 ``X`` the objective is only known to about
        1e-7 relative: a fit whose line search finds no measurable decrease
        also counts as converged if that gradient is below ``max(tol, 1e3 *
        float32 eps)``.
    warm_start : bool, default False
        Start from the previous fit's coefficients (same classes and features).
    n_threads : int or None
        Threads for the nbloss kernels during ``fit`` (None: the current
        :func:`nbloss.get_num_threads`).  BLAS products use BLAS's own threads.
    verbose : int, default 0
        If > 0, print each iteration's objective and gradient norm to stderr.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
    coef_ : ndarray of shape (1, d) for two classes, else (K, d)
    intercept_ : ndarray of shape (1,) or (K,)
    n_iter_ : int
    n_passes_ : int
        Reads of ``X`` during the fit (products ``X @ W`` and ``G.T @ X``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when ``X`` has column names)
    """

    def __init__(self, loss: str = "cross_entropy", *, alpha: float = 1e-4, gamma: float = 2.0,
                 label_smoothing: float = 0.0, class_weight=None, fit_intercept: bool = True, max_iter: int = 200,
                 tol: float = 1e-6, warm_start: bool = False, n_threads: int | None = None, verbose: int = 0):
        self.loss = loss
        self.alpha = alpha
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.verbose = verbose

    def _loss_for(self, n_classes: int):
        binary = n_classes == 2
        if self.loss == "focal":
            return BinaryFocalLoss(gamma=self.gamma, alpha=None) if binary else FocalLoss(gamma=self.gamma)
        return BinaryCrossEntropy() if binary else CrossEntropy(label_smoothing=self.label_smoothing)

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame, Dask array or DataFrame} of shape (n, d)
            With Dask input (any of ``X``, ``y``, ``sample_weight``), every pass over the rows
            runs on the Dask workers and only parameter-sized vectors reach the client.
        y : array-like or Dask array/Series of shape (n,)
            Any hashable labels; at least two classes.
        sample_weight : array-like or Dask array/Series of shape (n,), optional

        Returns
        -------
        self
        """
        one_of(self.loss, "loss", ("cross_entropy", "focal"))
        self._check_common_params()
        eps = self.label_smoothing
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 <= eps < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {eps!r}")
        if self.loss == "focal" and eps:
            raise ValueError("label_smoothing is for loss='cross_entropy'")
        data = None
        if _dask.any_dask(X, y, sample_weight):
            data = DaskFitData(X, y, sample_weight, labelled=True)
            classes, class_totals = data.summary.values, data.summary.weights
            check_classification_targets(classes)  # the distinct labels tell binary, multiclass and continuous apart
        else:
            X, y, sample_weight = self._validate_X_y(X, y, sample_weight, classifier=True)
            check_classification_targets(y)
            classes, labels = np.unique(y, return_inverse=True)
            class_totals = np.bincount(labels, weights=sample_weight, minlength=classes.shape[0])
        n_classes = classes.shape[0]
        if n_classes < 2:
            raise ValueError(f"LinearClassifier needs at least two classes in y; got the one class {classes[0]!r}")
        class_weight = self._class_weights(classes, class_totals)
        weighted_totals = class_totals * class_weight
        if not weighted_totals.sum() > 0:
            raise ValueError("sample_weight (with class_weight) sums to zero: nothing to fit")

        loss = self._loss_for(n_classes)
        n_outputs = 1 if n_classes == 2 else n_classes
        start = _start_from_class_totals(loss, weighted_totals, eps)
        if data is None:
            target = classification_target(labels, n_classes, eps, X.dtype)
            sample_weight = sample_weight * class_weight[labels].astype(X.dtype)
            objective = LinearObjective(X, target, sample_weight, loss, n_outputs, self.alpha, self.fit_intercept)
        else:
            target, sample_weight = data.class_problem(classes, class_weight, eps)
            objective = data.objective(target, sample_weight, loss, n_outputs, self.alpha, self.fit_intercept,
                                       float(weighted_totals.sum()), self.n_threads)
        same_classes = not hasattr(self, "classes_") or np.array_equal(self.classes_, classes)
        w = self._solve(objective, start, warm=same_classes)
        self.classes_ = classes
        self._store(objective, w)
        if data is not None:
            self._record_dask_features(X, data)
        return self

    def _class_weights(self, classes: np.ndarray, class_totals: np.ndarray) -> np.ndarray:
        """(K,) multipliers of the sample weights, from ``class_weight`` and each class's total weight."""
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # rows counted by their sample weights (weight 2 equals a repeated row); a class with no weight
            # gets 0, as in nbloss.CrossEntropy, instead of scikit-learn's division by zero
            return np.divide(class_totals.sum(), classes.shape[0] * class_totals, out=np.zeros_like(class_totals),
                             where=class_totals > 0)
        if self.class_weight is not None:
            return compute_class_weight(self.class_weight, classes=classes, y=classes)
        return np.ones(classes.shape[0])

    def decision_function(self, X):
        """Logits: (n,) for two classes (of ``classes_[1]``), else (n, K)."""
        check_is_fitted(self)
        binary = self.classes_.shape[0] == 2
        return self._output(X, _decision, None if binary else self.classes_.shape[0])

    def predict_proba(self, X):
        """Class probabilities (n, K), computed stably from the logits."""
        check_is_fitted(self)
        return self._output(X, _probabilities, self.classes_.shape[0])

    def predict_log_proba(self, X):
        """Log class probabilities (n, K), from the logits (no log of a rounded probability)."""
        check_is_fitted(self)
        return self._output(X, _log_probabilities, self.classes_.shape[0])

    def predict(self, X):
        """Most probable class label per row."""
        check_is_fitted(self)
        return self._output(X, partial(_labels, self.classes_), None, self.classes_.dtype)


class LinearRegressor(RegressorMixin, _LinearModel):
    """Linear regression on an nbloss loss: Huber, pseudo-Huber or squared error, with an L2 penalty.

    Parameters
    ----------
    loss : {"huber", "pseudo_huber", "squared_error"}, default "huber"
    delta : float > 0, default 1.0
        Huber / pseudo-Huber threshold, in the units of ``y`` (no scale is
        estimated, unlike scikit-learn's ``HuberRegressor``).
    alpha, fit_intercept, max_iter, tol, warm_start, n_threads, verbose
        As in :class:`LinearClassifier`.

    Attributes
    ----------
    coef_ : ndarray of shape (d,)
    intercept_ : float
    n_iter_, n_passes_, n_features_in_, feature_names_in_
        As in :class:`LinearClassifier`.
    """

    _LOSSES = {"huber": HuberLoss, "pseudo_huber": PseudoHuberLoss, "squared_error": SquaredError}

    def __init__(self, loss: str = "huber", *, delta: float = 1.0, alpha: float = 1e-4, fit_intercept: bool = True,
                 max_iter: int = 200, tol: float = 1e-6, warm_start: bool = False, n_threads: int | None = None,
                 verbose: int = 0):
        self.loss = loss
        self.delta = delta
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame, Dask array or DataFrame} of shape (n, d)
            Dask input: as in :meth:`LinearClassifier.fit`; the solver starts from the weighted
            mean of ``y`` (in memory: from the loss's constant optimum).
        y : array-like or Dask array/Series of shape (n,)
        sample_weight : array-like or Dask array/Series of shape (n,), optional

        Returns
        -------
        self
        """
        one_of(self.loss, "loss", tuple(self._LOSSES))
        self._check_common_params()
        loss = SquaredError() if self.loss == "squared_error" else self._LOSSES[self.loss](delta=self.delta)
        data = None
        if _dask.any_dask(X, y, sample_weight):
            data = DaskFitData(X, y, sample_weight, labelled=False)
            total = data.summary.weight_sum
            if not total > 0:
                raise ValueError("sample_weight sums to zero: nothing to fit")
            # the constant optimum needs every y; on Dask the fit starts from the weighted mean instead
            start = np.array([data.summary.weighted_y_sum / total])
            objective = data.objective(data.y[:, None], data.sample_weight, loss, 1, self.alpha, self.fit_intercept,
                                       total, self.n_threads)
        else:
            X, y, sample_weight = self._validate_X_y(X, y, sample_weight, classifier=False)
            if not np.sum(sample_weight) > 0:
                raise ValueError("sample_weight sums to zero: nothing to fit")
            target = y.astype(X.dtype)[:, None]
            start = np.atleast_1d(loss.init_raw_prediction(target[:, 0], sample_weight))
            objective = LinearObjective(X, target, sample_weight, loss, 1, self.alpha, self.fit_intercept)
        w = self._solve(objective, start.astype(np.float64))
        coef, intercept = objective.unpack(w)
        self.coef_ = coef[0].astype(objective.dtype)
        self.intercept_ = objective.dtype.type(intercept[0]) if self.fit_intercept else objective.dtype.type(0.0)
        if data is not None:
            self._record_dask_features(X, data)
        return self

    def predict(self, X):
        """Predictions (n,)."""
        return self._output(X, _first_column, None)


# What the prediction methods make of the (n, L) margins; module-level so that Dask can send them to workers.
def _transformed_margins(transform, coef: np.ndarray, intercept: np.ndarray, X_b: np.ndarray) -> np.ndarray:
    return transform(linear_margins(X_b, coef, intercept))


def _first_column(z: np.ndarray) -> np.ndarray:
    return z[:, 0]


def _decision(z: np.ndarray) -> np.ndarray:
    return z[:, 0] if z.shape[1] == 1 else z


def _probabilities(z: np.ndarray) -> np.ndarray:
    if z.shape[1] == 1:  # sigmoid(-z) for the first class, not 1 - sigmoid(z): no cancellation
        return BinaryCrossEntropy().predict_proba(np.column_stack([-z[:, 0], z[:, 0]]))
    return CrossEntropy().predict_proba(z)


def _log_probabilities(z: np.ndarray) -> np.ndarray:
    if z.shape[1] == 1:
        z = np.column_stack([np.zeros_like(z[:, 0]), z[:, 0]])
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _labels(classes: np.ndarray, z: np.ndarray) -> np.ndarray:
    index = (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else z.argmax(axis=1)
    return classes[index]


def _start_from_class_totals(loss, class_totals: np.ndarray, label_smoothing: float) -> np.ndarray:
    """The loss's constant optimum (float64, (1,) or (K,)): it depends on the data only through each
    class's total weight, so it is computed on K weighted rows, in memory and on Dask alike."""
    n_classes = class_totals.shape[0]
    if n_classes == 2:
        targets = np.array([label_smoothing / 2, 1.0 - label_smoothing / 2])
        return np.atleast_1d(loss.init_raw_prediction(targets, class_totals)).astype(np.float64)
    return np.asarray(loss.init_raw_prediction(np.arange(n_classes), class_totals), dtype=np.float64)
