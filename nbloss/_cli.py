"""``nbloss`` console command.  ``nbloss demo`` shows, on this machine, what the
kernels do (speed against scikit-learn's own loss module, the digits the stable
formulas keep where the usual ones lose them) and what the estimators do on
scikit-learn's bundled datasets, against scikit-learn's own estimators."""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import numpy as np


def _best_time(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _speed_rows(n_threads: int):
    """``(name, nbloss seconds, scikit-learn seconds, max |difference|)`` per call."""
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

    import nbloss

    rng = np.random.default_rng(0)
    n, k = 200_000, 10
    labels = rng.integers(0, k, size=n)
    n_bin = 2_000_000
    cases = [
        (f"CrossEntropy.gradient_hessian, n={n:,}, K={k}", nbloss.CrossEntropy(), HalfMultinomialLoss(n_classes=k),
         labels, labels.astype(np.float64), rng.normal(scale=3, size=(n, k))),
        (f"BinaryCrossEntropy.gradient_hessian, n={n_bin:,}", nbloss.BinaryCrossEntropy(), HalfBinomialLoss(),
         *([(rng.uniform(size=n_bin) < 0.3).astype(np.float64)] * 2), rng.normal(scale=3, size=n_bin)),
    ]
    for name, ours, theirs, y_ours, y_theirs, raw in cases:
        mine = ours.gradient_hessian(y_ours, raw)
        ref = theirs.gradient_hessian(y_theirs, raw, n_threads=n_threads)
        yield (name, _best_time(partial(ours.gradient_hessian, y_ours, raw)),
               _best_time(partial(theirs.gradient_hessian, y_theirs, raw, n_threads=n_threads)),
               max(np.abs(a - b).max() for a, b in zip(mine, ref)))


def demo(out=sys.stdout) -> None:
    """Print the kernels demo."""
    import nbloss

    n_threads = nbloss.get_num_threads()
    print(f"nbloss {nbloss.__version__}: Numba threading layer {nbloss.threading_layer()}, {n_threads} threads",
          file=out)
    print("(the first run compiles the kernels, about a minute; later runs load them from the cache)\n",
          file=out, flush=True)

    print("1. Speed against scikit-learn's Cython losses (float64, best of 5):", file=out)
    print(f"   {'call':<48s} {'nbloss':>10s} {'sklearn':>10s} {'speed-up':>9s} {'max |diff|':>11s}", file=out)
    for name, ours, theirs, diff in _speed_rows(n_threads):
        print(f"   {name:<48s} {ours * 1e3:8.1f}ms {theirs * 1e3:8.1f}ms {theirs / ours:8.1f}x {diff:11.1e}",
              file=out, flush=True)

    from sklearn._loss.loss import HalfMultinomialLoss

    print("\n2. Digits kept: a confident, correct row, logits [40, 0, 0], label 0.", file=out)
    raw = np.array([[40.0, 0.0, 0.0]])
    tail = 2 * np.exp(-40.0)  # sum of the other classes' exp(z_k - z_y)
    ours_g, ours_h = nbloss.CrossEntropy().gradient_hessian(np.array([0]), raw)
    sk = HalfMultinomialLoss(n_classes=3)
    sk_g, sk_h = sk.gradient_hessian(np.array([0.0]), raw)
    rows = [
        ("exact", np.log1p(tail), -tail / (1 + tail), tail / (1 + tail) ** 2),
        ("nbloss.CrossEntropy", float(nbloss.CrossEntropy().loss(np.array([0]), raw)), ours_g[0, 0], ours_h[0, 0]),
        ("sklearn HalfMultinomialLoss", float(sk.loss(np.array([0.0]), raw)[0]), sk_g[0, 0], sk_h[0, 0]),
    ]
    print(f"   {'':<30s} {'loss':>12s} {'gradient[y]':>12s} {'hessian[y]':>12s}", file=out)
    for name, loss, grad, hess in rows:
        print(f"   {name:<30s} {loss:12.4e} {grad:12.4e} {hess:12.4e}", file=out)


def _estimator_rows():
    """``(dataset, model, metric name, metric, log-loss or None, fit seconds)`` on scikit-learn's bundled data."""
    import warnings

    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    from sklearn.linear_model import HuberRegressor, LogisticRegression
    from sklearn.metrics import log_loss, mean_absolute_error
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    import nbloss

    def timed_fit(model, X, y):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's own convergence notes on these small sets
            model.fit(X, y)
        return model, time.perf_counter() - start

    for name, loader in (("digits", load_digits), ("breast cancer", load_breast_cancer)):
        X, y = loader(return_X_y=True)
        Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(Xt)
        Xt, Xv = scaler.transform(Xt), scaler.transform(Xv)
        alpha = 1e-2
        contenders = [("nbloss LinearClassifier", nbloss.LinearClassifier(alpha=alpha)),
                      ("nbloss LinearClassifier(focal)", nbloss.LinearClassifier(loss="focal", alpha=alpha)),
                      ("sklearn LogisticRegression", LogisticRegression(C=1 / (alpha * len(yt)), max_iter=5000))]
        for label, model in contenders:
            model, seconds = timed_fit(model, Xt, yt)
            yield name, label, "accuracy", model.score(Xv, yv), log_loss(yv, model.predict_proba(Xv)), seconds
        boosting = _boosting_row(Xt, yt, Xv, yv)
        if boosting is not None:
            yield (name, *boosting)

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.3, random_state=0)
    yt = yt.copy()
    outliers = rng.choice(len(yt), size=len(yt) // 10, replace=False)
    yt[outliers] += rng.choice([-1, 1], size=outliers.size) * 400.0  # 10% gross outliers in training
    contenders = [("nbloss LinearRegressor(huber)", nbloss.LinearRegressor(loss="huber", delta=30.0, alpha=1e-3)),
                  ("nbloss LinearRegressor(squared)", nbloss.LinearRegressor(loss="squared_error", alpha=1e-3)),
                  ("sklearn HuberRegressor", HuberRegressor(max_iter=1000))]
    for label, model in contenders:
        model, seconds = timed_fit(model, Xt, yt)
        yield "diabetes + outliers", label, "test MAE", mean_absolute_error(yv, model.predict(Xv)), None, seconds


def _boosting_row(Xt, yt, Xv, yv):
    """A LightGBM (else XGBoost) model with an nbloss objective, when one of them is installed."""
    import importlib.util

    from sklearn.metrics import log_loss

    import nbloss

    multiclass = len(np.unique(yt)) > 2
    loss = nbloss.CrossEntropy() if multiclass else nbloss.BinaryCrossEntropy()
    start = time.perf_counter()
    if importlib.util.find_spec("lightgbm") is not None:
        import lightgbm as lgb

        from nbloss.boosting import lightgbm_objective

        obj = lightgbm_objective(loss)
        init = obj.init_score(yt)
        model = lgb.LGBMClassifier(objective=obj, n_estimators=100, verbose=-1).fit(Xt, yt, init_score=init)
        obj.fold_init_score(model, init)
        raw = model.predict(Xv, raw_score=True)
        label = "LightGBM + nbloss objective"
    elif importlib.util.find_spec("xgboost") is not None:
        import xgboost as xgb

        from nbloss.boosting import xgboost_objective

        obj = xgboost_objective(loss)
        model = xgb.XGBClassifier(objective=obj, base_score=obj.base_score(yt), n_estimators=100).fit(Xt, yt)
        raw = model.predict(Xv, output_margin=True)
        label = "XGBoost + nbloss objective"
    else:
        return None
    seconds = time.perf_counter() - start
    proba = loss.predict_proba(raw)
    proba = proba if multiclass else np.column_stack([1 - proba, proba])
    return label, "accuracy", float((proba.argmax(axis=1) == yv).mean()), log_loss(yv, proba), seconds


def estimators_demo(out=sys.stdout) -> None:
    """Print the estimators' table against scikit-learn."""
    print("\n3. Estimators on scikit-learn's bundled data (70/30 split; same L2 penalty as LogisticRegression):",
          file=out)
    print(f"   {'data':<20s} {'model':<32s} {'metric':>10s} {'value':>8s} {'log-loss':>9s} {'fit':>9s}", file=out)
    for data, label, metric, value, logloss, seconds in _estimator_rows():
        shown = "" if logloss is None else f"{logloss:.4f}"
        print(f"   {data:<20s} {label:<32s} {metric:>10s} {value:8.4f} {shown:>9s} {seconds * 1e3:7.1f}ms",
              file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbloss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show speed and accuracy of the kernels and estimators on this machine")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
        estimators_demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
