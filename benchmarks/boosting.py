"""Training time of boosting models with nbloss objectives, against each library's own objective
and the NumPy custom objective people write.

    python benchmarks/boosting.py                       # 200,000 x 50, 10 classes, 30 rounds
    python benchmarks/boosting.py --rows 20000 --rounds 5 --repeats 1   # a quick look

Everything runs in one process, one contender after the other, on the same
data and parameters; each time is the median of ``--repeats`` fits.  CatBoost
calls a multiclass custom objective once per row from Python, whatever computes
the derivatives, so its contenders train on ``--catboost-rows`` rows; the custom
objectives run with ``--threads`` CatBoost threads and with one.
Writes a JSON table (``--json``) and a bar chart (``--plot``).
"""

from __future__ import annotations

import argparse
import inspect
import platform
import statistics
import sys
import time
import warnings

import numpy as np
from _report import add_output_arguments, pyplot, save

import nbloss
from nbloss.boosting import CatBoostObjective, lightgbm_objective, xgboost_objective


def _numpy_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_objective(y_true, y_pred, *_):
    """Softmax cross-entropy as it is usually pasted into a custom objective."""
    p = _numpy_softmax(np.asarray(y_pred))
    grad = p.copy()
    grad[np.arange(p.shape[0]), np.asarray(y_true).astype(int)] -= 1.0
    return grad, np.maximum(p * (1.0 - p), 1e-16)


class NumpyCatBoostObjective:
    """CatBoost's documented multiclass protocol: one call per row, derivatives of the log-likelihood."""

    def calc_ders_multi(self, approx, target, weight):
        approx = np.asarray(approx)
        e = np.exp(approx - approx.max())
        p = e / e.sum()
        der1 = -p
        der1[int(target)] += 1.0
        return der1, np.diag(-np.maximum(p * (1.0 - p), 1e-16))


class TimedObjective:
    """Forwards to an objective (same signature, which the libraries inspect) and adds up the time spent in it."""

    def __init__(self, objective):
        self.objective = objective
        self.__signature__ = inspect.signature(objective)
        self.seconds = 0.0

    def __deepcopy__(self, memo):  # LightGBM deep-copies its parameters; keep counting in this object
        return self

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.objective(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return out


def _timed(fit, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args) -> dict:
    import catboost as cb
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.datasets import make_classification

    X, y = make_classification(args.rows, args.features, n_informative=args.features // 2, n_classes=args.classes,
                               n_clusters_per_class=1, random_state=0)
    loss = nbloss.CrossEntropy()
    threads = args.threads
    xgb_params = dict(n_estimators=args.rounds, max_depth=6, learning_rate=0.3, tree_method="hist", n_jobs=threads)
    lgb_params = dict(n_estimators=args.rounds, num_leaves=31, learning_rate=0.1, verbose=-1, n_jobs=threads)
    n_cb = min(args.catboost_rows, args.rows)
    cb_params = dict(iterations=args.catboost_rounds, depth=6, learning_rate=0.3, verbose=0, thread_count=threads,
                     random_seed=0, leaf_estimation_iterations=1, allow_writing_files=False)
    xo = TimedObjective(xgboost_objective(loss))
    lo = TimedObjective(lightgbm_objective(loss))
    x_numpy, l_numpy = TimedObjective(numpy_objective), TimedObjective(numpy_objective)
    co = CatBoostObjective(loss)
    init = lo.objective.init_score(y)

    contenders = [
        ("xgboost", "built-in multi:softprob", lambda: xgb.XGBClassifier(**xgb_params).fit(X, y)),
        ("xgboost", "nbloss CrossEntropy",
         lambda: xgb.XGBClassifier(**xgb_params, objective=xo, base_score=xo.objective.base_score(y)).fit(X, y),
         xo),
        ("xgboost", "NumPy objective", lambda: xgb.XGBClassifier(**xgb_params, objective=x_numpy).fit(X, y), x_numpy),
        ("lightgbm", "built-in multiclass", lambda: lgb.LGBMClassifier(**lgb_params).fit(X, y)),
        ("lightgbm", "nbloss CrossEntropy",
         lambda: lgb.LGBMClassifier(**lgb_params, objective=lo).fit(X, y, init_score=init), lo),
        ("lightgbm", "NumPy objective",
         lambda: lgb.LGBMClassifier(**lgb_params, objective=l_numpy).fit(X, y, init_score=init), l_numpy),
        ("catboost", "built-in MultiClass",
         lambda: cb.CatBoostClassifier(**cb_params, loss_function="MultiClass").fit(X[:n_cb], y[:n_cb])),
    ]
    # CatBoost holds the GIL for each per-row call; with several of its threads calling, they mostly wait
    # for each other, so the custom objectives are also timed with one CatBoost thread.
    for cb_threads in dict.fromkeys((threads, 1)):
        params = {**cb_params, "thread_count": cb_threads}
        contenders += [
            ("catboost", f"nbloss CrossEntropy, {cb_threads} thread(s)",
             lambda p=params: cb.CatBoostClassifier(**p, loss_function=co, eval_metric="MultiClass").fit(X[:n_cb],
                                                                                                          y[:n_cb])),
            ("catboost", f"NumPy (documented protocol), {cb_threads} thread(s)",
             lambda p=params: cb.CatBoostClassifier(**p, loss_function=NumpyCatBoostObjective(),
                                                    eval_metric="MultiClass").fit(X[:n_cb], y[:n_cb])),
        ]
    # compile the kernels (a first call in a fresh process loads them from the on-disk cache)
    xo(y[:10].astype(np.float64), np.zeros((10, args.classes)))
    co.calc_ders_multi(np.zeros(args.classes), 0.0, 1.0)  # CatBoost's per-row path has its own (serial) kernel
    results = []
    for i, (library, name, fit, *timer) in enumerate(contenders, 1):
        print(f"[{i}/{len(contenders)}] {library}: {name} ...", end=" ", flush=True, file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CatBoost's notes on compiling custom objects with Numba
            seconds = _timed(fit, args.repeats)
        print(f"{seconds:.2f} s", file=sys.stderr)
        # seconds inside the objective, per fit (the part of training a custom objective adds)
        in_objective = timer[0].seconds / args.repeats if timer else None
        results.append({"library": library, "contender": name, "seconds": seconds, "objective_seconds": in_objective})
    for r in results:
        same_library = [o for o in results if o["library"] == r["library"]]
        r["ratio_to_builtin"] = r["seconds"] / same_library[0]["seconds"]
        r["ratio_to_nbloss"] = r["seconds"] / same_library[1]["seconds"]
    return {
        "setup": {"rows": args.rows, "features": args.features, "classes": args.classes, "rounds": args.rounds,
                  "catboost_rows": n_cb, "catboost_rounds": args.catboost_rounds, "threads": threads,
                  "repeats": args.repeats, "python": platform.python_version(),
                  "versions": {"nbloss": nbloss.__version__, "xgboost": xgb.__version__,
                               "lightgbm": lgb.__version__, "catboost": cb.__version__}},
        "results": results,
    }


def print_table(report: dict) -> None:
    s = report["setup"]
    print(f"\n{s['rows']:,} x {s['features']}, {s['classes']} classes, {s['rounds']} rounds "
          f"(CatBoost: {s['catboost_rows']:,} rows, {s['catboost_rounds']} rounds), {s['threads']} threads, "
          f"median of {s['repeats']}")
    print(f"| {'library':<9}| {'contender':<44}| {'seconds':>8} | {'x built-in':>10} | {'x nbloss':>8} "
          f"| {'in objective (s)':>16} |")
    print(f"|{'-' * 10}|{'-' * 45}|{'-' * 10}|{'-' * 12}|{'-' * 10}|{'-' * 18}|")
    for r in report["results"]:
        inside = "" if r["objective_seconds"] is None else f"{r['objective_seconds']:.3f}"
        print(f"| {r['library']:<9}| {r['contender']:<44}| {r['seconds']:>8.2f} | {r['ratio_to_builtin']:>10.2f} "
              f"| {r['ratio_to_nbloss']:>8.2f} | {inside:>16} |")


def plot(report: dict, path: str) -> None:
    plt = pyplot()
    libraries = list(dict.fromkeys(r["library"] for r in report["results"]))
    fig, axes = plt.subplots(1, len(libraries), figsize=(4.2 * len(libraries), 3.6))
    for ax, library in zip(np.atleast_1d(axes), libraries):
        rows = [r for r in report["results"] if r["library"] == library]
        ax.barh([r["contender"].replace(", ", "\n") for r in rows], [r["seconds"] for r in rows],
                color=[("#888888" if i == 0 else "#2a7ab0" if "nbloss" in r["contender"] else "#d0883a")
                       for i, r in enumerate(rows)])
        ax.invert_yaxis()
        ax.set_title(library)
        ax.set_xlabel("training time (s)")
    s = report["setup"]
    fig.suptitle(f"Multiclass training, {s['classes']} classes, {s['threads']} threads "
                 f"(XGBoost/LightGBM: {s['rows']:,} x {s['features']}, {s['rounds']} rounds; "
                 f"CatBoost: {s['catboost_rows']:,} rows, {s['catboost_rounds']} rounds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--catboost-rows", type=int, default=20_000)
    parser.add_argument("--catboost-rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    add_output_arguments(parser, "boosting")
    args = parser.parse_args(argv)
    nbloss.set_num_threads(args.threads)
    report = run(args)
    print_table(report)
    save(report, args, plot)


if __name__ == "__main__":
    main()
