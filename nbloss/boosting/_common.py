"""What every boosting adapter shares: library-independent derivatives, Hessian policy, starting margins.

Conventions: the libraries hand over raw margins ``(n,)`` or ``(n, K)``, float32
or float64, and labels as floats.  :class:`Derivatives` turns them into the
gradient and the (floored or constant) Hessian of ``sample_weight * loss`` with
the margins' shape; each library module only converts its own containers,
layouts and signs around it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from .. import _dask
from .. import _validation as v
from ..losses import _Loss, _SigmoidLoss, _SoftmaxLoss

HESSIAN_MODES = ("exact", "constant")


def require(module: str, extra: str, who: str) -> ModuleType:
    """Import a boosting library, or say which nbloss extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{who} needs {module}, which is not installed: pip install 'nbloss[{extra}]'") from exc


def check_loss(loss) -> _Loss:
    if not isinstance(loss, _Loss):
        raise TypeError(f"loss must be an nbloss loss object (e.g. nbloss.CrossEntropy()), got {type(loss).__name__}")
    return loss


def check_api(api: str) -> str:
    return v.one_of(api, "api", ("sklearn", "native"))


def is_softmax(loss: _Loss) -> bool:
    """Softmax losses take class indices and (n, K) margins; the others targets shaped like the margins."""
    return isinstance(loss, _SoftmaxLoss)


def is_sigmoid(loss: _Loss) -> bool:
    return isinstance(loss, _SigmoidLoss)


class Derivatives:
    """Gradient and Hessian of ``sample_weight * loss`` as a booster wants them.

    Parameters
    ----------
    loss : nbloss loss object
    min_hessian : float >= 0
        Floor of the Hessian per unit of sample weight: ``max(h, min_hessian)
        * w``, as XGBoost's own logistic objective floors it.  It keeps a
        Newton leaf step defined where the exact curvature vanishes or turns
        negative (focal loss on badly misclassified rows).
    hessian : {"exact", "constant"}
        ``"exact"``: the kernel's exact diagonal Hessian, floored.
        ``"constant"``: the sample weight (1 per unit weight), LightGBM's
        choice for its ``huber`` objective; leaf values become weighted means
        of the (bounded) gradients, so losses whose curvature is zero on most
        rows (Huber's linear region) still take sensible steps.
    """

    def __init__(self, loss, min_hessian: float = 1e-16, hessian: str = "exact"):
        self.loss = check_loss(loss)
        self.min_hessian = v.positive_scalar(min_hessian, "min_hessian", allow_zero=True)
        self.hessian = v.one_of(hessian, "hessian", HESSIAN_MODES)

    def __call__(self, labels, margins, weight=None) -> tuple[np.ndarray, np.ndarray]:
        """``(gradient, hessian)``, each with the shape and dtype of ``margins``."""
        margins = np.asarray(margins)
        weight = no_weights_as_none(weight)
        y = targets_for(self.loss, labels, margins)
        if self.hessian == "constant":
            grad = self.loss.gradient(y, margins, weight)
            hess = np.empty_like(grad)
            hess[...] = self._per_row(weight, grad, 1.0)
            return grad, hess
        grad, hess = self.loss.gradient_hessian(y, margins, weight)
        if self.min_hessian > 0:
            np.maximum(hess, self._per_row(weight, hess, self.min_hessian), out=hess)
        return grad, hess

    @staticmethod
    def _per_row(weight, like: np.ndarray, value: float):
        """``value * weight`` broadcastable against ``like`` ((n,) or (n, K))."""
        if weight is None:
            return like.dtype.type(value)
        w = value * np.asarray(weight, dtype=like.dtype)
        return w if like.ndim == 1 else w[:, None]


def targets_for(loss: _Loss, labels, margins: np.ndarray) -> np.ndarray:
    """Labels as the loss takes them: class indices (n,), or targets shaped like the margins
    (libraries hand multi-output labels over flattened)."""
    labels = np.asarray(labels)
    if not is_softmax(loss) and labels.size == margins.size and labels.shape != margins.shape:
        labels = labels.reshape(margins.shape)
    return labels


def no_weights_as_none(weight):
    """Libraries say "no weights" with None or an empty array."""
    return None if weight is None or np.asarray(weight).size == 0 else weight


def starting_margin(loss: _Loss, labels, weight=None) -> np.ndarray:
    """The constant raw score the loss is minimised by, as a float64 vector of the outputs' length.

    Dask ``labels`` (``xgboost.dask``) are reduced on the workers to their distinct values with total
    weights, on which the constant optimum is the same."""
    if _dask.any_dask(labels, weight):
        labels, weight = _dask.weighted_distinct(labels, weight)
    init = check_loss(loss).init_raw_prediction(labels, no_weights_as_none(weight))
    return np.atleast_1d(np.asarray(init, dtype=np.float64))


def per_row(margin: np.ndarray, n_rows: int) -> np.ndarray:
    """A constant starting margin repeated for every row: (n,) for one output, else (n, K)."""
    out = np.broadcast_to(margin, (n_rows, margin.shape[0]))
    return np.array(out[:, 0] if margin.shape[0] == 1 else out, dtype=np.float64)


def constant_of(init, name: str) -> np.ndarray:
    """The per-output constant behind a per-row starting margin (which must not vary across rows)."""
    arr = v.as_float_array(init, name, dtype=np.float64)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)
    if arr.shape[0] == 0 or not np.all(arr == arr[0]):
        raise ValueError(f"{name} must be the same for every row (as returned by the adapter) to be folded "
                         "into the model")
    return arr[0]


class MetricValue:
    """A loss as an evaluation metric: the weighted mean, ``loss.loss(..., reduction="mean")``."""

    def __init__(self, loss):
        self.loss = check_loss(loss)
        self.name = f"nbloss_{type(loss).__name__}"

    def __call__(self, labels, margins, weight=None) -> float:
        margins = np.asarray(margins)
        return float(self.loss.loss(targets_for(self.loss, labels, margins), margins, no_weights_as_none(weight)))

    def sum_and_weight(self, labels, margins, weight=None) -> tuple[float, float]:
        """Numerator and denominator of the mean, for libraries that add them up over parts of the data."""
        margins = np.asarray(margins)
        return self.loss._sum_and_total_weight(targets_for(self.loss, labels, margins), margins,
                                               no_weights_as_none(weight))


class ObjectiveAdapter:
    """Base of the XGBoost and LightGBM objectives: imports the library, holds the :class:`Derivatives`.

    Subclasses set ``library`` (module and extra name), ``factory`` (the public function) and ``api``.
    """

    library: str
    factory: str
    api: str

    def __init__(self, loss, min_hessian: float, hessian: str):
        require(self.library, self.library, self.factory)
        self.derivatives = Derivatives(loss, min_hessian, hessian)

    @property
    def loss(self):
        return self.derivatives.loss

    def __repr__(self) -> str:
        d = self.derivatives
        return (f"{self.factory}({d.loss!r}, api={self.api!r}, min_hessian={d.min_hessian}, "
                f"hessian={d.hessian!r})")


class MetricAdapter:
    """Base of the XGBoost and LightGBM metrics: imports the library, holds the :class:`MetricValue`."""

    library: str
    factory: str

    def __init__(self, loss):
        require(self.library, self.library, self.factory)
        self.metric = MetricValue(loss)
