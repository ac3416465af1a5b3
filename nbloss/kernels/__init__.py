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
