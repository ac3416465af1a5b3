"""Threads, fork and the on-disk cache.

Results are compared bit for bit: kernels reduce in a fixed order, so any
difference means a race, not rounding.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import nbloss

# 20 s of four threads make thousands of overlapping calls; NBLOSS_THREAD_SECONDS soaks longer
THREAD_SECONDS = float(os.environ.get("NBLOSS_THREAD_SECONDS", "20"))


def _workload(seed: int):
    """A mix of kernels: (callable, expected result) pairs."""
    rng = np.random.default_rng(seed)
    n = 20_000
    raw = rng.normal(scale=4, size=(n, 7))
    y = rng.integers(0, 7, size=n)
    sw = rng.uniform(size=n)
    z = rng.normal(scale=4, size=(n, 3)).astype(np.float32)
    t = (rng.uniform(size=z.shape) < 0.3).astype(np.float32)
    calls = [
        lambda: nbloss.CrossEntropy(label_smoothing=0.1).gradient_hessian(y, raw, sw),
        lambda: (nbloss.FocalLoss(gamma=2.0).loss(y, raw),),
        lambda: nbloss.BinaryCrossEntropy(pos_weight=2.0).loss_gradient(t, z),
        lambda: nbloss.BinaryFocalLoss().gradient_hessian(t, z),
        lambda: (nbloss.HuberLoss().loss(t, z, reduction="none"),),
    ]
    return [(call, call()) for call in calls]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_four_threads_calling_at_once_give_identical_results():
    work = _workload(0)
    stop = time.monotonic() + THREAD_SECONDS
    failures: list[str] = []
    counts = [0] * 4

    def worker(idx: int):
        try:
            while time.monotonic() < stop:
                call, expected = work[(idx + counts[idx]) % len(work)]
                if not _same(call(), expected):
                    failures.append(f"thread {idx}: wrong result on call {counts[idx]}")
                    return
                counts[idx] += 1
        except Exception as exc:  # noqa: BLE001 - any exception in a thread is a failure
            failures.append(f"thread {idx}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(THREAD_SECONDS + 120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not failures, failures
    assert min(counts) > 0, counts


def _child_run(seed: int):
    return [res for _, res in _workload(seed)]


def test_kernels_work_in_a_forked_child():
    parent = [res for _, res in _workload(1)]  # the parent has launched the thread pool
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        children = pool.map_async(_child_run, [1, 1, 1]).get(timeout=300)
    for child in children:
        assert all(_same(a, b) for a, b in zip(child, parent))


_CACHE_PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import nbloss
from nbloss.kernels import elementwise, sigmoid, softmax
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
raw = rng.normal(size=(100, 4)); y = rng.integers(0, 4, size=100)
t1 = time.perf_counter()
nbloss.CrossEntropy().gradient_hessian(y, raw)
t_first = time.perf_counter() - t1
# a kernel compiled from a renamed copy of a shared body (CrossEntropy's; the element-wise kernels are copies
# made the same way), a plain kernel (the sigmoid) and a second signature of it (float32), which the second
# process must find in the same index; that every other kernel caches is checked by the whole suite, which
# turns Numba's "Cannot cache" warning into an error (pyproject.toml).  The first process compiles everything
# it calls, cold (each large kernel 15 to 30 s: one is enough here).
nbloss.BinaryFocalLoss().predict_proba(raw)
nbloss.BinaryFocalLoss().predict_proba(raw.astype(np.float32))
kernels = [obj for mod in (elementwise, sigmoid, softmax) for obj in vars(mod).values()
           if hasattr(obj, "stats") and obj.targetoptions.get("parallel")]
kernels = [k for k in kernels if k.signatures]  # the ones this probe used
print(json.dumps({
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "signatures": sum(len(k.signatures) for k in kernels),
    "import_s": t_import, "first_call_s": t_first,
}))
"""


@pytest.mark.slow
def test_second_process_loads_kernels_from_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True,
                             timeout=900, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["misses"] > 0  # the first process compiled (and wrote the cache)
    assert warm["misses"] == 0, warm  # the second compiled nothing
    assert warm["hits"] == warm["signatures"] > 0
    assert warm["first_call_s"] < cold["first_call_s"]


# probe code: every Numba function the nbloss modules of this process define
_NBLOSS_DISPATCHERS = """
import sys
from numba.core.dispatcher import Dispatcher
def nbloss_dispatchers():
    return [obj for mod in list(sys.modules.values()) if (getattr(mod, "__name__", "") or "").startswith("nbloss")
            for obj in vars(mod).values() if isinstance(obj, Dispatcher)]
"""

_SERIAL_PROBE = _NBLOSS_DISPATCHERS + """
import json
import numpy as np
import nbloss
from nbloss.kernels import serial
loss = nbloss.CrossEntropy(label_smoothing=0.1)
prob = loss._prepare(np.array([1]), np.zeros((1, 3)), None)
kernel, args = loss._kernel_call(prob, 1.0, loss._empty(prob, loss_shaped=True), np.empty((1, 3)),
                                 np.empty((1, 3)), False)
twin = serial(kernel)
twin(*args)
# the functions the kernels call, each cached under its own name (module.function)
helpers = sorted({f"{d.py_func.__module__.rsplit('.', 1)[1]}.{d.py_func.__qualname__}"
                  for d in nbloss_dispatchers() if d.targetoptions.get("forceinline")})
print(json.dumps({"misses": sum(twin.stats.cache_misses.values()), "hits": sum(twin.stats.cache_hits.values()),
                  "parallel_hits": sum(kernel.stats.cache_hits.values()), "helpers": helpers}))
"""


_WRITABILITY_PROBE = _NBLOSS_DISPATCHERS + """
import json, tempfile
made = []
real = tempfile.TemporaryFile
def counting(*args, **kwargs):
    made.append(kwargs.get("dir"))
    return real(*args, **kwargs)
tempfile.TemporaryFile = counting
import nbloss
from nbloss.kernels import checks, elementwise, regression, sigmoid, softmax  # defined on first use
cached = [d for d in nbloss_dispatchers() if d._cache.__class__.__name__ != "NullCache"]
print(json.dumps({"temp_files": made, "cached": len({id(d) for d in cached}),
                  "dirs": sorted({d._cache._cache_path for d in cached})}))
"""


def test_import_checks_each_cache_directory_once(tmp_path):
    """Numba checks that a cache directory is writable by making a temporary file in it, for each cached
    function it defines; nbloss defines about 70 with its kernels, and checks each directory once
    (nbloss._cache)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run([sys.executable, "-c", _WRITABILITY_PROBE], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["cached"] > 20
    assert sorted(probe["temp_files"]) == probe["dirs"]


_LAZY_PROBE = """
import json, sys, threading
import numpy as np
import nbloss
def loaded():
    return sorted(m for m in sys.modules if m == "nbloss._numerics" or m.startswith("nbloss.kernels."))
at_import = loaded()
rng = np.random.default_rng(0)
y, raw = rng.integers(0, 4, 500), rng.normal(size=(500, 4))
t, z = (rng.uniform(size=500) < 0.3).astype(float), rng.normal(size=500)
calls = [lambda: nbloss.CrossEntropy().gradient_hessian(y, raw), lambda: nbloss.FocalLoss().loss(y, raw),
         lambda: nbloss.BinaryCrossEntropy().gradient_hessian(t, z), lambda: nbloss.HuberLoss().loss(z, t)]
results = [None] * len(calls)
def run(i):
    results[i] = calls[i]()
threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
for th in threads:
    th.start()
for th in threads:
    th.join()
again = [call() for call in calls]
same = all(np.array_equal(np.asarray(a), np.asarray(b)) for r, q in zip(results, again)
           for a, b in zip(r if isinstance(r, tuple) else (r,), q if isinstance(q, tuple) else (q,)))
print(json.dumps({"at_import": at_import, "after_calls": loaded(), "same": same}))
"""


def test_kernels_load_on_first_use_and_from_threads_at_once():
    """``import nbloss`` defines no kernel (nbloss.kernels imports its modules on first use); four threads
    whose calls are each one's first in the process load them at once and get the results of later calls."""
    out = subprocess.run([sys.executable, "-c", _LAZY_PROBE], capture_output=True, text=True, timeout=900,
                         check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["at_import"] == []
    assert {"nbloss._numerics", "nbloss.kernels.softmax", "nbloss.kernels.elementwise"} <= set(probe["after_calls"])
    assert probe["same"]


@pytest.mark.slow
def test_serial_twins_have_their_own_cache_entry(tmp_path):
    """The serial twin CatBoost's per-row path uses is cached on disk like the parallel kernels, under its own
    name: the second process loads it, and never mistakes it for the parallel kernel's entry."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", _SERIAL_PROBE], env=env, capture_output=True,
                                      text=True, timeout=900, check=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    helpers = set(runs[0].pop("helpers"))
    assert runs[1].pop("helpers") == sorted(helpers)
    assert runs[0]["misses"] == 1 and runs[1] == {"misses": 0, "hits": 1, "parallel_hits": 0}
    entries = sorted(p.name.split("-")[0] for p in (tmp_path / "numba-cache").rglob("*.nbi"))
    # besides the functions it calls (cached each as a function of its own: its row formula among them), only
    # the twin
    assert {"softmax.cross_entropy_row", "softmax.cross_entropy_stats"} <= set(entries)
    assert [e for e in entries if e not in helpers] == ["softmax.cross_entropy_labels_serial"]


def test_no_recompilation_across_calls():
    from nbloss.kernels import elementwise, softmax

    loss = nbloss.CrossEntropy()
    rng = np.random.default_rng(0)
    loss.gradient_hessian(rng.integers(0, 3, 10), rng.normal(size=(10, 3)))
    nbloss.HuberLoss().gradient_hessian(np.zeros(10), rng.normal(size=10))
    before = len(softmax.cross_entropy_labels.signatures), len(elementwise.huber.signatures)
    for n in (1, 7, 1000):
        for k in (2, 5):
            loss.gradient_hessian(rng.integers(0, k, n), rng.normal(size=(n, k)))
            nbloss.HuberLoss(delta=float(k)).gradient_hessian(np.zeros((n, k)), rng.normal(size=(n, k)))
    assert (len(softmax.cross_entropy_labels.signatures), len(elementwise.huber.signatures)) == before


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr = arr.copy()
    arr.flags.writeable = False
    return arr


def test_read_only_inputs_do_not_compile_again():
    """Numba types read-only arrays apart from writeable ones: memory maps, pandas' copy-on-write arrays and
    frozen parameters must run the kernels compiled for writeable inputs, not compile one per mix (15 s each)."""
    from nbloss.kernels import elementwise, softmax

    rng = np.random.default_rng(1)
    n, k = 50, 4
    inputs = {"y": rng.integers(0, k, n), "raw": rng.normal(size=(n, k)), "sw": rng.uniform(size=n),
              "class_weight": rng.uniform(0.5, 2.0, k), "t32": (rng.uniform(size=(n, 3)) < 0.5).astype(np.float32),
              "raw32": rng.normal(scale=3, size=(n, 3)).astype(np.float32),
              "sw32": rng.uniform(size=n).astype(np.float32)}
    # float32 element-wise calls, whose kernels _workload compiles in this same process
    calls = [
        lambda a: nbloss.CrossEntropy(class_weight=a["class_weight"]).gradient_hessian(a["y"], a["raw"], a["sw"]),
        lambda a: (nbloss.CrossEntropy().loss(a["y"], a["raw"]),),
        lambda a: nbloss.BinaryCrossEntropy(pos_weight=2.0).loss_gradient(a["t32"], a["raw32"], a["sw32"]),
        lambda a: (nbloss.HuberLoss().loss(a["raw32"][::-1].copy(), a["raw32"], a["sw32"], reduction="none"),),
    ]
    _workload(0)
    expected = [call(inputs) for call in calls]
    kernels = (softmax.cross_entropy_labels, elementwise.bce, elementwise.huber)
    before = [len(kernel.signatures) for kernel in kernels]
    names = sorted(inputs)
    for mask in range(1, 2 ** len(names)):  # every mix of read-only inputs
        mixed = {name: _read_only(inputs[name]) if mask >> bit & 1 else inputs[name]
                 for bit, name in enumerate(names)}
        for call, want in zip(calls, expected):
            assert _same(call(mixed), want)
    assert [len(kernel.signatures) for kernel in kernels] == before


_STALE_PROBE = """
import json
import numpy as np
import nbloss
from nbloss.kernels.sigmoid import sigmoid
raw = np.linspace(-3.0, 3.0, 8).reshape(4, 2)
out = np.empty_like(raw)
sigmoid(raw, out)
print(json.dumps({"file": nbloss.__file__, "misses": sum(sigmoid.stats.cache_misses.values()),
                  "hits": sum(sigmoid.stats.cache_hits.values()), "out": out.tolist()}))
"""


@pytest.mark.slow
def test_a_change_to_the_numerics_alone_recompiles_the_kernels(tmp_path):
    """Numba stamps a cache entry with the file that defines the function only; the sigmoid kernel inlines
    ``exp_nonpos`` from ``_numerics.py``, so a change there alone must still invalidate it (nbloss._cache).
    Without that, the third run below loads the old machine code and returns the old values."""
    package = tmp_path / "src" / "nbloss"
    shutil.copytree(os.path.dirname(nbloss.__file__), package, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), PYTHONPATH=str(package.parent))

    def run():
        out = subprocess.run([sys.executable, "-c", _STALE_PROBE], env=env, capture_output=True, text=True,
                             timeout=900, check=True, cwd=tmp_path)
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert os.path.dirname(cold["file"]) == str(package)
    assert (cold["misses"], warm["misses"], warm["hits"]) == (1, 0, 1)
    numerics = package / "_numerics.py"
    source = numerics.read_text()
    exact = "    return _exp_finish(x, k, r)\n"
    assert source.count(exact) == 1
    numerics.write_text(source.replace(exact, "    return 2.0 * _exp_finish(x, k, r)\n"))
    changed = run()
    assert changed["misses"] == 1 and changed["hits"] == 0
    assert changed["out"] != cold["out"]
