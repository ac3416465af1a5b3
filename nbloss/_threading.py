"""Numba threading layer and thread count: the one place that chooses them.

Why TBB: nbloss kernels must survive (a) several Python threads launching
parallel kernels at once and (b) a ``fork`` after kernels have run (the
``multiprocessing`` default on Linux, used by joblib, Dask, PyTorch loaders).
Of Numba's layers, only TBB is both thread-safe and fork-safe on Linux:
``workqueue`` aborts the process on concurrent launches, and GNU OpenMP
deadlocks or crashes in a forked child once its pool has started.

The ``tbb`` wheel ships ``libtbb.so.12`` in ``<prefix>/lib``, which the dynamic
loader does not search in a virtual environment, so we load it by path before
Numba looks for it.  Where TBB cannot be loaded (no wheel for the platform) we
fall back to ``workqueue`` and serialise kernel launches with a lock, which keeps
both guarantees at the price of one parallel kernel at a time.

Numba's own ``set_num_threads`` is per calling thread; nbloss keeps one
process-wide count and applies it at every launch (:func:`launch`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import threading

import numba
from numba.np.ufunc import parallel as _numba_parallel

__all__ = ["set_num_threads", "get_num_threads", "threading_layer", "launch"]


def _tbb_candidates():
    """Paths where the ``tbb`` wheel may have put libtbb: the environment's ``lib`` first
    (a plain stat; importing and asking ``importlib.metadata`` costs ~15 ms of import
    time), then the distribution's own file list."""
    yield os.path.join(sys.prefix, "lib", "libtbb.so.12")
    from importlib import metadata

    try:
        for file in metadata.distribution("tbb").files or ():
            if file.name.startswith("libtbb.so.12") or file.name in ("tbb12.dll", "libtbb.12.dylib"):
                yield str(file.locate())
    except metadata.PackageNotFoundError:
        pass


def _preload_tbb() -> bool:
    """Load libtbb from the ``tbb`` distribution so Numba's tbbpool can link it."""
    for path in _tbb_candidates():
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                return True
            except OSError:
                continue
    return False


def _choose_layer() -> str:
    if _numba_parallel._is_initialized:
        # Someone launched a parallel Numba function before importing nbloss;
        # the layer is fixed for this process, so we work with what is there.
        return numba.threading_layer()
    if _preload_tbb():
        try:
            importlib.import_module("numba.np.ufunc.tbbpool")
            numba.config.THREADING_LAYER = "tbb"
            return "tbb"
        except ImportError:
            pass
    numba.config.THREADING_LAYER = "workqueue"
    return "workqueue"


_LAYER_REQUESTED = _choose_layer()
# workqueue (and omp, if it was forced on us) cannot take concurrent launches
# safely; a lock restores thread safety.  Re-created in forked children in case
# the fork happened while another thread held it.
_launch_lock: threading.Lock | None = None if _LAYER_REQUESTED == "tbb" else threading.Lock()


def _reset_lock_after_fork() -> None:
    global _launch_lock
    if _launch_lock is not None:
        _launch_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)

_n_threads: int = numba.config.NUMBA_NUM_THREADS


def set_num_threads(n: int) -> None:
    """Set how many threads nbloss kernels use, process-wide.

    Parameters
    ----------
    n : int
        Between 1 and ``numba.config.NUMBA_NUM_THREADS`` (the number of cores
        unless ``NUMBA_NUM_THREADS`` says otherwise).
    """
    global _n_threads
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    n = n.__index__()
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"n must be in [1, {limit}], got {n}")
    _n_threads = n


def get_num_threads() -> int:
    """Return how many threads nbloss kernels use."""
    return _n_threads


@contextlib.contextmanager
def num_threads(n: int | None):
    """Use ``n`` kernel threads inside the block (None: leave the count alone), then restore it."""
    previous = _n_threads
    if n is not None:
        set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def threading_layer() -> str:
    """Name of the Numba threading layer nbloss kernels run on."""
    return _LAYER_REQUESTED


def _apply_num_threads() -> None:
    """Make nbloss's thread count the calling thread's Numba count.

    Once the pool is up this is the layer's own setter: ``numba.set_num_threads``
    also takes two locks and checks its argument again on every call, about
    1 microsecond of a 50-microsecond call at n = 1e3 (``_n_threads`` was checked
    when it was set).
    """
    if _numba_parallel._is_initialized:
        _numba_parallel._set_num_threads(_n_threads)
    else:
        numba.set_num_threads(_n_threads)  # starts the pool


def launch(kernel, *args):
    """Run a parallel kernel with nbloss's thread count (and lock, if needed)."""
    if _launch_lock is None:
        _apply_num_threads()
        return kernel(*args)
    with _launch_lock:
        _apply_num_threads()
        return kernel(*args)

