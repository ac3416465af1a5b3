"""The boosting adapters, proven by training real XGBoost, LightGBM and CatBoost models."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import catboost as cb
import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from focal_reference import binary_focal_grad_hess, softmax_focal_grad_hess
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import log_loss

import nbloss
from nbloss.boosting import (
    CatBoostMetric,
    CatBoostObjective,
    lightgbm_metric,
    lightgbm_objective,
    xgboost_metric,
    xgboost_objective,
)

# CatBoost tries to compile custom objects' methods with Numba and warns that it cannot when they use self.
pytestmark = pytest.mark.filterwarnings("ignore:Can't optimze method:UserWarning")

RNG = np.random.default_rng(20261122)


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(3000, 12, n_informative=6, weights=[0.8], flip_y=0.05, random_state=1)
    w = np.random.default_rng(2).uniform(0.5, 2.0, y.shape[0])
    return X, y.astype(np.float64), w


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_classification(6000, 12, n_informative=8, n_classes=4, n_clusters_per_class=1,
                               weights=[0.4, 0.3, 0.2, 0.1], flip_y=0.05, random_state=3)
    return _split(X, y, 4000)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(3000, 10, n_informative=6, noise=5.0, random_state=4)
    y = y / y.std()
    y[::40] += 20.0  # outliers: Huber's linear region
    return X, y


def _margins_close(a, b, atol):
    diff = float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
    assert diff <= atol, f"max |margin difference| {diff:.3g} > {atol}"
    return diff


class _NumpyObjective:
    """A custom objective from the independent NumPy focal formulas, floored like the adapters."""

    def __init__(self, grad_hess, min_hessian=1e-16):
        self.grad_hess, self.min_hessian = grad_hess, min_hessian

    def __call__(self, y_true, y_pred, sample_weight=None):
        grad, hess = self.grad_hess(y_true, y_pred)
        return grad, np.maximum(hess, self.min_hessian)


# ------------------------------------------------------------------ XGBoost
XGB = dict(n_estimators=25, max_depth=4, learning_rate=0.3, tree_method="hist", n_jobs=2)


def test_xgboost_bce_reproduces_binary_logistic(binary):
    X, y, w = binary
    obj = xgboost_objective(nbloss.BinaryCrossEntropy())
    ref = xgb.XGBClassifier(**XGB).fit(X, y, sample_weight=w)
    mine = xgb.XGBClassifier(**XGB, objective=obj, base_score=obj.base_score(y, w)).fit(X, y, sample_weight=w)
    _margins_close(mine.predict(X, output_margin=True), ref.predict(X, output_margin=True), 1e-5)
    np.testing.assert_allclose(mine.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_xgboost_native_bce_reproduces_binary_logistic(binary):
    X, y, w = binary
    params = {"max_depth": 4, "eta": 0.3, "tree_method": "hist", "nthread": 2}
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    ref = xgb.train({**params, "objective": "binary:logistic"}, dtrain, 25)
    obj = xgboost_objective(nbloss.BinaryCrossEntropy(), api="native")
    mine = xgb.train({**params, "base_score": obj.base_score(y, w)}, dtrain, 25, obj=obj)
    _margins_close(mine.predict(dtrain, output_margin=True), ref.predict(dtrain, output_margin=True), 1e-5)


def test_xgboost_multiclass_cross_entropy_matches_builtin_log_loss(multiclass):
    X, y, Xv, yv = multiclass
    ref = xgb.XGBClassifier(**XGB).fit(X, y)
    obj = xgboost_objective(nbloss.CrossEntropy())
    mine = xgb.XGBClassifier(**XGB, objective=obj, base_score=obj.base_score(y)).fit(X, y)
    ref_ll, mine_ll = log_loss(yv, ref.predict_proba(Xv)), log_loss(yv, mine.predict_proba(Xv))
    assert mine_ll <= 1.01 * ref_ll, (mine_ll, ref_ll)


def test_xgboost_metric_is_the_loss_mean_on_margins(multiclass):
    X, y, Xv, yv = multiclass
    w = RNG.uniform(0.5, 2.0, yv.shape[0])
    loss = nbloss.CrossEntropy(label_smoothing=0.1)
    obj = xgboost_objective(loss)
    model = xgb.XGBClassifier(**XGB, objective=obj, eval_metric=xgboost_metric(loss)).fit(
        X, y, eval_set=[(Xv, yv)], sample_weight_eval_set=[w], verbose=False)
    recorded = model.evals_result()["validation_0"]["nbloss_CrossEntropy"][-1]
    expected = loss.loss(yv, model.predict(Xv, output_margin=True), w)
    np.testing.assert_allclose(recorded, expected, rtol=1e-6)

    dval = xgb.DMatrix(Xv, label=yv, weight=w)
    name, value = xgboost_metric(loss, api="native")(model.predict(Xv, output_margin=True), dval)
    assert name == "nbloss_CrossEntropy"
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.parametrize("family", ["binary", "softmax"])
def test_xgboost_focal_equals_numpy_focal_formulas(family, binary, multiclass):
    if family == "binary":
        X, y, _ = binary
        loss, numpy_obj = nbloss.BinaryFocalLoss(gamma=2.0, alpha=0.25), _NumpyObjective(binary_focal_grad_hess)
        make = xgb.XGBClassifier
    else:
        X, y, _, _ = multiclass
        alpha = [0.5, 1.0, 1.0, 2.0]
        loss = nbloss.FocalLoss(gamma=2.0, alpha=alpha)
        numpy_obj = _NumpyObjective(lambda t, z: softmax_focal_grad_hess(t, z, 2.0, alpha))
        make = xgb.XGBClassifier
    ref = make(**XGB, objective=numpy_obj).fit(X, y)
    mine = make(**XGB, objective=xgboost_objective(loss)).fit(X, y)
    _margins_close(mine.predict(X, output_margin=True), ref.predict(X, output_margin=True), 1e-4)


def test_xgboost_multilabel_and_multi_target(binary, regression):
    X, y, _ = binary
    Y = np.column_stack([y, (X[:, 0] > 0).astype(float), (X[:, 1] > 0.5).astype(float)])
    loss = nbloss.BinaryCrossEntropy(pos_weight=[1.0, 2.0, 0.5])
    obj = xgboost_objective(loss)
    model = xgb.XGBClassifier(**XGB, objective=obj, base_score=obj.base_score(Y)).fit(X, Y)
    margins = model.predict(X, output_margin=True)
    assert margins.shape == Y.shape
    start = loss.loss(Y, np.broadcast_to(loss.init_raw_prediction(Y), Y.shape))
    assert loss.loss(Y, margins) < 0.7 * start

    Xr, yr = regression
    Yr = np.column_stack([yr, -0.5 * yr + 3.0])
    hub = nbloss.HuberLoss(delta=1.0)
    robj = xgboost_objective(hub, hessian="constant")
    reg = xgb.XGBRegressor(**XGB, objective=robj, base_score=robj.base_score(Yr)).fit(Xr, Yr)
    pred = reg.predict(Xr)
    assert pred.shape == Yr.shape
    assert hub.loss(Yr, pred) < 0.7 * hub.loss(Yr, np.broadcast_to(hub.init_raw_prediction(Yr), Yr.shape))


# ------------------------------------------------------------------ LightGBM
LGB = dict(n_estimators=25, num_leaves=15, learning_rate=0.1, verbose=-1, n_jobs=2, deterministic=True)


def test_lightgbm_huber_constant_hessian_reproduces_builtin_huber(regression):
    X, y = regression
    ref = lgb.LGBMRegressor(objective="huber", alpha=0.5, **LGB).fit(X, y)
    obj = lightgbm_objective(nbloss.HuberLoss(delta=0.5), hessian="constant")
    # LightGBM's huber starts from the label mean (boost_from_average): give the custom objective the same start.
    init = np.full(y.shape[0], y.mean())
    mine = lgb.LGBMRegressor(objective=obj, **LGB).fit(X, y, init_score=init)
    _margins_close(mine.predict(X) + y.mean(), ref.predict(X), 1e-5)
    obj.fold_init_score(mine, init)
    _margins_close(mine.predict(X), ref.predict(X), 1e-5)
    assert pickle.loads(pickle.dumps(mine)).predict(X[:5]) == pytest.approx(ref.predict(X[:5]), abs=1e-5)


def test_lightgbm_native_huber_reproduces_builtin_huber(regression):
    X, y = regression
    w = RNG.uniform(0.5, 2.0, y.shape[0])
    params = {"num_leaves": 15, "learning_rate": 0.1, "verbose": -1, "num_threads": 2, "deterministic": True}
    ref = lgb.train({**params, "objective": "huber", "alpha": 0.5, "boost_from_average": False},
                    lgb.Dataset(X, y, weight=w), 25)
    obj = lightgbm_objective(nbloss.HuberLoss(delta=0.5), api="native", hessian="constant")
    mine = lgb.train({**params, "objective": obj}, lgb.Dataset(X, y, weight=w), 25)
    _margins_close(mine.predict(X), ref.predict(X), 1e-5)


def test_lightgbm_multiclass_cross_entropy_matches_builtin_log_loss(multiclass):
    X, y, Xv, yv = multiclass
    ref = lgb.LGBMClassifier(**LGB).fit(X, y)
    loss = nbloss.CrossEntropy()
    obj = lightgbm_objective(loss)
    init = obj.init_score(y)
    mine = lgb.LGBMClassifier(**LGB, objective=obj).fit(X, y, init_score=init)
    obj.fold_init_score(mine, init)
    proba = loss.predict_proba(mine.predict(Xv, raw_score=True))
    ref_ll, mine_ll = log_loss(yv, ref.predict_proba(Xv)), log_loss(yv, proba)
    assert mine_ll <= 1.01 * ref_ll, (mine_ll, ref_ll)


@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")  # eval_X/eval_y exist from 4.7 only
def test_lightgbm_metric_is_the_loss_mean_on_margins(multiclass):
    X, y, Xv, yv = multiclass
    w = RNG.uniform(0.5, 2.0, yv.shape[0])
    loss = nbloss.FocalLoss(gamma=1.7)
    model = lgb.LGBMClassifier(**LGB, objective=lightgbm_objective(loss)).fit(
        X, y, eval_set=[(Xv, yv)], eval_sample_weight=[w], eval_metric=lightgbm_metric(loss))
    recorded = model.evals_result_["valid_0"]["nbloss_FocalLoss"][-1]
    np.testing.assert_allclose(recorded, loss.loss(yv, model.predict(Xv, raw_score=True), w), rtol=1e-9)

    params = {"num_leaves": 15, "verbose": -1, "num_threads": 2, "num_class": 4,
              "objective": lightgbm_objective(loss, api="native")}
    dtrain = lgb.Dataset(X, y)
    dval = lgb.Dataset(Xv, yv, weight=w, reference=dtrain)
    result = {}
    booster = lgb.train(params, dtrain, 5, valid_sets=[dval], feval=lightgbm_metric(loss, api="native"),
                        callbacks=[lgb.record_evaluation(result)])
    np.testing.assert_allclose(result["valid_0"]["nbloss_FocalLoss"][-1],
                               loss.loss(yv, booster.predict(Xv, raw_score=True), w), rtol=1e-9)


@pytest.mark.parametrize("family", ["binary", "softmax"])
def test_lightgbm_focal_equals_numpy_focal_formulas(family, binary, multiclass):
    if family == "binary":
        X, y, _ = binary
        loss, numpy_obj = nbloss.BinaryFocalLoss(gamma=2.0, alpha=0.25), _NumpyObjective(binary_focal_grad_hess)
    else:
        X, y, _, _ = multiclass
        loss = nbloss.FocalLoss(gamma=2.0)
        numpy_obj = _NumpyObjective(lambda t, z: softmax_focal_grad_hess(t, z, 2.0))
    ref = lgb.LGBMClassifier(**LGB, objective=lambda t, z: numpy_obj(t, z)).fit(X, y)
    mine = lgb.LGBMClassifier(**LGB, objective=lightgbm_objective(loss)).fit(X, y)
    _margins_close(mine.predict(X, raw_score=True), ref.predict(X, raw_score=True), 1e-4)


# ------------------------------------------------------------------ CatBoost
CB = dict(iterations=25, depth=4, learning_rate=0.3, verbose=0, random_seed=0, thread_count=2,
          leaf_estimation_method="Newton", leaf_estimation_iterations=1, boosting_type="Plain", bootstrap_type="No",
          allow_writing_files=False)


def test_catboost_bce_reproduces_logloss(binary):
    X, y, w = binary
    ref = cb.CatBoostClassifier(loss_function="Logloss", boost_from_average=True, **CB).fit(X, y, sample_weight=w)
    loss = nbloss.BinaryCrossEntropy()
    obj = CatBoostObjective(loss)
    baseline = obj.baseline(y, w)
    mine = cb.CatBoostClassifier(loss_function=obj, eval_metric=CatBoostMetric(loss), **CB).fit(
        X, y, sample_weight=w, baseline=baseline)
    obj.fold_baseline(mine, baseline)
    # CatBoost's Logloss and the adapter's derivatives are the same float64 formulas; the margins differ
    # only by CatBoost's own rounding of the starting average (its bias differs from logit(mean) by ~4e-8).
    _margins_close(mine.predict(X, prediction_type="RawFormulaVal"), ref.predict(X, prediction_type="RawFormulaVal"),
                   1e-6)
    np.testing.assert_allclose(mine.predict_proba(X), ref.predict_proba(X), atol=1e-7)


def test_catboost_multiclass_cross_entropy_matches_builtin_log_loss(multiclass):
    X, y, Xv, yv = multiclass
    n = 1500  # CatBoost calls a multiclass custom objective once per row: keep the data small
    params = {**CB, "iterations": 20}
    ref = cb.CatBoostClassifier(loss_function="MultiClass", **params).fit(X[:n], y[:n])
    loss = nbloss.CrossEntropy()
    obj = CatBoostObjective(loss)
    baseline = obj.baseline(y[:n])
    mine = cb.CatBoostClassifier(loss_function=obj, eval_metric="MultiClass", **params).fit(
        X[:n], y[:n], baseline=baseline)
    obj.fold_baseline(mine, baseline)
    proba = loss.predict_proba(mine.predict(Xv, prediction_type="RawFormulaVal"))
    ref_ll, mine_ll = log_loss(yv, ref.predict_proba(Xv)), log_loss(yv, proba)
    assert mine_ll <= 1.01 * ref_ll, (mine_ll, ref_ll)


def test_catboost_metric_is_the_loss_mean_on_margins(binary):
    X, y, w = binary
    Xt, yt, Xv, yv = _split(X, y, 2000)
    wv = w[2000:]
    loss = nbloss.BinaryFocalLoss(gamma=1.0, alpha=0.4)
    model = cb.CatBoostClassifier(loss_function=CatBoostObjective(loss), eval_metric=CatBoostMetric(loss), **CB)
    model.fit(Xt, yt, eval_set=cb.Pool(Xv, yv, weight=wv), use_best_model=False)
    recorded = model.get_evals_result()["validation"]["CatBoostMetric"][-1]
    # CatBoost adds up evaluate()'s partial sums over blocks of rows: last-digit differences only
    np.testing.assert_allclose(recorded, loss.loss(yv, model.predict(Xv, prediction_type="RawFormulaVal"), wv),
                               rtol=1e-7)


@pytest.mark.parametrize("family", ["binary", "softmax"])
def test_catboost_focal_equals_numpy_focal_formulas(family, binary, multiclass):
    if family == "binary":
        X, y, _ = binary
        loss, grad_hess = nbloss.BinaryFocalLoss(gamma=2.0, alpha=0.25), binary_focal_grad_hess
    else:
        X, y, _, _ = multiclass
        X, y = X[:800], y[:800]
        loss, grad_hess = nbloss.FocalLoss(gamma=2.0), (lambda t, z: softmax_focal_grad_hess(t, z, 2.0))

    class NumpyFocal:  # CatBoost's documented protocol, written the usual way
        def calc_ders_range(self, approxes, targets, weights):
            g, h = grad_hess(np.asarray(targets), np.asarray(approxes))
            return list(zip(-g, -np.maximum(h, 1e-16)))

        def calc_ders_multi(self, approx, target, weight):
            g, h = grad_hess(np.array([target]), np.asarray(approx)[None, :])
            return -g[0], np.diag(-np.maximum(h[0], 1e-16))

    params = {**CB, "iterations": 10, "eval_metric": "Logloss" if family == "binary" else "MultiClass"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CatBoost's notes on compiling NumpyFocal with Numba
        ref = cb.CatBoostClassifier(loss_function=NumpyFocal(), **params).fit(X, y)
    mine = cb.CatBoostClassifier(loss_function=CatBoostObjective(loss), **params).fit(X, y)
    _margins_close(mine.predict(X, prediction_type="RawFormulaVal"), ref.predict(X, prediction_type="RawFormulaVal"),
                   1e-6)


def test_catboost_multi_target_huber_and_metric(regression):
    X, y = regression
    X, y = X[:1000], y[:1000]
    Y = np.column_stack([y, -0.5 * y + 1.0])
    loss = nbloss.HuberLoss(delta=1.0)
    obj = CatBoostObjective(loss, multi_target=True, hessian="constant")
    assert isinstance(obj, cb.MultiTargetCustomObjective) and isinstance(obj, CatBoostObjective)
    assert type(pickle.loads(pickle.dumps(obj))) is type(obj)
    with pytest.raises(ValueError, match="rejects a baseline"):
        obj.baseline(Y)
    metric = CatBoostMetric(loss, multi_target=True)
    assert isinstance(metric, cb.MultiTargetCustomMetric)
    model = cb.CatBoostRegressor(loss_function=obj, eval_metric=metric, **{**CB, "iterations": 15})
    model.fit(X, Y, eval_set=(X, Y), use_best_model=False)
    pred = model.predict(X)
    assert pred.shape == Y.shape
    assert loss.loss(Y, pred) < 0.5 * loss.loss(Y, np.zeros_like(Y))
    recorded = model.get_evals_result()["validation"][type(metric).__name__][-1]
    np.testing.assert_allclose(recorded, loss.loss(Y, pred), rtol=1e-7)


@pytest.mark.parametrize("loss, hessian", [
    (nbloss.CrossEntropy(), "exact"),
    (nbloss.CrossEntropy(class_weight=[1.0, 2.0, 0.5, 3.0], label_smoothing=0.1, ignore_index=2), "exact"),
    (nbloss.FocalLoss(gamma=2.0, alpha=[0.2, 0.3, 0.1, 0.4]), "exact"),
    (nbloss.CrossEntropy(label_smoothing=0.2), "constant"),
    (nbloss.HuberLoss(delta=0.3), "constant"),
    (nbloss.BinaryCrossEntropy(pos_weight=[2.0, 1.0, 0.5, 1.0]), "exact"),
])
def test_catboost_per_row_path_equals_the_whole_array_call(loss, hessian):
    """CatBoost's per-row calls go through a serial, pre-resolved kernel; they must give what one call
    over all rows gives (same floor, same weights), including logits of +-1e4 and ignored rows."""
    n, k = 200, 4
    z = RNG.normal(scale=3.0, size=(n, k))
    z[:5] *= 1e4 / 3.0
    w = RNG.uniform(0.0, 2.0, n)
    softmax = isinstance(loss, nbloss.FocalLoss | nbloss.CrossEntropy)
    y = RNG.integers(0, k, n) if softmax else RNG.uniform(0.0, 1.0, (n, k))
    obj = CatBoostObjective(loss, min_hessian=1e-3, hessian=hessian, multi_target=not softmax)
    grad, hess = obj.derivatives(y, z, w)
    for i in range(n):
        target = float(y[i]) if softmax else y[i]
        der1, der2 = obj.calc_ders_multi(z[i], target, float(w[i]))
        np.testing.assert_allclose(-np.array(der1), grad[i], rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(-np.array(der2), np.diag(hess[i]), rtol=1e-13, atol=1e-300)


def test_catboost_per_row_path_is_safe_across_threads_and_copies():
    from concurrent.futures import ThreadPoolExecutor

    obj = CatBoostObjective(nbloss.CrossEntropy(label_smoothing=0.05))
    rows = {k: (RNG.normal(size=(300, k)), RNG.integers(0, k, 300)) for k in (3, 7)}
    expected = {k: obj.derivatives(y, z) for k, (z, y) in rows.items()}

    def run(k):  # two class counts at once: each thread keeps its own buffers
        z, y = rows[k]
        return k, [[np.array(d) for d in obj.calc_ders_multi(z[i], float(y[i]), 1.0)] for i in range(300)]

    for copy in (obj, pickle.loads(pickle.dumps(obj)), __import__("copy").deepcopy(obj)):
        with ThreadPoolExecutor(4) as pool:
            for k, out in pool.map(run, [3, 7, 3, 7, 3, 7]):
                np.testing.assert_allclose(-np.array([g for g, _ in out]), expected[k][0], rtol=1e-13)
                np.testing.assert_allclose(-np.array([np.diag(h) for _, h in out]), expected[k][1], rtol=1e-13)
        obj = copy


def test_catboost_per_row_path_rejects_bad_rows():
    obj = CatBoostObjective(nbloss.CrossEntropy())
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\); row 0 has 3"):
        obj.calc_ders_multi(np.zeros(3), 3.0, 1.0)
    with pytest.raises(ValueError, match="integral class indices"):
        obj.calc_ders_multi(np.zeros(3), 1.5, 1.0)
    with pytest.raises(ValueError, match="must not contain NaN"):
        obj.calc_ders_multi(np.array([0.0, np.nan, 1.0]), 1.0, 1.0)
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        obj.calc_ders_multi(np.zeros(3), 1.0, -1.0)
    with pytest.raises(ValueError, match="must hold values in"):
        CatBoostObjective(nbloss.BinaryCrossEntropy(), multi_target=True).calc_ders_multi(
            np.zeros(2), np.array([0.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="balanced"):
        CatBoostObjective(nbloss.CrossEntropy(class_weight="balanced"))
    np.testing.assert_array_equal(obj.calc_ders_multi(np.zeros(3), 2.0, 1.0)[0], [-1 / 3, -1 / 3, 2 / 3])


# ------------------------------------------------------------------ Hessian safety
def test_huber_constant_hessian_trains_like_each_librarys_robust_objective(regression):
    """Constant-Hessian Huber reaches the held-out Huber loss of the library's own robust objective (within 5%)
    and beats its squared-error model, in all three libraries."""
    X, y = regression
    Xt, yt, Xv, yv = _split(X, y, 2000)
    loss = nbloss.HuberLoss(delta=1.0)

    xo = xgboost_objective(loss, hessian="constant")
    xm = xgb.XGBRegressor(**XGB, objective=xo, base_score=xo.base_score(yt)).fit(Xt, yt)
    x_robust = xgb.XGBRegressor(**XGB, objective="reg:pseudohubererror").fit(Xt, yt)
    x_l2 = xgb.XGBRegressor(**XGB).fit(Xt, yt)

    lo = lightgbm_objective(loss, hessian="constant")
    init = lo.init_score(yt)
    lm = lo.fold_init_score(lgb.LGBMRegressor(**LGB, objective=lo).fit(Xt, yt, init_score=init), init)
    l_robust = lgb.LGBMRegressor(**LGB, objective="huber", alpha=1.0).fit(Xt, yt)
    l_l2 = lgb.LGBMRegressor(**LGB).fit(Xt, yt)

    co = CatBoostObjective(loss, hessian="constant")
    baseline = co.baseline(yt)
    cm = cb.CatBoostRegressor(loss_function=co, eval_metric="RMSE", **CB).fit(Xt, yt, baseline=baseline)
    co.fold_baseline(cm, baseline)
    c_robust = cb.CatBoostRegressor(loss_function="Huber:delta=1.0", **CB).fit(Xt, yt)
    c_l2 = cb.CatBoostRegressor(**CB).fit(Xt, yt)

    for name, mine, robust, l2 in [("xgboost", xm, x_robust, x_l2), ("lightgbm", lm, l_robust, l_l2),
                                   ("catboost", cm, c_robust, c_l2)]:
        ours, theirs, squared = (float(loss.loss(yv, m.predict(Xv))) for m in (mine, robust, l2))
        assert ours <= 1.05 * theirs and ours < squared, (name, ours, theirs, squared)


def test_huber_exact_hessian_vanishes_where_the_constant_one_does_not(regression):
    X, y = regression
    loss = nbloss.HuberLoss(delta=1e-4)  # every residual beyond 1e-4: the linear region, zero curvature
    start = loss.init_raw_prediction(y)
    _, hess = loss.gradient_hessian(y, np.full(y.shape[0], start))
    assert np.mean(hess == 0) > 0.99
    # Floored at 1e-16 the leaves' Hessian sums fall below min_sum_hessian_in_leaf: LightGBM cannot split.
    exact = lightgbm_objective(loss)
    stuck = lgb.LGBMRegressor(**LGB, objective=exact).fit(X, y, init_score=exact.init_score(y))
    assert stuck.booster_.dump_model()["tree_info"][0]["num_leaves"] == 1
    constant = lightgbm_objective(loss, hessian="constant")
    moving = lgb.LGBMRegressor(**LGB, objective=constant).fit(X, y, init_score=constant.init_score(y))
    assert moving.booster_.dump_model()["tree_info"][0]["num_leaves"] > 1


def test_focal_negative_curvature_is_floored_and_still_trains(multiclass):
    X, y, Xv, yv = multiclass
    loss = nbloss.FocalLoss(gamma=4.0)
    z = np.zeros((y.shape[0], 4))
    z[np.arange(y.shape[0]), (y + 1) % 4] = 8.0  # confidently wrong rows: negative exact curvature
    _, hess = loss.gradient_hessian(y, z)
    assert (hess < 0).any()
    _, floored = xgboost_objective(loss, min_hessian=1e-6)(y, z)
    assert floored.min() == pytest.approx(1e-6)

    ce = xgb.XGBClassifier(**XGB, objective=xgboost_objective(nbloss.CrossEntropy())).fit(X, y)
    focal = xgb.XGBClassifier(**XGB, objective=xgboost_objective(loss)).fit(X, y)
    assert np.mean(focal.predict(Xv) == yv) > np.mean(ce.predict(Xv) == yv) - 0.03


def test_min_hessian_is_per_unit_of_sample_weight():
    loss = nbloss.HuberLoss(delta=0.5)
    y, z, w = np.array([0.0, 0.0, 0.0]), np.array([3.0, 0.1, 3.0]), np.array([2.0, 1.0, 0.0])
    grad, hess = xgboost_objective(loss, min_hessian=0.01)(y, z, sample_weight=w)
    np.testing.assert_allclose(hess, [0.02, 1.0, 0.0])
    np.testing.assert_allclose(grad, loss.gradient(y, z, w))
    _, const = lightgbm_objective(loss, hessian="constant")(y, z, w)
    np.testing.assert_allclose(const, w)
    _, const = lightgbm_objective(loss, hessian="constant")(y, z, None)
    np.testing.assert_allclose(const, 1.0)


# ------------------------------------------------------------------ contract details
def test_adapters_pickle_and_keep_their_settings(binary):
    X, y, w = binary
    z = RNG.normal(size=y.shape[0])
    for obj in (xgboost_objective(nbloss.BinaryFocalLoss(), min_hessian=1e-3),
                lightgbm_objective(nbloss.BinaryFocalLoss(), min_hessian=1e-3)):
        again = pickle.loads(pickle.dumps(obj))
        for a, b in zip(obj(y, z, w), again(y, z, w)):
            np.testing.assert_array_equal(a, b)
    obj = CatBoostObjective(nbloss.BinaryFocalLoss(), min_hessian=1e-3)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(obj)).calc_ders_range(z, y, w),
                                  obj.calc_ders_range(z, y, w))
    assert "min_hessian=0.001" in repr(obj)


def test_bad_adapter_arguments_are_named():
    with pytest.raises(TypeError, match="loss must be an nbloss loss"):
        xgboost_objective("binary:logistic")
    with pytest.raises(ValueError, match="api must be one of"):
        lightgbm_objective(nbloss.CrossEntropy(), api="booster")
    with pytest.raises(ValueError, match="hessian must be one of"):
        CatBoostObjective(nbloss.HuberLoss(), hessian="abs")
    with pytest.raises(ValueError, match="min_hessian must be finite"):
        xgboost_objective(nbloss.HuberLoss(), min_hessian=-1.0)
    with pytest.raises(ValueError, match="y_true must hold integral class indices; row 1"):
        xgboost_objective(nbloss.CrossEntropy())(np.array([0.0, 0.5]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_true must be in \[0, 3\)|row 1"):
        lightgbm_objective(nbloss.CrossEntropy())(np.array([0.0, 3.0]), np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="multi_target=True is for element-wise losses"):
        CatBoostObjective(nbloss.CrossEntropy(), multi_target=True)
    with pytest.raises(TypeError, match="one-output loss"):
        CatBoostObjective(nbloss.HuberLoss()).calc_ders_multi(np.zeros(2), np.zeros(2), 1.0)
    with pytest.raises(TypeError, match="multiclass model"):
        CatBoostObjective(nbloss.CrossEntropy()).calc_ders_range(np.zeros(3), np.zeros(3), None)
    with pytest.raises(ValueError, match="init_score must be the same for every row"):
        lightgbm_objective(nbloss.HuberLoss()).fold_init_score(None, np.arange(3.0))


@pytest.mark.parametrize("adapter, module, extra", [
    ("xgboost_objective(nbloss.CrossEntropy())", "xgboost", "xgboost"),
    ("lightgbm_metric(nbloss.CrossEntropy())", "lightgbm", "lightgbm"),
    ("CatBoostObjective(nbloss.CrossEntropy())", "catboost", "catboost"),
])
def test_missing_library_names_the_extra(adapter, module, extra):
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "import nbloss\nfrom nbloss.boosting import *\n"
            f"try:\n    {adapter}\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"pip install 'nbloss[{extra}]'" in out
