"""Scale-out on a real ``distributed.LocalCluster`` (two worker processes): Dask fits of the
estimators, predictions as Dask arrays, worker loss during a fit, and ``xgboost.dask`` with an
nbloss objective."""

from __future__ import annotations

import os

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from dask_helpers import PidRecording, die_on_call
from distributed import Client, LocalCluster
from xgboost import dask as dxgb

import nbloss
from nbloss import _dask
from nbloss.boosting import xgboost_objective

N, D = 6000, 6
CHUNK = 1100  # uneven last block


def _cluster(**config):
    with dask.config.set(config):
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                            memory_limit="2GiB")


@pytest.fixture(scope="module")
def client():
    with _cluster() as cluster, Client(cluster) as c:
        yield c


def _data(seed: int = 0, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)) * rng.uniform(0.5, 3, size=D)
    y = (X @ rng.normal(size=(D, n_classes)) + rng.gumbel(size=(N, n_classes))).argmax(axis=1)
    return X, y, rng.uniform(0.2, 3.0, size=N)


def _on_cluster(client, *arrays):
    """Dask arrays of ``arrays`` (row chunks of ``CHUNK``), held in the workers' memory."""
    return client.persist([da.from_array(a, chunks=(CHUNK,) + a.shape[1:]) for a in arrays])


def _relative(a, b) -> float:
    a, b = np.atleast_1d(a).astype(np.float64), np.atleast_1d(b).astype(np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


CLASSIFIERS = {
    "softmax": dict(params={}, n_classes=4),
    "binary": dict(params={}, n_classes=2),
    "focal (L-BFGS)": dict(params={"loss": "focal"}, n_classes=3),
    "smoothing, balanced, string labels": dict(params={"label_smoothing": 0.1, "class_weight": "balanced"},
                                               n_classes=3, labels=np.array(["ant", "bee", "cat"])),
    "class weight dict, binary focal": dict(params={"loss": "focal", "class_weight": {0: 3.0, 1: 0.5}},
                                            n_classes=2),
}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_dask_classifier_fit_reaches_the_in_memory_coefficients(client, name):
    case = CLASSIFIERS[name]
    X, y, w = _data(1, case["n_classes"])
    if "labels" in case:
        y = case["labels"][y]
    params = dict(alpha=1e-3, tol=1e-8, **case["params"])
    local = nbloss.LinearClassifier(**params).fit(X, y, sample_weight=w)
    Xd, yd, wd = _on_cluster(client, X, y, w)
    distributed = nbloss.LinearClassifier(**params).fit(Xd, yd, sample_weight=wd)
    np.testing.assert_array_equal(distributed.classes_, local.classes_)
    assert _relative(distributed.coef_, local.coef_) <= 1e-6
    assert _relative(distributed.intercept_, local.intercept_) <= 1e-6
    assert distributed.n_features_in_ == D and distributed.n_iter_ > 0


@pytest.mark.parametrize("loss", ["huber", "pseudo_huber", "squared_error"])
def test_dask_regressor_fit_reaches_the_in_memory_coefficients(client, loss):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(N, D))
    y = X @ rng.normal(size=D) + 3.0 + rng.standard_t(2, size=N)
    w = rng.uniform(0.2, 3.0, size=N)
    local = nbloss.LinearRegressor(loss, alpha=1e-3, tol=1e-8).fit(X, y, w)
    Xd, yd, wd = _on_cluster(client, X, y, w)
    distributed = nbloss.LinearRegressor(loss, alpha=1e-3, tol=1e-8).fit(Xd, yd, wd)
    assert _relative(distributed.coef_, local.coef_) <= 1e-6
    assert _relative(distributed.intercept_, local.intercept_) <= 1e-6


def test_float32_dask_fit_stays_float32(client):
    X, y, _ = _data(3)
    X = X.astype(np.float32)
    (Xd, yd) = _on_cluster(client, X, y)
    model = nbloss.LinearClassifier(alpha=1e-3, tol=1e-5).fit(Xd, yd)
    local = nbloss.LinearClassifier(alpha=1e-3, tol=1e-5).fit(X, y)
    assert model.coef_.dtype == np.float32 and model.predict_proba(Xd).dtype == np.float32
    assert _relative(model.coef_, local.coef_) <= 1e-3  # both stop within tol=1e-5 of the float32 optimum


def test_predictions_on_dask_input_are_dask_arrays(client):
    X, y, w = _data(4, 3)
    Xd, yd, wd = _on_cluster(client, X, y, w)
    model = nbloss.LinearClassifier(alpha=1e-3).fit(Xd, yd, sample_weight=wd)
    for method, shape in [("predict", (N,)), ("predict_proba", (N, 3)), ("predict_log_proba", (N, 3)),
                          ("decision_function", (N, 3))]:
        result = getattr(model, method)(Xd)
        assert isinstance(result, da.Array) and result.shape == shape, method
        np.testing.assert_allclose(result.compute(), getattr(model, method)(X), rtol=1e-12, atol=1e-14)
    binary = nbloss.LinearClassifier(alpha=1e-3).fit(Xd, (yd > 0).astype(int))
    assert binary.decision_function(Xd).shape == (N,)
    np.testing.assert_allclose(binary.predict_proba(Xd).compute(), binary.predict_proba(X), rtol=1e-12)
    regressor = nbloss.LinearRegressor(alpha=1e-3).fit(Xd, Xd[:, 0] * 2.0)
    prediction = regressor.predict(Xd)
    assert isinstance(prediction, da.Array)
    np.testing.assert_allclose(prediction.compute(), regressor.predict(X), rtol=1e-12)


def test_dask_dataframe_input(client):
    X, y, w = _data(5, 3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(D)])
    local = nbloss.LinearClassifier(alpha=1e-3, tol=1e-8).fit(frame, y, sample_weight=w)
    Xf = client.persist(dd.from_pandas(frame, npartitions=5))
    yf = client.persist(dd.from_pandas(pd.Series(y), npartitions=5))
    wf = client.persist(dd.from_pandas(pd.Series(w), npartitions=5))
    model = nbloss.LinearClassifier(alpha=1e-3, tol=1e-8).fit(Xf, yf, sample_weight=wf)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    assert _relative(model.coef_, local.coef_) <= 1e-6
    proba = model.predict_proba(Xf)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), local.predict_proba(frame), rtol=1e-5)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(client.persist(dd.from_pandas(frame.rename(columns={"f0": "g"}), npartitions=2)))


def test_a_dask_fit_gathers_no_rows_to_the_client(client, monkeypatch):
    X, y, w = _data(6, 3)
    labels = np.array(["x", "y", "z"])[y]
    Xd, yd, wd = _on_cluster(client, X, labels, w)

    def refuse(self, *args, **kwargs):
        raise AssertionError("a Dask array was converted to NumPy on the client")

    returned = []

    def recording(*items, what):
        results = real(*items, what=what)
        returned.extend(np.asarray(a).nbytes for r in results for a in (r if isinstance(r, tuple) else (r,))
                        if isinstance(a, np.ndarray))
        return results

    real = _dask.compute
    monkeypatch.setattr(da.Array, "__array__", refuse)
    monkeypatch.setattr(_dask, "compute", recording)
    model = nbloss.LinearClassifier(alpha=1e-3, class_weight="balanced").fit(Xd, yd, sample_weight=wd)
    np.testing.assert_array_equal(model.classes_, ["x", "y", "z"])
    parameters = model.coef_.size + model.intercept_.size
    assert returned and max(returned) <= 8 * parameters  # w-sized vectors, never rows (X is 288 kB)
    assert X.nbytes > 1000 * max(returned)


def test_dask_input_is_checked_with_the_first_bad_row(client):
    X, y, w = _data(7, 3)
    bad_X = X.copy()
    bad_X[4321, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity .first at row 4321"):
        nbloss.LinearClassifier().fit(*_on_cluster(client, bad_X, y))
    bad_w = w.copy()
    bad_w[2500] = -1.0
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0 .first bad row 2500"):
        nbloss.LinearClassifier().fit(*_on_cluster(client, X, y, bad_w))
    target = X[:, 0].copy()
    target[17] = np.inf
    with pytest.raises(ValueError, match="y contains NaN or infinity .first at row 17"):
        nbloss.LinearRegressor().fit(*_on_cluster(client, X, target))
    Xd, yd = _on_cluster(client, X, y)
    with pytest.raises(ValueError, match="y has 5999 rows, X has 6000"):
        nbloss.LinearClassifier().fit(Xd, yd[1:])
    with pytest.raises(ValueError, match="at least two classes"):
        nbloss.LinearClassifier().fit(Xd, da.zeros(N, chunks=CHUNK))
    with pytest.raises(ValueError, match="Unknown label type"):
        nbloss.LinearClassifier().fit(Xd, Xd[:, 0])
    with pytest.raises(ValueError, match="2-D"):
        nbloss.LinearClassifier().fit(Xd[:, 0], yd)
    model = nbloss.LinearClassifier().fit(Xd, yd)
    with pytest.raises(ValueError, match="features"):
        model.predict(Xd[:, :3])


def _dying_X(X: np.ndarray, counter: str, die_from: int, die_until: int):
    """``X`` as a Dask array whose blocks are rebuilt on every pass (not persisted) and whose
    ``die_from``-th to ``die_until``-th block builds kill the worker doing them."""
    return da.from_array(X, chunks=(CHUNK, D)).map_blocks(die_on_call, counter, die_from, die_until,
                                                         dtype=X.dtype)


def test_a_worker_killed_during_a_fit_is_replaced_and_the_fit_completes(tmp_path):
    X, y, w = _data(8, 3)
    local = nbloss.LinearClassifier(alpha=1e-3, tol=1e-8).fit(X, y, sample_weight=w)
    counter = str(tmp_path / "calls")
    with _cluster() as cluster, Client(cluster) as c:
        before = set(c.run(os.getpid).values())
        # the 40th block build is in the fit's third or fourth pass (6 blocks a pass, after the checks)
        model = nbloss.LinearClassifier(alpha=1e-3, tol=1e-8).fit(_dying_X(X, counter, 40, 40),
                                                                 da.from_array(y, chunks=CHUNK),
                                                                 sample_weight=da.from_array(w, chunks=CHUNK))
        c.wait_for_workers(2, timeout=60)
        after = set(c.run(os.getpid).values())
    assert os.path.getsize(counter) > 40  # the fit went on after the worker died
    assert before != after  # a worker process was replaced
    assert _relative(model.coef_, local.coef_) <= 1e-6


def test_a_fit_that_dask_cannot_recover_raises_and_keeps_the_previous_model(tmp_path):
    X, y, w = _data(9, 3)
    counter = str(tmp_path / "calls")
    with _cluster(**{"distributed.scheduler.allowed-failures": 0}) as cluster, Client(cluster) as c:
        model = nbloss.LinearClassifier(alpha=1e-3).fit(*_on_cluster(c, X, y))
        previous = model.coef_.copy()
        with pytest.raises(RuntimeError, match="failed on Dask .KilledWorker"):
            model.fit(_dying_X(X, counter, 30, 10**9), da.from_array(y, chunks=CHUNK))
        np.testing.assert_array_equal(model.coef_, previous)
        fresh = nbloss.LinearClassifier(alpha=1e-3)
        with pytest.raises(RuntimeError, match="failed on Dask"):
            fresh.fit(_dying_X(X, counter, 0, 10**9), da.from_array(y, chunks=CHUNK))
        assert not hasattr(fresh, "coef_") and not hasattr(fresh, "classes_")
        # the killed workers' replacements must have started before the cluster closes: closing while a nanny
        # is still restarting one failed in distributed's teardown ("can only join a started process")
        c.wait_for_workers(2, timeout=120)


# ---------------------------------------------------------------- xgboost.dask
XGB = dict(n_estimators=15, tree_method="hist", max_depth=4, learning_rate=0.3, max_bin=32)


def _integer_features(seed: int, n_classes: int):
    """Integer-valued features (fewer values than ``max_bin``), so that the distributed quantile sketch
    cuts where the in-memory one does and the two models can be compared exactly."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 16, size=(4000, 6)).astype(np.float64)
    y = (X @ rng.normal(size=(6, n_classes)) + 3 * rng.gumbel(size=(4000, n_classes))).argmax(axis=1)
    return X, y, rng.uniform(0.5, 2.0, size=4000)


def test_xgboost_dask_classifier_with_an_nbloss_objective_runs_on_the_workers(client, tmp_path):
    X, y, w = _integer_features(10, 3)
    objective = xgboost_objective(nbloss.CrossEntropy(label_smoothing=0.05))
    Xd, yd, wd = _on_cluster(client, X, y, w)
    base = objective.base_score(yd, wd)  # a Dask reduction
    assert np.allclose(base, objective.base_score(y, w), rtol=1e-12)
    local = xgb.XGBClassifier(objective=objective, base_score=base, **XGB).fit(X, y, sample_weight=w)
    recording = PidRecording(objective, str(tmp_path / "pids"))
    model = dxgb.DaskXGBClassifier(objective=recording, base_score=base, **XGB)
    model.client = client
    model.fit(Xd, yd, sample_weight=wd)
    workers = set(client.run(os.getpid).values())
    assert recording.pids() and recording.pids() <= workers and os.getpid() not in recording.pids()
    proba = model.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), local.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_xgboost_dask_train_with_a_native_nbloss_objective(client):
    X, y, w = _integer_features(11, 2)
    objective = xgboost_objective(nbloss.BinaryFocalLoss(gamma=2.0, alpha=0.25), api="native")
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.3, "max_bin": 32,
              "base_score": objective.base_score(y, w)}
    local = xgb.train(params, xgb.DMatrix(X, y, weight=w), 15, obj=objective)
    Xd, yd, wd = _on_cluster(client, X, y, w)
    result = dxgb.train(client, params, dxgb.DaskDMatrix(client, Xd, yd, weight=wd), 15, obj=objective)
    margins = dxgb.predict(client, result["booster"], Xd, output_margin=True)
    np.testing.assert_allclose(margins.compute(), local.predict(xgb.DMatrix(X), output_margin=True),
                               rtol=1e-5, atol=1e-5)


def test_xgboost_dask_regressor_with_huber(client):
    X, _, w = _integer_features(12, 2)
    rng = np.random.default_rng(12)
    y = X @ rng.normal(size=6) + rng.standard_t(2, size=X.shape[0])
    objective = xgboost_objective(nbloss.HuberLoss(delta=1.0))
    Xd, yd, wd = _on_cluster(client, X, y, w)
    local = xgb.XGBRegressor(objective=objective, base_score=0.0, **XGB).fit(X, y, sample_weight=w)
    model = dxgb.DaskXGBRegressor(objective=objective, base_score=0.0, **XGB)
    model.client = client
    model.fit(Xd, yd, sample_weight=wd)
    np.testing.assert_allclose(model.predict(Xd).compute(), local.predict(X), rtol=1e-5, atol=1e-5)


def test_weighted_distinct_matches_numpy(client):
    rng = np.random.default_rng(13)
    y = rng.integers(0, 5, size=(N, 2)).astype(float)
    w = rng.uniform(size=N)
    yd, wd = _on_cluster(client, y, w)
    values, weights = _dask.weighted_distinct(yd, wd)
    expected, inverse = np.unique(y, axis=0, return_inverse=True)
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_allclose(weights, np.bincount(inverse.ravel(), weights=w), rtol=1e-12)
    with pytest.raises(ValueError, match="more than 10 distinct"):
        _dask.weighted_distinct(yd, limit=10)
