"""Numba kernels, one module per loss family.

Every kernel is ``parallel=True`` over rows, ``cache=True``, one fused pass
(loss, gradient and Hessian of a row computed together), and takes already
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
"""

from __future__ import annotations

import types

from numba import njit

_SERIAL: dict = {}


def serial(kernel):
    """``kernel`` compiled without threads (``prange`` runs as ``range``).

    For callers that hand over one row at a time (CatBoost's per-row
    objective), where waking the thread pool costs more than the row.  The
    twin is a renamed copy of the kernel's Python function: Numba names a
    cache file after the function, and a twin sharing the parallel kernel's
    name would read the parallel kernel's cache entry.
    """
    twin = _SERIAL.get(kernel)
    if twin is None:
        f = kernel.py_func
        copy = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
        copy.__qualname__ = f.__qualname__ + "_serial"
        copy.__module__ = f.__module__
        copy.__doc__ = f.__doc__
        twin = _SERIAL.setdefault(kernel, njit(cache=True)(copy))
    return twin
