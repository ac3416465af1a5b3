"""``LinearClassifier`` and ``LinearRegressor``: scikit-learn estimators over nbloss losses.

Both minimise the weighted mean loss plus ``alpha / 2 * ||coef||^2`` (the
intercept is not penalised), built by :class:`._objective.LinearObjective`
and solved by :mod:`._solvers`: truncated Newton with exact Hessian-vector
products where the loss has one (cross-entropy, every element-wise loss),
L-BFGS otherwise (softmax focal loss).  The stopping criterion is
``max |gradient| <= tol``.

Data: ``X`` dense, a pandas DataFrame or SciPy sparse (CSR/CSC); float32 ``X``
stays float32 in every product and kernel (the solver's parameter vector is
float64).  Class weights are folded into the sample weights, so a class weight
of 2 counts like duplicating the class's rows, as in scikit-learn.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import _threading
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
from ._objective import LinearObjective
from ._solvers import SOLVERS


class _ThreadCount:
    """``n_threads`` for the duration of a fit (nbloss's count is process-wide)."""

    def __init__(self, n_threads):
        self.n_threads = n_threads

    def __enter__(self):
        self.previous = _threading.get_num_threads()
        if self.n_threads is not None:
            _threading.set_num_threads(self.n_threads)

    def __exit__(self, *exc):
        _threading.set_num_threads(self.previous)


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

    def _start(self, objective: LinearObjective, start_intercept: np.ndarray) -> np.ndarray:
        w0 = np.zeros(objective.size)
        coef, intercept = objective.unpack(w0)
        previous = getattr(self, "coef_", None)
        if self.warm_start and previous is not None and np.shape(previous) in (coef.shape, coef.shape[1:]):
            coef[...] = np.asarray(previous, dtype=np.float64).reshape(coef.shape)
            if self.fit_intercept:
                intercept[...] = np.asarray(self.intercept_, dtype=np.float64).reshape(intercept.shape)
        elif self.fit_intercept:
            intercept[...] = start_intercept
        return w0

    def _solve(self, objective: LinearObjective, start_intercept: np.ndarray) -> np.ndarray:
        solver = SOLVERS["newton-cg" if objective.has_hessp else "lbfgs"]
        # float32 data: the objective is only known to ~1e-7 relative; below that no step shows a decrease
        stall_tol = max(self.tol, 1e3 * float(np.finfo(objective.dtype).eps)) if objective.dtype == np.float32 else 0
        with _ThreadCount(self.n_threads):
            w, n_iter, converged = solver(objective, self._start(objective, start_intercept), self.tol,
                                          self.max_iter, self.verbose, stall_tol)
        if not converged:
            warnings.warn(f"{type(self).__name__} did not converge to tol={self.tol} in {n_iter} iterations "
                          f"(max_iter={self.max_iter}); increase max_iter, loosen tol or standardise X",
                          ConvergenceWarning, stacklevel=3)
        self.n_iter_ = n_iter
        self.n_passes_ = objective.n_passes
        return w

    def _store(self, objective: LinearObjective, w: np.ndarray) -> None:
        coef, intercept = objective.unpack(w)
        self.coef_ = coef.astype(objective.dtype)
        self.intercept_ = intercept.astype(objective.dtype)

    def _margins(self, X) -> np.ndarray:
        """(n, L) margins of validated ``X`` (the regressor's (d,) ``coef_`` counts as one row)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=False)
        coef = self.coef_.reshape(-1, self.n_features_in_)
        z = X @ coef.T.astype(X.dtype, copy=False)
        return np.asarray(z) + np.atleast_1d(self.intercept_).astype(X.dtype)

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
        X : {array-like, sparse matrix, DataFrame} of shape (n, d)
        y : array-like of shape (n,)
            Any hashable labels; at least two classes.
        sample_weight : array-like of shape (n,), optional

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
        X, y, sample_weight = self._validate_X_y(X, y, sample_weight, classifier=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        classes, labels = encoder.classes_, encoder.transform(y)
        if classes.shape[0] < 2:
            raise ValueError(f"LinearClassifier needs at least two classes in y; got the one class {classes[0]!r}")
        if self.warm_start and hasattr(self, "classes_") and not np.array_equal(self.classes_, classes):
            del self.coef_  # other classes: a cold start
        self.classes_ = classes
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # rows counted by their sample weights (weight 2 equals a repeated row); a class with no weight
            # gets 0, as in nbloss.CrossEntropy, instead of scikit-learn's division by zero
            counts = np.bincount(labels, weights=sample_weight, minlength=classes.shape[0])
            weights = np.divide(counts.sum(), classes.shape[0] * counts, out=np.zeros_like(counts),
                                where=counts > 0)
            sample_weight = sample_weight * weights[labels].astype(X.dtype)
        elif self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=classes, y=y)
            sample_weight = sample_weight * weights[labels].astype(X.dtype)
        if not np.sum(sample_weight) > 0:
            raise ValueError("sample_weight (with class_weight) sums to zero: nothing to fit")

        n_classes = classes.shape[0]
        loss = self._loss_for(n_classes)
        if n_classes == 2:
            target = labels.astype(X.dtype)[:, None]
            if eps:
                target = target * X.dtype.type(1.0 - eps) + X.dtype.type(eps / 2)
            n_outputs = 1
        else:
            target, n_outputs = labels.astype(np.int64), n_classes
        start = np.atleast_1d(loss.init_raw_prediction(target if n_classes > 2 else target[:, 0], sample_weight))
        objective = LinearObjective(X, target, sample_weight, loss, n_outputs, self.alpha, self.fit_intercept)
        w = self._solve(objective, start.astype(np.float64))
        self._store(objective, w)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes (of ``classes_[1]``), else (n, K)."""
        z = self._margins(X)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, K), computed stably from the logits."""
        z = self._margins(X)
        if z.shape[1] == 1:  # sigmoid(-z) for the first class, not 1 - sigmoid(z): no cancellation
            return BinaryCrossEntropy().predict_proba(np.column_stack([-z[:, 0], z[:, 0]]))
        return CrossEntropy().predict_proba(z)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities (n, K), from the logits (no log of a rounded probability)."""
        z = self._margins(X)
        if z.shape[1] == 1:
            z = np.column_stack([np.zeros_like(z[:, 0]), z[:, 0]])
        m = z.max(axis=1, keepdims=True)
        shifted = z - m
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """Most probable class label per row."""
        z = self._margins(X)
        index = (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else z.argmax(axis=1)
        return self.classes_[index]


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
        X : {array-like, sparse matrix, DataFrame} of shape (n, d)
        y : array-like of shape (n,)
        sample_weight : array-like of shape (n,), optional

        Returns
        -------
        self
        """
        one_of(self.loss, "loss", tuple(self._LOSSES))
        self._check_common_params()
        loss = SquaredError() if self.loss == "squared_error" else self._LOSSES[self.loss](delta=self.delta)
        X, y, sample_weight = self._validate_X_y(X, y, sample_weight, classifier=False)
        if not np.sum(sample_weight) > 0:
            raise ValueError("sample_weight sums to zero: nothing to fit")
        target = y.astype(X.dtype)[:, None]
        start = np.atleast_1d(loss.init_raw_prediction(target[:, 0], sample_weight))
        objective = LinearObjective(X, target, sample_weight, loss, 1, self.alpha, self.fit_intercept)
        w = self._solve(objective, start.astype(np.float64))
        coef, intercept = objective.unpack(w)
        self.coef_ = coef[0].astype(X.dtype)
        self.intercept_ = X.dtype.type(intercept[0]) if self.fit_intercept else X.dtype.type(0.0)
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions (n,)."""
        return self._margins(X)[:, 0]
