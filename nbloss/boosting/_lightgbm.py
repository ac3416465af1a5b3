"""LightGBM adapters: ``objective=`` (scikit-learn classes or ``params``) and ``eval_metric=``/``feval=``.

LightGBM 4 hands a custom objective raw margins ``(n,)``, or ``(n, K)`` for
multiclass (a Fortran-ordered view of its score buffer), and flattens the
returned ``(n, K)`` gradients in Fortran order and casts them to float32
itself.  It does not weight a custom objective's derivatives: the adapter does.
With a custom objective LightGBM starts every row at margin 0 and does not
store a starting margin in the model: :meth:`LightGBMObjective.init_score`
gives the one to pass to ``fit``/``Dataset`` and
:meth:`LightGBMObjective.fold_init_score` moves it into the first trees so that
the model predicts on its own.
"""

from __future__ import annotations

import numpy as np

from ._common import MetricAdapter, ObjectiveAdapter, check_api, constant_of, per_row, starting_margin


class LightGBMObjective(ObjectiveAdapter):
    library, factory = "lightgbm", "lightgbm_objective"

    def init_score(self, y, sample_weight=None) -> np.ndarray:
        """Per-row starting margins ``loss.init_raw_prediction(y, sample_weight)`` for
        ``fit(init_score=...)`` or ``lightgbm.Dataset(init_score=...)``: (n,) or (n, K) float64."""
        return per_row(starting_margin(self.loss, y, sample_weight), np.shape(y)[0])

    def fold_init_score(self, model, init_score):
        """Add the (constant) ``init_score`` used in training to the leaves of the first tree of each
        output, so that ``predict`` includes it (as LightGBM's own ``boost_from_average`` does).

        Parameters
        ----------
        model : lightgbm.LGBMModel or lightgbm.Booster
            Trained with ``init_score``; changed in place and returned.
        init_score : array-like of shape (n,) or (n, K)
            The value passed to training (every row must hold the same margins).
        """
        booster = getattr(model, "booster_", model)
        constant = constant_of(init_score, "init_score")
        trees = booster.dump_model(num_iteration=1)["tree_info"]
        if len(trees) < constant.shape[0]:
            raise ValueError(f"the model has {len(trees)} trees; folding a starting margin of "
                             f"{constant.shape[0]} outputs needs one boosting round at least")
        for k, c in enumerate(constant):
            for leaf in range(trees[k]["num_leaves"]):
                booster.set_leaf_output(k, leaf, booster.get_leaf_output(k, leaf) + float(c))
        return model


class LightGBMSklearnObjective(LightGBMObjective):
    """``LGBMClassifier``/``LGBMRegressor(objective=...)``: called as ``(y_true, y_pred, weight)``."""

    api = "sklearn"

    def __call__(self, y_true, y_pred, weight):
        return self.derivatives(y_true, y_pred, weight)


class LightGBMNativeObjective(LightGBMObjective):
    """``lightgbm.train({"objective": ...}, ...)``: called as ``(preds, train_data)``."""

    api = "native"

    def __call__(self, preds, train_data):
        return self.derivatives(train_data.get_label(), preds, train_data.get_weight())




def lightgbm_objective(loss, api: str = "sklearn", min_hessian: float = 1e-16, hessian: str = "exact"):
    """An nbloss loss as a LightGBM custom objective.

    Parameters
    ----------
    loss : nbloss loss object
    api : {"sklearn", "native"}
        ``"sklearn"`` for ``LGBMClassifier``/``LGBMRegressor(objective=...)``;
        ``"native"`` for ``lightgbm.train(params={"objective": ...})``.
    min_hessian : float, default 1e-16
        Hessian floor per unit of sample weight.
    hessian : {"exact", "constant"}, default "exact"
        ``"constant"`` is LightGBM's own ``huber`` choice (Hessian = weight).

    Returns
    -------
    objective : callable returning ``(grad, hess)`` shaped like the margins, with
        ``init_score(y, sample_weight=None)`` and ``fold_init_score(model, init_score)``.
    """
    cls = LightGBMSklearnObjective if check_api(api) == "sklearn" else LightGBMNativeObjective
    return cls(loss, min_hessian, hessian)


class LightGBMSklearnMetric(MetricAdapter):
    """``eval_metric=`` callable ``(y_true, y_pred, weight) -> (name, value, is_higher_better)``."""

    library, factory = "lightgbm", "lightgbm_metric"

    def __call__(self, y_true, y_pred, weight):
        return self.metric.name, self.metric(y_true, y_pred, weight), False


class LightGBMNativeMetric(MetricAdapter):
    """``feval=`` callable ``(preds, eval_data) -> (name, value, is_higher_better)``."""

    library, factory = "lightgbm", "lightgbm_metric"

    def __call__(self, preds, eval_data):
        return self.metric.name, self.metric(eval_data.get_label(), preds, eval_data.get_weight()), False


def lightgbm_metric(loss, api: str = "sklearn"):
    """An nbloss loss as a LightGBM evaluation metric: ``loss.loss(y, margins, w, reduction="mean")``.

    LightGBM passes raw margins to a metric when the objective is custom (use it
    with :func:`lightgbm_objective`).  A validation set trained with
    ``init_score`` needs its own ``init_score`` (``eval_init_score=``) too.
    """
    return LightGBMSklearnMetric(loss) if check_api(api) == "sklearn" else LightGBMNativeMetric(loss)
