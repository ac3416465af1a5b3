"""Solvers for :class:`~nbloss.estimators._objective.LinearObjective`.

Both stop on the same documented criterion: the largest absolute entry of the
objective's gradient is at most ``tol`` (scikit-learn's ``lbfgs`` criterion on
the same mean-loss scale).  They return ``(w, n_iter, converged)``; the
estimator turns ``converged=False`` into a ``ConvergenceWarning``.

* ``newton_cg``: truncated Newton.  Each iteration solves ``H d = -g`` by
  conjugate gradients (forcing term ``min(0.5, sqrt(|g|)) |g|``, at most 50
  steps, stopped at negative curvature) with exact Hessian-vector products, then backtracks
  (Armijo) from the full step.  Near the optimum it converges quadratically,
  so it reaches tight tolerances in far fewer passes over ``X`` than L-BFGS.
* ``lbfgs``: SciPy's L-BFGS-B, for losses without a Hessian-vector product.
"""

from __future__ import annotations

import sys
from functools import partial

import numpy as np
from scipy.optimize import minimize

_ARMIJO = 1e-4


def _report(verbose: int, iteration: int, value: float, grad_norm: float, extra: str = "") -> None:
    if verbose:
        print(f"iter {iteration:4d}  objective {value:.12g}  |grad|_inf {grad_norm:.3e}{extra}", file=sys.stderr,
              flush=True)


def _conjugate_gradient(hessp, g: np.ndarray, max_iter: int) -> tuple[np.ndarray, int]:
    """Approximate solution of ``H d = -g`` (Steihaug-style: stop at negative curvature)."""
    g_norm = float(np.linalg.norm(g))
    tolerance = min(0.5, np.sqrt(g_norm)) * g_norm
    d = np.zeros_like(g)
    r = -g.copy()
    p = r.copy()
    rr = float(r @ r)
    for i in range(max_iter):
        hp = hessp(p)
        curvature = float(p @ hp)
        if curvature <= 0:
            return (d if i > 0 else -g), i + 1
        step = rr / curvature
        d += step * p
        r -= step * hp
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= tolerance:
            return d, i + 1
        p = r + (rr_new / rr) * p
        rr = rr_new
    return d, max_iter


def _gradient_judged(value: float, grad_norm: float, new_value: float, new_grad: np.ndarray) -> bool:
    """Whether to take a full Newton step that the value cannot judge: it stays within rounding of
    ``value`` and shrinks the gradient.

    Near the optimum the decrease a step makes (about ``|g|^2 / h``) falls below an ulp of the value,
    while the gradient still measures progress.  Judged by the value alone, a fit stopped there:
    the binary LinearClassifier of tests/test_estimators.py at ``tol=1e-10`` took steps of 2e-7
    that Armijo's test passed as ties, stopped with the gradient at 2.5e-10 and warned that it had
    not converged, where the full step took it to rounding.
    """
    if not new_grad.size or not new_value <= value + 16 * np.finfo(np.float64).eps * abs(value):
        return False
    return float(np.max(np.abs(new_grad))) < 0.5 * grad_norm


def newton_cg(objective, w0: np.ndarray, tol: float, max_iter: int, verbose: int = 0,
              stall_tol: float = 0.0) -> tuple[np.ndarray, int, bool]:
    """Truncated Newton with Armijo backtracking.

    ``stall_tol``: when no step decreases the objective (the value is at its
    floating-point floor, e.g. float32 data) and the gradient is below it, the
    fit counts as converged.
    """
    w = w0.copy()
    value, grad = objective.value_and_gradient(w)
    stalls = 0
    for iteration in range(1, max_iter + 1):
        grad_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
        if grad_norm <= tol:
            _report(verbose, iteration - 1, value, grad_norm, "  converged")
            return w, iteration - 1, True
        direction, cg_steps = _conjugate_gradient(partial(objective.hessp, w), grad, max_iter=50)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): fall back to the gradient
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0
        for _ in range(40):
            candidate = w + step * direction
            new_value, new_grad = objective.value_and_gradient(candidate)
            if new_value <= value + _ARMIJO * step * slope:
                break
            if step == 1.0 and _gradient_judged(value, grad_norm, new_value, new_grad):
                break
            step *= 0.5
        else:
            _report(verbose, iteration, value, grad_norm, "  line search found no decrease")
            return w, iteration, grad_norm <= stall_tol
        # accepted steps that change the value only at rounding level make no progress: stop
        stalls = stalls + 1 if value - new_value <= 16 * np.finfo(np.float64).eps * abs(value) else 0
        w, value, grad = candidate, new_value, new_grad
        if stalls >= 3:
            grad_norm = float(np.max(np.abs(grad)))
            _report(verbose, iteration, value, grad_norm, "  no measurable decrease")
            return w, iteration, grad_norm <= max(tol, stall_tol)
        _report(verbose, iteration, value, float(np.max(np.abs(grad))), f"  cg {cg_steps}  step {step:g}")
    grad_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
    return w, max_iter, grad_norm <= tol


def lbfgs(objective, w0: np.ndarray, tol: float, max_iter: int, verbose: int = 0,
          stall_tol: float = 0.0) -> tuple[np.ndarray, int, bool]:
    """SciPy's L-BFGS-B on the objective, stopping at ``|grad|_inf <= tol``."""
    last = {"iteration": 0, "x": None, "grad": None}

    def fun(w):
        value, grad = objective.value_and_gradient(w)
        last["x"], last["grad"] = w.copy(), grad  # SciPy may reuse its x array
        return value, grad

    def callback(intermediate_result):
        last["iteration"] += 1
        if verbose and last["x"] is not None and np.array_equal(last["x"], intermediate_result.x):
            _report(verbose, last["iteration"], intermediate_result.fun, float(np.max(np.abs(last["grad"]))))

    result = minimize(fun, w0, jac=True, method="L-BFGS-B", callback=callback,
                      options={"maxiter": max_iter, "maxfun": 4 * max_iter + 20, "gtol": tol,
                               "ftol": 64 * np.finfo(np.float64).eps, "maxcor": 30})
    grad_norm = float(np.max(np.abs(result.jac))) if result.jac.size else 0.0
    converged = grad_norm <= tol or (result.status == 2 and grad_norm <= stall_tol)
    return result.x, int(result.nit), converged


SOLVERS = {"newton-cg": newton_cg, "lbfgs": lbfgs}
