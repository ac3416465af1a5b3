"""nbloss losses as custom objectives and metrics of XGBoost, LightGBM and CatBoost.

One module per library (``_xgboost``, ``_lightgbm``, ``_catboost``) converts
that library's containers, layouts and sign convention; :mod:`._common` holds
what they share (the Hessian policy and the starting margin).  Each adapter
imports its library on construction and names the nbloss extra to install when
it is missing.

Every objective returns the gradient and Hessian of ``sample_weight * loss``
with respect to the library's raw margins, the Hessian floored at
``min_hessian`` per unit of weight (``hessian="exact"``) or replaced by the
weight (``hessian="constant"``).  Every metric is ``loss.loss(y, margins,
sample_weight, reduction="mean")`` on raw margins.
"""

from ._catboost import CatBoostMetric, CatBoostObjective
from ._common import HESSIAN_MODES
from ._lightgbm import lightgbm_metric, lightgbm_objective
from ._xgboost import xgboost_metric, xgboost_objective

__all__ = [
    "HESSIAN_MODES",
    "CatBoostMetric",
    "CatBoostObjective",
    "lightgbm_metric",
    "lightgbm_objective",
    "xgboost_metric",
    "xgboost_objective",
]
