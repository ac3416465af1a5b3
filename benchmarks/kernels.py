"""Kernel speed: nbloss against scikit-learn's Cython losses, NumPy/SciPy and a memory floor, in one run.

    python benchmarks/kernels.py                 # the full grid (a few minutes)
    python benchmarks/kernels.py --quick         # n <= 1e5, for a look

For each case (loss, n, K, dtype) every contender computes the gradient and the
Hessian of the same inputs:

* ``nbloss``: ``gradient_hessian`` into preallocated ``gradient_out`` /
  ``hessian_out`` (validation included);
* ``sklearn``: ``sklearn._loss.loss`` (``HalfMultinomialLoss``,
  ``HalfBinomialLoss``, ``HuberLoss``; focal losses have none) with
  ``n_threads`` = nbloss's thread count, into preallocated outputs;
* ``numpy``: the formulas as they are pasted into custom objectives (SciPy's
  ``softmax``/``expit``; focal from ``tests/focal_reference.py``), allocating;
* ``floor``: a parallel (all threads, Numba) copy of ``raw`` into both outputs
  that also reads the targets: the bytes any kernel must read and write, at
  the machine's copy bandwidth;
* ``floor+exp``: the same pass with one ``exp`` per element (nbloss's own
  vectorised ``exp_nonpos`` of ``-|z|``, its result in both outputs): the least
  arithmetic any of these losses but Huber's needs.  Where nbloss takes much
  longer than this, what bounds it is the rest of its arithmetic (row
  maxima and sums, divisions, the derivative formulas), not the memory or the
  exponentials;
* ``nbloss CE`` (focal cases only): nbloss's cross-entropy of the same shape
  (``CrossEntropy`` for ``FocalLoss``, ``BinaryCrossEntropy`` for
  ``BinaryFocalLoss``), so that focal's cost over cross-entropy is measured in
  the same interleaved rounds.  Timed as cases of their own, minutes apart,
  the ratio moved with the machine's drift: FocalLoss at gamma 1.5, n = 1e6,
  K = 10, took 1.50x CrossEntropy's time that way (this script at ecc3eff)
  and 1.36x with the two alternating in one process.

A second, smaller table times the other calls against scikit-learn's, float64:
the mean ``loss`` (scikit-learn's ``__call__``) and ``loss_gradient`` with
per-row losses and gradients (``reduction="none"``; scikit-learn's
``loss_gradient`` into preallocated outputs) and ``gradient_hessian`` with
uniform sample weights, for CrossEntropy (K = 10, 100) at
n = 1e6 and BinaryCrossEntropy at n = 1e7 (a tenth of each with ``--quick``).

Times are medians of ``--repeats`` calls, and of as many more as fit in
``--min-seconds`` for short calls (fewer for calls over a second).  The
contenders of a case are timed in interleaved rounds, so that the machine's
drift (this shared machine's speed changes within minutes) falls on all of
them alike and the ratios hold; in a round each calls for a burst of 20 ms
(one call if it takes longer) after a pause of 20 ms, so that a short call
is not timed on cores that another contender's threads still hold (see
``median_times``).
Prints a table with ratios, writes JSON (``--json``) and a plot of throughput
against n (``--plot``).

Then, each in fresh processes (``--skip-startup`` leaves this out):

* start-up: the time of ``import nbloss`` and how many kernels it compiled;
* cold compile: every loss's ``loss``, ``loss_gradient`` and
  ``gradient_hessian`` in float64 and float32, with an empty on-disk cache;
* warm first call: a fresh process's first ``gradient_hessian`` with that
  cache warm (import not included);
* peak memory of ``gradient_hessian`` at n = 1e6, K = 100: the growth of the
  process's peak resident set during the call (the peak reset just before it,
  Linux ``/proc/self/clear_refs``), beyond the inputs and outputs (with
  ``out=`` buffers and without), and the count of Numba allocations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from _report import add_output_arguments, pyplot, save
from numba import njit, prange
from scipy.special import expit
from scipy.special import softmax as scipy_softmax
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn._loss.loss import HuberLoss as SkHuberLoss

import nbloss
from nbloss._numerics import MIN_BLOCK, MIN_FLAT_BLOCK, block_bounds, exp_nonpos, n_blocks
from nbloss.kernels import _KERNEL_OPTIONS, renamed_copy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from focal_reference import binary_focal_grad_hess, softmax_focal_grad_hess  # noqa: E402

GAMMA, ALPHA, DELTA = 2.0, 0.25, 1.0
# the focal losses also run at these: 1.5 takes the kernels for 0.5, 1.5 and 2.5 (a square root), 1.7 those for
# any other exponent (``pow_unit``); the default, 2, takes those for the integers 0 to 3 (products)
OTHER_GAMMAS = (1.5, 1.7)
# the contender of a focal case that is nbloss's cross-entropy of the same shape
CE_PARTNER = "nbloss CE"


def numpy_cross_entropy(y, z):
    p = scipy_softmax(z, axis=1)
    grad = p.copy()
    grad[np.arange(z.shape[0]), y] -= 1.0
    return grad, p * (1.0 - p)


def numpy_bce(y, z):
    p = expit(z)
    return p - y, p * (1.0 - p)


def numpy_huber(y, z):
    r = z - y
    return np.clip(r, -DELTA, DELTA), (np.abs(r) <= DELTA).astype(z.dtype)


@njit
def _unchanged(x):
    return x


@njit
def _exp_of_minus_abs(x):
    return exp_nonpos(-abs(float(x)))


def _floor_pass(src, targets, out_a, out_b):
    """Read ``src`` (flat, ``n * K``) and ``targets`` (``n``), write ``ELEMENT(src[i])`` to both outputs, in
    one pass over blocks of rows on all threads, as the kernels go: each block reads its rows' values and
    targets together.  The floor before this one, a copy loop and then an ordered sum of the targets in a
    loop of its own, took longer than nbloss's Huber kernel, which reads and writes the same bytes: at
    n = 1e7, float32, 11.6 ms against 6.3 for a pass like this one."""
    n = targets.shape[0]
    k = src.shape[0] // n
    nb = n_blocks(n, MIN_FLAT_BLOCK if k == 1 else MIN_BLOCK)  # the kernels' blocks: flat elements, or rows of K
    n_bad = np.empty(nb, dtype=np.int64)
    for b in prange(nb):
        lo, hi = block_bounds(b, n, nb)
        sb = src[lo * k:hi * k]
        ab = out_a[lo * k:hi * k]
        bb = out_b[lo * k:hi * k]
        tb = targets[lo:hi]
        for i in range(sb.shape[0]):
            value = ELEMENT(sb[i])  # noqa: F821 - bound by _floor_for
            ab[i] = value
            bb[i] = value
        # what the element-wise kernels do with targets: count those out of range, an integer sum that
        # vectorises (an ordered float sum of them is a chain of dependent adds, which it took longer to
        # run than the copy)
        bad = 0
        for i in range(tb.shape[0]):
            bad += 0 if tb[i] >= 0 else 1
        n_bad[b] = bad
    return n_bad.sum()


def _floor_for(name, element):
    """:func:`_floor_pass` compiled with ``ELEMENT = element``, as the kernels are but not cached: Numba's
    cache entry of a function outside nbloss would not see a change to the ``exp`` it inlines."""
    return njit(parallel=True, **{**_KERNEL_OPTIONS, "cache": False})(renamed_copy(_floor_pass, name,
                                                                             {"ELEMENT": element}))


copy_floor = _floor_for("copy_floor", _unchanged)
exp_floor = _floor_for("exp_floor", _exp_of_minus_abs)


def cases(quick: bool):
    softmax_n = (1_000, 10_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    elementwise_n = (100_000,) if quick else (100_000, 10_000_000)
    for dtype in (np.float64, np.float32):
        for k in (10, 100):
            for n in softmax_n:
                yield "CrossEntropy", n, k, dtype
                yield "FocalLoss", n, k, dtype
                if k == 10:
                    for gamma in OTHER_GAMMAS:
                        yield f"FocalLoss g={gamma}", n, k, dtype
        for n in elementwise_n:
            for name in ("BinaryCrossEntropy", "BinaryFocalLoss", *[f"BinaryFocalLoss g={g}" for g in OTHER_GAMMAS],
                         "HuberLoss"):
                yield name, n, 1, dtype


def sklearn_loss(name, k):
    """scikit-learn's Cython loss for ``name``, or None where it has none."""
    make = {"CrossEntropy": lambda: HalfMultinomialLoss(n_classes=k), "BinaryCrossEntropy": HalfBinomialLoss,
            "HuberLoss": lambda: SkHuberLoss(delta=DELTA)}.get(name)
    return None if make is None else make()


def case_data(name, n, k, dtype, seed):
    """``(y, raw)`` of a case: N(0, 3^2) logits; class labels, 0/1 targets (30% ones) or, for Huber, N(0, 1)."""
    rng = np.random.default_rng(seed)
    if k > 1:
        return rng.integers(0, k, n), rng.normal(scale=3.0, size=(n, k)).astype(dtype)
    z = rng.normal(scale=3.0, size=n).astype(dtype)
    y = rng.normal(size=n) if name == "HuberLoss" else (rng.uniform(size=n) < 0.3)
    return y.astype(dtype), z


def contenders(name, k, n_threads):
    """``{contender: (make_call(y, raw, grad_out, hess_out) -> callable)}`` for one loss."""
    base, _, gamma_text = name.partition(" g=")
    gamma = float(gamma_text) if gamma_text else GAMMA
    losses = {"CrossEntropy": nbloss.CrossEntropy, "FocalLoss": lambda: nbloss.FocalLoss(gamma=gamma),
              "BinaryCrossEntropy": nbloss.BinaryCrossEntropy,
              "BinaryFocalLoss": lambda: nbloss.BinaryFocalLoss(gamma=gamma, alpha=ALPHA),
              "HuberLoss": lambda: nbloss.HuberLoss(delta=DELTA)}
    ours = losses[base]()
    out = {"nbloss": lambda y, z, g, h: (lambda: ours.gradient_hessian(y, z, gradient_out=g, hessian_out=h))}
    theirs = sklearn_loss(name, k)
    if theirs is not None:
        out["sklearn"] = lambda y, z, g, h: partial(theirs.gradient_hessian, y.astype(z.dtype), z, gradient_out=g,
                                                    hessian_out=h, n_threads=n_threads)
    numpy_impl = {"CrossEntropy": numpy_cross_entropy, "BinaryCrossEntropy": numpy_bce, "HuberLoss": numpy_huber,
                  "FocalLoss": lambda y, z: softmax_focal_grad_hess(y, z, gamma),
                  "BinaryFocalLoss": lambda y, z: binary_focal_grad_hess(y, z, ALPHA, gamma)}[base]
    out["numpy"] = lambda y, z, g, h: (lambda: numpy_impl(y, z))
    if "Focal" in name:
        plain = nbloss.BinaryCrossEntropy() if name.startswith("Binary") else nbloss.CrossEntropy()
        out[CE_PARTNER] = lambda y, z, g, h: (lambda: plain.gradient_hessian(y, z, gradient_out=g, hessian_out=h))
    for label, floor in (("floor", copy_floor), ("floor+exp", exp_floor)):
        out[label] = partial(_floor_call, floor)
    return out


def _floor_call(floor, y, z, g, h):
    return partial(floor, z.reshape(-1), y.reshape(-1), g.reshape(-1), h.reshape(-1))


def median_times(fns: dict, repeats: int, min_seconds: float = 0.0, burst_seconds: float = 0.02,
                 settle_seconds: float = 0.02) -> dict:
    """``{name: median seconds}`` of the callables ``fns``, timed in interleaved rounds (each round gives
    every contender still running a burst of calls), so that a machine whose speed drifts within minutes
    slows every contender alike and their ratios hold.  Each is called at least ``repeats`` times and more
    while its calls total under ``min_seconds`` (a median of seven 50-microsecond calls on a shared
    machine says little); at least 3, and no more once its calls have taken 3 s.

    A burst repeats a contender's call for ``burst_seconds`` (once for calls longer than that), and
    every call is a sample.  Before each burst the process sleeps ``settle_seconds``: scikit-learn's
    OpenMP threads spin on the cores for a while after each of its calls, and a call made then is
    timed on cores they hold, which is not its own cost.  nbloss at n = 1e3, K = 10, per 5 ms after a
    switch from scikit-learn's calls: 71, 50, 47 us, then 47 to 46; 47 after its own calls.  The
    sleep also puts the caller's own threads to sleep, so a burst's first call wakes them; the median
    sets it aside.  With one call a round and no sleep, nbloss at n = 1e3, K = 10 took 88.5
    microseconds against 50.0 alone; with bursts of 10 ms and no sleep, 70.9 against 47.0."""
    for fn in fns.values():
        fn()  # warm: compiled code loaded, pages touched
    times = {name: [] for name in fns}
    totals = dict.fromkeys(fns, 0.0)  # running sums: summing the samples on every call was quadratic

    def running(name):
        count, total = len(times[name]), totals[name]
        return (count < repeats or total < min_seconds) and not (total > 3.0 and count >= 3)

    while any(running(name) for name in fns):
        for name, fn in fns.items():
            if not running(name):
                continue
            if len(fns) > 1:
                time.sleep(settle_seconds)
            burst = 0.0
            while running(name) and (burst == 0.0 or burst < burst_seconds):
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
                times[name].append(elapsed)
                totals[name] += elapsed
                burst += elapsed
    return {name: statistics.median(ts) for name, ts in times.items()}


CALLS = ("loss", "loss_gradient", "gradient_hessian (sample_weight)")


def call_cases(quick: bool):
    """``(loss, n, K)`` of the other calls' comparison with scikit-learn (float64)."""
    softmax_n, elementwise_n = (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)
    for k in (10, 100):
        yield "CrossEntropy", softmax_n, k
    yield "BinaryCrossEntropy", elementwise_n, 1


def call_contenders(name, k, n_threads):
    """``{(call, contender): make_call(y, raw, grad_out) -> callable}``: the mean loss (scikit-learn's
    ``__call__``), and the per-row loss with the per-row gradient (``reduction="none"``, scikit-learn's
    ``loss_gradient``), and the gradient and Hessian with sample weights, each into preallocated outputs
    where the call takes them."""
    ours = {"CrossEntropy": nbloss.CrossEntropy, "BinaryCrossEntropy": nbloss.BinaryCrossEntropy}[name]()
    theirs = sklearn_loss(name, k)

    def sk_loss(y, z, g):
        return partial(theirs, y.astype(z.dtype), z, n_threads=n_threads)

    def sk_loss_gradient(y, z, g):
        return partial(theirs.loss_gradient, y.astype(z.dtype), z, loss_out=np.empty(z.shape[0], z.dtype),
                       gradient_out=g, n_threads=n_threads)

    def weighted_gh(call):
        # uniform weights in [0, 1): the inputs (and their validation) of a weighted fit or boosting round
        def make(y, z, g):
            sw = np.random.default_rng(7).random(z.shape[0])
            return partial(call, y, z, sw, g, np.empty_like(z))
        return make

    def ours_gh(y, z, sw, g, h):
        return ours.gradient_hessian(y, z, sample_weight=sw, gradient_out=g, hessian_out=h)

    def theirs_gh(y, z, sw, g, h):
        return theirs.gradient_hessian(y.astype(z.dtype), z, sample_weight=sw, gradient_out=g, hessian_out=h,
                                       n_threads=n_threads)

    return {("loss", "nbloss"): lambda y, z, g: partial(ours.loss, y, z),
            ("loss", "sklearn"): sk_loss,
            ("loss_gradient", "nbloss"): lambda y, z, g: partial(ours.loss_gradient, y, z, reduction="none",
                                                                 gradient_out=g),
            ("loss_gradient", "sklearn"): sk_loss_gradient,
            ("gradient_hessian (sample_weight)", "nbloss"): weighted_gh(ours_gh),
            ("gradient_hessian (sample_weight)", "sklearn"): weighted_gh(theirs_gh)}


def run_calls(args) -> list:
    """The ``loss`` and ``loss_gradient`` calls against scikit-learn's, float64."""
    n_threads = nbloss.get_num_threads()
    grid = list(call_cases(args.quick))
    rows = []
    for i, (name, n, k) in enumerate(grid):
        _bar(i, len(grid), f"{name} n={n:,} K={k} loss, loss_gradient")
        y, z = case_data(name, n, k, np.float64, 100 + i)
        g = np.empty_like(z)
        seconds = median_times({key: make(y, z, g) for key, make in call_contenders(name, k, n_threads).items()},
                               args.repeats, args.min_seconds)
        for call in CALLS:
            ours, theirs = seconds[(call, "nbloss")], seconds[(call, "sklearn")]
            rows.append({"loss": name, "call": call, "n": n, "K": k, "dtype": "float64",
                         "seconds": {"nbloss": ours, "sklearn": theirs}, "speedup": {"sklearn": theirs / ours}})
    _bar(len(grid), len(grid), "done")
    print(file=sys.stderr)
    return rows


def print_calls(rows: list) -> None:
    print("\nloss (mean), loss_gradient (per row) and weighted gradient_hessian, float64; median ms; "
          "'x' = scikit-learn time / nbloss time")
    print(f"| {'loss':<21} | {'call':<32} | {'n':>10} | {'K':>3} | {'nbloss':>8} | {'sklearn':>8} | {'x':>5} |")
    print("|" + "|".join("-" * w for w in (23, 34, 12, 5, 10, 10, 7)) + "|")
    for r in rows:
        s = r["seconds"]
        print(f"| {r['loss']:<21} | {r['call']:<32} | {r['n']:>10,} | {r['K']:>3} | {s['nbloss'] * 1e3:8.2f} | "
              f"{s['sklearn'] * 1e3:8.2f} | {r['speedup']['sklearn']:5.2f} |")


def _bar(done: int, total: int, label: str) -> None:
    filled = int(30 * done / total)
    print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {label:<48}", end="", file=sys.stderr, flush=True)


def run(args) -> dict:
    n_threads = nbloss.get_num_threads()
    grid = list(cases(args.quick))
    rows = []
    for i, (name, n, k, dtype) in enumerate(grid):
        _bar(i, len(grid), f"{name} n={n:,} K={k} {np.dtype(dtype).name}")
        y, z = case_data(name, n, k, dtype, i)
        g, h = np.empty_like(z), np.empty_like(z)
        seconds = median_times({contender: make(y, z, g, h)
                                for contender, make in contenders(name, k, n_threads).items()},
                               args.repeats, args.min_seconds)
        row = {"loss": name, "n": n, "K": k, "dtype": np.dtype(dtype).name, "seconds": seconds}
        ours = row["seconds"]["nbloss"]
        row["speedup"] = {c: s / ours for c, s in row["seconds"].items() if c != "nbloss"}
        rows.append(row)
    _bar(len(grid), len(grid), "done")
    print(file=sys.stderr)
    return {"setup": {"threads": n_threads, "threading_layer": nbloss.threading_layer(), "repeats": args.repeats,
                      "min_seconds": args.min_seconds,
                      "python": platform.python_version(), "numpy": np.__version__,
                      "nbloss": nbloss.__version__},
            "rows": rows}


def print_table(report: dict) -> None:
    print(f"gradient_hessian, {report['setup']['threads']} threads; median ms; 'x' = contender time / nbloss time "
          "(> 1: nbloss faster); floor = copying the bytes, +exp = with one exp per element; /CE = a focal "
          "loss's time over nbloss's cross-entropy of the same shape, in the same rounds")
    print(f"| {'loss':<21} | {'n':>10} | {'K':>3} | {'dtype':<7} | {'nbloss':>8} | {'sklearn':>8} | {'x':>5} | "
          f"{'numpy':>8} | {'x':>5} | {'floor':>7} | {'nbloss/floor':>12} | {'+exp':>7} | {'nbloss/+exp':>11} | "
          f"{'/CE':>5} |")
    print("|" + "|".join("-" * w for w in (23, 12, 5, 9, 10, 10, 7, 10, 7, 9, 14, 9, 13, 7)) + "|")
    for r in report["rows"]:
        s, x = r["seconds"], r["speedup"]
        sk = f"{s['sklearn'] * 1e3:8.2f} | {x['sklearn']:5.2f}" if "sklearn" in s else f"{'':>8} | {'':>5}"
        over_ce = f"{s['nbloss'] / s[CE_PARTNER]:5.2f}" if CE_PARTNER in s else f"{'':>5}"
        print(f"| {r['loss']:<21} | {r['n']:>10,} | {r['K']:>3} | {r['dtype']:<7} | {s['nbloss'] * 1e3:8.2f} | {sk} | "
              f"{s['numpy'] * 1e3:8.2f} | {x['numpy']:5.1f} | {s['floor'] * 1e3:7.2f} | "
              f"{s['nbloss'] / s['floor']:12.1f} | {s['floor+exp'] * 1e3:7.2f} | "
              f"{s['nbloss'] / s['floor+exp']:11.1f} | {over_ce} |")


_IMPORT_PROBE = """
import json, time
t0 = time.perf_counter()
import nbloss
seconds = time.perf_counter() - t0
from nbloss.kernels import elementwise, sigmoid, softmax
kernels = [f for m in (elementwise, sigmoid, softmax) for f in vars(m).values() if hasattr(f, "signatures")]
print(json.dumps({"import_s": seconds, "compiled": sum(len(k.signatures) for k in kernels)}))
"""

_COMPILE_PROBE = """
import json, time
import numpy as np
import nbloss
rng = np.random.default_rng(0)
labels, raw = rng.integers(0, 4, 50), rng.normal(size=(50, 4))
t_first = None
t0 = time.perf_counter()
for dtype in (np.float64, np.float32):
    z = raw.astype(dtype)
    soft = rng.dirichlet(np.ones(4), 50).astype(dtype)
    calls = [(nbloss.CrossEntropy(), labels, z), (nbloss.CrossEntropy(), soft, z)]
    calls += [(loss(), np.zeros(50, dtype), z[:, 0]) for loss in (nbloss.BinaryCrossEntropy,
              nbloss.HuberLoss, nbloss.PseudoHuberLoss, nbloss.SquaredError)]
    # each kind of focal exponent (integer, half, other) has kernels of its own
    calls += [(nbloss.FocalLoss(gamma=g), labels, z) for g in (2.0, 1.5, 1.7)]
    calls += [(nbloss.BinaryFocalLoss(gamma=g), np.zeros(50, dtype), z[:, 0]) for g in (2.0, 1.5, 1.7)]
    for loss, y, r in calls:
        loss.gradient_hessian(y, r)
        if t_first is None:
            t_first = time.perf_counter() - t0
        loss.loss_gradient(y, r)
        loss.loss(y, r)
print(json.dumps({"all_s": time.perf_counter() - t0, "first_call_s": t_first, "losses": len(calls)}))
"""

_MEMORY_PROBE = """
import json
import numpy as np
import nbloss
from numba.core.runtime import rtsys

def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

def reset_peak():  # Linux: writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

n, k = 1_000_000, 100
rng = np.random.default_rng(0)
y, z = rng.integers(0, k, n), rng.normal(size=(n, k))
loss = nbloss.CrossEntropy()
loss.gradient_hessian(y[:10], z[:10])
outputs_kib = 2 * z.nbytes / 1024
reset_peak()
before = status_kib("VmRSS")
result = loss.gradient_hessian(y, z)
without_out = status_kib("VmHWM") - before - outputs_kib  # beyond the two returned arrays
del result
g, h = np.ones_like(z), np.ones_like(z)
reset_peak()
before, allocs = status_kib("VmRSS"), rtsys.get_allocation_stats().alloc
loss.gradient_hessian(y, z, gradient_out=g, hessian_out=h)
with_out, allocs_out = status_kib("VmHWM") - before, rtsys.get_allocation_stats().alloc - allocs
print(json.dumps({"n": n, "K": k, "inputs_MiB": (y.nbytes + z.nbytes) / 2**20, "outputs_MiB": outputs_kib / 1024,
                  "extra_peak_MiB_with_out": with_out / 1024, "numba_allocations_with_out": allocs_out,
                  "extra_peak_MiB_without_out": without_out / 1024}))
"""


def _probe(code: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup_and_memory() -> dict:
    """Start-up, cold compile, warm first call and peak memory, each measured in fresh processes."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        _bar(0, 4, "import")
        # as after ``pip install``, which writes bytecode: the first run writes it where
        # PYTHONDONTWRITEBYTECODE had been keeping it from, the median of the next runs counts
        bytecode_env = {k: val for k, val in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        runs = [_probe(_IMPORT_PROBE, bytecode_env) for _ in range(6)][1:]
        imported = sorted(runs, key=lambda r: r["import_s"])[len(runs) // 2]
        _bar(1, 4, "cold compile (empty cache)")
        cold = _probe(_COMPILE_PROBE, env)
        _bar(2, 4, "first call (warm cache)")
        warm = _probe(_COMPILE_PROBE, env)
        _bar(3, 4, "peak memory")
        memory = _probe(_MEMORY_PROBE, dict(env, NUMBA_NRT_STATS="1"))  # Numba counts its allocations
    _bar(4, 4, "done")
    print(file=sys.stderr)
    return {"import_s": imported["import_s"], "compiled_at_import": imported["compiled"],
            "cold_compile_all_s": cold["all_s"], "cold_compile_losses": cold["losses"],
            "warm_first_call_s": warm["first_call_s"],
            "warm_all_calls_s": warm["all_s"], "memory": memory}


def print_startup(s: dict) -> None:
    m = s["memory"]
    print(f"\nimport nbloss: {s['import_s']:.2f} s, {s['compiled_at_import']} kernels compiled at import")
    print(f"cold compile of every kernel (3 methods x {s['cold_compile_losses']} losses/targets x 2 dtypes, "
          f"empty cache): "
          f"{s['cold_compile_all_s']:.1f} s")
    print(f"warm cache, fresh process: first gradient_hessian {s['warm_first_call_s']:.2f} s, "
          f"all {s['warm_all_calls_s']:.2f} s")
    print(f"peak memory, CrossEntropy.gradient_hessian n={m['n']:,} K={m['K']} float64 (inputs "
          f"{m['inputs_MiB']:.0f} MiB, outputs {m['outputs_MiB']:.0f} MiB): extra peak with out= "
          f"{m['extra_peak_MiB_with_out']:.1f} MiB ({m['numba_allocations_with_out']} Numba allocations), "
          f"without out= {m['extra_peak_MiB_without_out']:.1f} MiB beyond the returned outputs")


def plot(report: dict, path: str) -> None:
    plt = pyplot()
    panels = list(dict.fromkeys((r["loss"], r["K"]) for r in report["rows"]))
    cols = 4
    rows_of_panels = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(4.2 * cols, 3.3 * rows_of_panels + 0.7), squeeze=False)
    colours = {"nbloss": "#2a7ab0", CE_PARTNER: "#8fc1e3", "sklearn": "#888888", "numpy": "#d0883a",
               "floor": "#3a9a4a", "floor+exp": "#9acd8a"}
    labelled = set()
    for ax, (loss, k) in zip(axes.ravel(), panels):
        for dtype, style in (("float64", "-"), ("float32", "--")):
            rows = [r for r in report["rows"] if r["loss"] == loss and r["K"] == k and r["dtype"] == dtype]
            for contender, colour in colours.items():
                pts = [(r["n"], r["n"] / r["seconds"][contender]) for r in rows if contender in r["seconds"]]
                if pts:
                    label = f"{contender} {dtype}"  # in the legend once, from the first panel that has it
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=colour,
                            label=None if label in labelled else label)
                    labelled.add(label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{loss}" + (f", K={k}" if k > 1 else ""), fontsize=9)
        ax.set_xlabel("n (rows)")
        ax.set_ylabel("rows / s")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    # the legend in a strip of its own below the panels, so that it hides no curve
    fig.legend(loc="lower center", fontsize=7, ncol=len(colours) * 2)
    fig.suptitle(f"gradient_hessian throughput, {report['setup']['threads']} threads "
                 "(solid float64, dashed float32)", fontsize=10)
    fig.tight_layout(rect=(0.0, 0.6 / fig.get_figheight(), 1.0, 1.0))
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.3,
                        help="time each contender for at least this long (short calls repeat more)")
    parser.add_argument("--skip-startup", action="store_true")
    add_output_arguments(parser, "kernels")
    args = parser.parse_args(argv)
    report = run(args)
    print_table(report)
    report["calls"] = run_calls(args)
    print_calls(report["calls"])
    save(report, args, plot)
    if not args.skip_startup:
        report["startup"] = startup_and_memory()
        print_startup(report["startup"])
        save(report, args, plot)


if __name__ == "__main__":
    main()
