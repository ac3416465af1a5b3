"""``nbloss`` console command.  ``nbloss demo`` shows, on this machine, what the
kernels do: speed against scikit-learn's own loss module and the digits the
stable formulas keep where the usual ones lose them."""

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbloss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show speed and accuracy of the kernels on this machine")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
