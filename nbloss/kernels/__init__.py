"""Numba kernels, one module per loss family (and :mod:`.checks`, the input checks that need a pass of their own).

Every kernel is :data:`parallel_kernel` (``prange`` over rows, cached, NumPy's
error model), one fused pass (loss, gradient and Hessian of a row computed
together), and takes already
validated, C-contiguous arrays from :mod:`nbloss._validation`.  Inputs a kernel
can check for free while it reads them (NaN logits, out-of-range labels,
targets outside [0, 1]) are checked there and reported as the first bad row
(``n`` meaning none); the Python side turns that into the error message.

Conventions shared by the kernels:

* outputs that are not wanted are passed as arrays with zero rows and are
  never indexed;
* ``sample_weight`` with zero rows means unit weights;
* derivatives are multiplied by ``grad_scale`` (1 for per-sample derivatives,
  ``1 / total_weight`` for the gradient of a mean);
* the returned loss sum is accumulated in float64.
* arrays a kernel allocates are ``np.empty``, filled by its own loops: under
  ``parallel=True`` Numba turns ``np.zeros`` into a parallel loop of its own,
  one more launch of the thread pool per call (CrossEntropy's kernel on one
  row took 6.4 us with it, 4.7 without).

The kernel modules are imported on first use (``nbloss.kernels.softmax`` and
the like, by attribute): defining their seventy-odd Numba functions sets up
Numba's target context and a cache locator for each, which ``import nbloss``
need not pay (its own part took 38 to 41 ms with them, 4 to 7 without).  The
first call of a process pays it instead.
"""

from __future__ import annotations

import importlib
import types

from numba import njit
from numba.np.ufunc.parallel import _launch_threads

_SERIAL: dict = {}
_MODULES = frozenset({"checks", "elementwise", "regression", "sigmoid", "softmax"})


def __getattr__(name: str):
    # reached only until a kernel module is bound here, which its import does, and so does this.  The module
    # is found by name in ``sys.modules``: with two copies of the package in one process (two versions
    # compared), a copy whose first call comes after the other copy's import gets the other copy's kernels,
    # so each copy must call a kernel (or touch these attributes) before the next is imported.
    if name in _MODULES:
        module = globals()[name] = importlib.import_module(f"{__name__}.{name}")
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Every kernel: rows in ``prange``, cached on disk, and NumPy's error model.  Under
# Python's, each float division checks its divisor to raise ZeroDivisionError, and
# that branch keeps LLVM from vectorising the loop (a loop of ``log1p_nonneg``:
# 9.5 ns an element with the check, 1.4 ns without).  Kernels report bad input
# through the rows they return, and their divisors are never zero.
_KERNEL_OPTIONS = {"cache": True, "error_model": "numpy"}
parallel_kernel = njit(parallel=True, **_KERNEL_OPTIONS)
# The functions kernels call are inlined one of two ways.  ``inlined``: compiled and cached once each, then
# inlined by LLVM (``forceinline``): the row and element formulas, the numerics of :mod:`nbloss._numerics` and
# the loops over one row.  Numba's own inlining copies a function's IR into each kernel, where Numba's parfor
# passes (IR copies, copy propagation) take time in proportion to it: all kernels of both dtypes, compiled cold
# by two processes side by side, took 250 and 270 s with every helper inlined by Numba, and 202 and 202 s with
# these inlined by LLVM (alternating; benchmarks/NOTES.md).  ``inlined_by_numba``: the helpers holding a
# ``prange`` (which must be in the parallel kernel's own IR) and the loops over a block of elements or rows.
# Those loops vectorised only when inlined into the kernel's IR before LLVM saw them: compiled on their own,
# the element-wise ones did not (Huber's ``gradient_hessian``, n = 1e6, one thread, 1.2 -> 3.0 ns an element,
# BinaryCrossEntropy's 3.7 -> 17.8).
inlined = njit(forceinline=True, **_KERNEL_OPTIONS)
inlined_by_numba = njit(inline="always", cache=True)


def renamed_copy(func, name: str, bindings: dict | None = None):
    """A copy of the Python function ``func`` named ``name``, its globals updated with ``bindings``.

    For compiling one function body more than once: Numba names a cache
    file after the function, so each copy needs a name of its own (a copy
    sharing its original's name would read the original's cache entry), and
    it resolves globals at compile time, so ``bindings`` fix what the copy
    calls.
    """
    scope = func.__globals__ if bindings is None else {**func.__globals__, **bindings}
    copy = types.FunctionType(func.__code__, scope, name, func.__defaults__, func.__closure__)
    copy.__qualname__ = func.__qualname__.rsplit(".", 1)[0] + "." + name if "." in func.__qualname__ else name
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy


def serial(kernel):
    """``kernel`` compiled without threads (``prange`` runs as ``range``).

    For callers that hand over one row at a time (CatBoost's per-row
    objective), where waking the thread pool costs more than the row.
    """
    # The kernels call Numba's thread-id and thread-count functions, which the
    # threading layer provides: a twin loaded from the on-disk cache (no typing,
    # which would load it) must not run before the layer is up, or it jumps to
    # an unresolved symbol.
    _launch_threads()
    twin = _SERIAL.get(kernel)
    if twin is None:
        f = kernel.py_func
        twin = _SERIAL.setdefault(kernel, njit(**_KERNEL_OPTIONS)(renamed_copy(f, f.__name__ + "_serial")))
    return twin
