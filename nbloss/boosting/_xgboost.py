"""XGBoost adapters: ``obj=``/``objective=`` and ``custom_metric=``/``eval_metric=``.

XGBoost (3.2 and later) hands a custom objective raw margins: ``(n,)``, or
``(n, K)`` for multiclass and multi-output models, and takes gradients of that
shape back.  Labels arrive flattened as float32 (``DMatrix.get_label``),
weights as an empty array when there are none.  With a custom objective the
scikit-learn classes still set an internal objective (``binary:logistic`` for
two classes, ``multi:softprob`` for more, ``reg:squarederror`` for
regressors), which decides how ``predict_proba`` transforms the margins and in
which space ``base_score`` is read.
"""

from __future__ import annotations

import numpy as np

from ._common import MetricAdapter, ObjectiveAdapter, check_api, is_sigmoid, starting_margin


class XGBoostObjective(ObjectiveAdapter):
    library, factory = "xgboost", "xgboost_objective"

    def _margin_start(self, y, sample_weight) -> np.ndarray:
        return starting_margin(self.loss, y, sample_weight)


class XGBoostSklearnObjective(XGBoostObjective):
    """Objective for ``XGBClassifier(objective=...)`` / ``XGBRegressor(objective=...)``."""

    api = "sklearn"

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.derivatives(y_true, y_pred, sample_weight)

    def base_score(self, y, sample_weight=None) -> float | list[float]:
        """``base_score=`` that starts boosting at ``loss.init_raw_prediction(y, sample_weight)``.

        ``XGBClassifier`` reads ``base_score`` as a probability for sigmoid
        losses (its internal objective is ``binary:logistic``) and as margins
        for softmax losses (``multi:softprob``); ``XGBRegressor`` as a margin.
        The value is stored in the model, so predictions need nothing more.
        Sigmoid losses are assumed to train an ``XGBClassifier``.
        """
        margin = self._margin_start(y, sample_weight)
        if is_sigmoid(self.loss):
            margin = self.loss.predict_proba(margin)
        return float(margin[0]) if margin.shape[0] == 1 else [float(m) for m in margin]


class XGBoostNativeObjective(XGBoostObjective):
    """Objective for ``xgboost.train(params, dtrain, obj=...)``."""

    api = "native"

    def __call__(self, predt, dtrain):
        return self.derivatives(dtrain.get_label(), predt, dtrain.get_weight())

    def base_score(self, y, sample_weight=None) -> float | list[float]:
        """``params["base_score"]`` (margin space: with ``obj=`` the booster's objective stays
        ``reg:squarederror``, whose link is the identity) that starts boosting at
        ``loss.init_raw_prediction(y, sample_weight)``."""
        margin = self._margin_start(y, sample_weight)
        return float(margin[0]) if margin.shape[0] == 1 else [float(m) for m in margin]


def xgboost_objective(loss, api: str = "sklearn", min_hessian: float = 1e-16, hessian: str = "exact"):
    """An nbloss loss as an XGBoost custom objective.

    Parameters
    ----------
    loss : nbloss loss object
    api : {"sklearn", "native"}
        ``"sklearn"``: a callable ``(y_true, y_pred, sample_weight=None)`` for
        ``XGBClassifier``/``XGBRegressor(objective=...)``.  ``"native"``: a
        callable ``(predt, dtrain)`` for ``xgboost.train(obj=...)``.
    min_hessian : float, default 1e-16
        Hessian floor per unit of sample weight.
    hessian : {"exact", "constant"}, default "exact"

    Returns
    -------
    objective : callable returning ``(grad, hess)`` shaped like the margins,
        with a ``base_score(y, sample_weight=None)`` method giving the
        starting margin in the form the chosen API reads it.
    """
    cls = XGBoostSklearnObjective if check_api(api) == "sklearn" else XGBoostNativeObjective
    return cls(loss, min_hessian, hessian)


class XGBoostSklearnMetric(MetricAdapter):
    """``eval_metric=`` callable ``(y_true, y_score, sample_weight=None) -> float`` (lower is better)."""

    library, factory = "xgboost", "xgboost_metric"

    def __init__(self, loss):
        super().__init__(loss)
        self.__name__ = self.metric.name  # XGBoost names the metric after the function

    def __call__(self, y_true, y_score, sample_weight=None) -> float:
        return self.metric(y_true, y_score, sample_weight)


class XGBoostNativeMetric(MetricAdapter):
    """``custom_metric=`` callable ``(predt, dmatrix) -> (name, value)`` (lower is better)."""

    library, factory = "xgboost", "xgboost_metric"

    def __call__(self, predt, dmatrix) -> tuple[str, float]:
        return self.metric.name, self.metric(dmatrix.get_label(), predt, dmatrix.get_weight())


def xgboost_metric(loss, api: str = "sklearn"):
    """An nbloss loss as an XGBoost evaluation metric: ``loss.loss(y, margins, w, reduction="mean")``.

    The metric reads raw margins, which is what XGBoost passes to a custom
    metric when the objective is custom too (use it with
    :func:`xgboost_objective`).
    """
    return XGBoostSklearnMetric(loss) if check_api(api) == "sklearn" else XGBoostNativeMetric(loss)
