"""Fit time of nbloss.LinearClassifier against scikit-learn's LogisticRegression, at the same optimum.

    python benchmarks/estimators.py                  # 200,000 x 50 dense, 10 classes; 100,000 x 10,000 sparse
    python benchmarks/estimators.py --rows 20000 --sparse-rows 10000   # a quick look

Every contender minimises the same objective (weighted mean cross-entropy +
``alpha / 2 ||W||^2``, i.e. ``C = 1 / (alpha n)``).  The target is the optimum
``f*`` (the lowest value any run reaches) within 1e-6 relative.  Each
contender runs with the tolerances of one fixed ladder, loosest first, and is
timed at the first one whose objective is within the target; a contender that
never gets there is reported with its best gap.  Also reported: nbloss's
passes over ``X`` and its fit time per pass against one ``X @ W`` product, the
floor no solver can beat.  Writes JSON (``--json``) and a bar chart (``--plot``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
from _report import add_output_arguments, pyplot, save

import nbloss

LADDER = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
TARGET = 1e-6


def objective_value(X, y, coef, intercept, alpha) -> float:
    z = np.asarray(X @ coef.T) + intercept
    return float(nbloss.CrossEntropy().loss(y, z)) + 0.5 * alpha * float(np.sum(coef.astype(np.float64) ** 2))


def dense_problem(n, d, k, seed=0):
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n, d, n_informative=d // 2, n_classes=k, n_clusters_per_class=1, random_state=seed)
    return StandardScaler().fit_transform(X), y


def sparse_problem(n, d, k, nnz_per_row=50, seed=0):
    """TF-IDF-like: Zipf-distributed term ids, log term frequencies, l2-normalised rows, class-dependent terms."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    ranks = np.minimum(rng.zipf(1.3, size=(n, nnz_per_row)) - 1, d - 1)
    shift = (y[:, None] * (d // k) * (rng.uniform(size=(n, nnz_per_row)) < 0.3))  # 30% topic words per class
    cols = (ranks + shift) % d
    rows = np.repeat(np.arange(n), nnz_per_row)
    X = sp.csr_matrix((np.ones(n * nnz_per_row), (rows, cols.ravel())), shape=(n, d))
    X.sum_duplicates()
    X.data = 1.0 + np.log(X.data)
    idf = np.log((1 + n) / (1 + np.bincount(X.indices, minlength=d))) + 1.0
    X = X @ sp.diags(idf)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X), y


def _fit(model, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes at loose tolerances are part of the ladder
        model.fit(X, y)
    return model, time.perf_counter() - start


def race(name, X, y, alpha, contenders, progress) -> dict:
    """Run each contender down the ladder; time the first tolerance that reaches f* within TARGET."""
    runs = {}
    for label, make in contenders:
        runs[label] = []
        for tol in LADDER:
            progress(f"{name}: {label}, tol={tol:g}")
            model, seconds = _fit(make(tol), X, y)
            value = objective_value(X, y, model.coef_, model.intercept_, alpha)
            runs[label].append({"tol": tol, "seconds": seconds, "objective": value,
                                "n_iter": int(np.max(model.n_iter_)),
                                "n_passes": getattr(model, "n_passes_", None)})
            if len(runs[label]) >= 2 and value >= runs[label][-2]["objective"] * (1 - 1e-12) and tol < 1e-6:
                break  # no further progress from tightening
    f_star = min(r["objective"] for rs in runs.values() for r in rs)
    results = []
    for label, rs in runs.items():
        for r in rs:
            r["gap"] = r["objective"] / f_star - 1
        hit = next((r for r in rs if r["gap"] <= TARGET), None)
        best = hit or min(rs, key=lambda r: r["gap"])
        results.append({"contender": label, "reached": hit is not None, **best})
    ours = results[0]["seconds"]
    for r in results:
        r["x_nbloss"] = r["seconds"] / ours
    return {"problem": name, "f_star": f_star, "results": results, "runs": runs}


def product_time(X, k) -> float:
    W = np.zeros((X.shape[1], k))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        X @ W
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--sparse-rows", type=int, default=100_000)
    parser.add_argument("--sparse-features", type=int, default=10_000)
    parser.add_argument("--sparse-classes", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1e-4)
    add_output_arguments(parser, "estimators")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    alpha = args.alpha
    X, y = dense_problem(args.rows, args.features, args.classes)
    C = 1.0 / (alpha * X.shape[0])
    _fit(nbloss.LinearClassifier(max_iter=2), X[:500], y[:500])  # compile outside the timings
    dense = race(f"dense {X.shape[0]:,} x {X.shape[1]}, {args.classes} classes", X, y, alpha, [
        ("nbloss LinearClassifier", lambda tol: nbloss.LinearClassifier(alpha=alpha, tol=tol, max_iter=500)),
        ("sklearn lbfgs", lambda tol: LogisticRegression(C=C, tol=tol, max_iter=10_000)),
        ("sklearn newton-cholesky", lambda tol: LogisticRegression(C=C, tol=tol, solver="newton-cholesky",
                                                                   max_iter=1000)),
    ], progress)
    dense["product_seconds"] = product_time(X, args.classes)

    Xs, ys = sparse_problem(args.sparse_rows, args.sparse_features, args.sparse_classes)
    Cs = 1.0 / (alpha * Xs.shape[0])
    sparse = race(f"sparse TF-IDF-like {Xs.shape[0]:,} x {Xs.shape[1]:,} ({Xs.nnz:,} nonzeros), "
                  f"{args.sparse_classes} classes", Xs, ys, alpha, [
        ("nbloss LinearClassifier", lambda tol: nbloss.LinearClassifier(alpha=alpha, tol=tol, max_iter=500)),
        ("sklearn saga", lambda tol: LogisticRegression(C=Cs, tol=tol, solver="saga", max_iter=300)),
        ("sklearn lbfgs", lambda tol: LogisticRegression(C=Cs, tol=tol, max_iter=10_000)),
    ], progress)
    sparse["product_seconds"] = product_time(Xs, args.sparse_classes)

    report = {"setup": {"alpha": alpha, "target_gap": TARGET, "ladder": LADDER, "threads": nbloss.get_num_threads(),
                        "python": platform.python_version()},
              "problems": [dense, sparse]}
    for problem in report["problems"]:
        print(f"\n{problem['problem']}: f* = {problem['f_star']:.10f}, one X @ W product "
              f"{problem['product_seconds'] * 1e3:.1f} ms")
        print(f"| {'contender':<25}| {'tol':>7} | {'seconds':>8} | {'x nbloss':>8} | {'gap to f*':>9} | "
              f"{'iters':>5} | {'passes':>6} | {'s / pass':>8} |")
        print(f"|{'-' * 26}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 11}|{'-' * 7}|{'-' * 8}|{'-' * 10}|")
        for r in problem["results"]:
            passes = r["n_passes"]
            per_pass = "" if passes is None else f"{r['seconds'] / passes * 1e3:6.1f}ms"
            mark = "" if r["reached"] else " (not reached)"
            print(f"| {r['contender'] + mark:<25}| {r['tol']:>7.0e} | {r['seconds']:>8.2f} | {r['x_nbloss']:>8.2f} | "
                  f"{r['gap']:>9.1e} | {r['n_iter']:>5} | {'' if passes is None else passes:>6} | {per_pass:>8} |")

    save(report, args, plot)


def plot(report: dict, path: str) -> None:
    plt = pyplot()
    problems = report["problems"]
    fig, axes = plt.subplots(1, len(problems), figsize=(6.0 * len(problems), 3.2))
    for ax, problem in zip(np.atleast_1d(axes), problems):
        rows = problem["results"]
        ax.barh([r["contender"] + ("" if r["reached"] else "\n(target not reached)") for r in rows],
                [r["seconds"] for r in rows],
                color=["#2a7ab0" if r["contender"].startswith("nbloss") else "#888888" for r in rows])
        ax.invert_yaxis()
        ax.set_title(problem["problem"], fontsize=9)
        ax.set_xlabel(f"fit time to f* within {report['setup']['target_gap']:g} relative (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
