"""float32 against float64 for the same call, alternating in one process: ``python benchmarks/dtypes.py``.

``benchmarks/kernels.py`` times each dtype as a case of its own, minutes apart,
and this shared machine's speed moves that much; here every round times each
call in both dtypes back to back, into preallocated outputs, on all threads.
Prints the medians and their ratio (float64 time over float32 time: above 1
means float32 is faster).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nbloss


def _problems(n_softmax: int, n_elementwise: int):
    """``(name, loss, y64, raw64)`` for each call timed."""
    rng = np.random.default_rng(0)
    for k in (10, 100):
        n = n_softmax if k == 10 else n_softmax // 10
        labels, raw = rng.integers(0, k, n), rng.normal(scale=3.0, size=(n, k))
        yield f"CrossEntropy n={n:.0e} K={k}", nbloss.CrossEntropy(), labels, raw
        if k == 10:
            yield f"FocalLoss n={n:.0e} K={k}", nbloss.FocalLoss(), labels, raw
    for n in (n_elementwise // 10, n_elementwise):
        raw = rng.normal(scale=3.0, size=n)
        binary = (rng.uniform(size=n) < 0.3) * 1.0
        yield f"BinaryCrossEntropy n={n:.0e}", nbloss.BinaryCrossEntropy(), binary, raw
        yield f"BinaryFocalLoss n={n:.0e}", nbloss.BinaryFocalLoss(), binary, raw
        for gamma in (1.5, 1.7):  # the kernels for the half-integer exponents, and for any other
            yield f"BinaryFocalLoss g={gamma} n={n:.0e}", nbloss.BinaryFocalLoss(gamma=gamma), binary, raw
        yield f"HuberLoss n={n:.0e}", nbloss.HuberLoss(), raw + rng.normal(size=n), raw


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="n up to 1e5")
    args = parser.parse_args(argv)
    n_softmax, n_elementwise = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    print(f"gradient_hessian, {nbloss.get_num_threads()} threads, {args.rounds} rounds; median ms")
    print("| call | float64 | float32 | float64 / float32 |\n|---|---|---|---|")
    for name, loss, y, raw in _problems(n_softmax, n_elementwise):
        calls = []
        for dtype in (np.float64, np.float32):
            z = raw.astype(dtype)
            target = y.astype(dtype) if y.dtype.kind == "f" else y
            grad, hess = np.empty_like(z), np.empty_like(z)

            def call(loss=loss, target=target, z=z, grad=grad, hess=hess):
                loss.gradient_hessian(target, z, gradient_out=grad, hessian_out=hess)

            call()  # compiled or loaded before timing
            calls.append(call)
        times = [[], []]
        for _ in range(args.rounds):
            for i, call in enumerate(calls):
                t0 = time.perf_counter()
                call()
                times[i].append(time.perf_counter() - t0)
        t64, t32 = (float(np.median(t)) * 1e3 for t in times)
        print(f"| {name} | {t64:.3f} | {t32:.3f} | {t64 / t32:.2f} |", flush=True)


if __name__ == "__main__":
    main()
