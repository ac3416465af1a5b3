"""The penalised linear-model objective over a Dask array, evaluated on the workers.

Each row block is a :class:`._objective.LinearObjective` built on the worker
with the whole dataset's total weight and no penalty, so its value and
gradient are the block's share of the mean (the same code as an in-memory
fit).  The client sums the shares in a tree reduction and adds the penalty: per
evaluation only ``w`` goes out and one ``w``-sized vector (plus a float) comes
back.  Hessian-vector products use the curvature at the current point, which
each block computes with its share of the gradient, from the same margins, and
keeps on the worker (``dask.persist``) until the solver moves on.

Every block task is a pure function of its inputs, so Dask may rerun any of
them on another worker when one dies; a failure it cannot recover from
reaches the solver as a ``RuntimeError`` and the fit stores nothing.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import _dask, _threading
from ._objective import LinearObjective, PenalisedLinear, classification_target


class _BlockProblem:
    """What every block task needs besides its rows: sent once per evaluation."""

    def __init__(self, loss, n_outputs: int, fit_intercept: bool, total_weight: float, n_threads: int | None):
        self.loss = loss
        self.n_outputs = n_outputs
        self.fit_intercept = fit_intercept
        self.total_weight = total_weight
        self.n_threads = n_threads

    def objective(self, X_b, target_b, weight_b) -> LinearObjective:
        return LinearObjective(X_b, target_b, weight_b, self.loss, self.n_outputs, 0.0, self.fit_intercept,
                               total_weight=self.total_weight)

    def threads(self):
        # a worker may have fewer cores than the client asked for
        n = None if self.n_threads is None else min(self.n_threads, numba.config.NUMBA_NUM_THREADS)
        return _threading.num_threads(n)


def _value_and_gradient(problem: _BlockProblem, X_b, target_b, weight_b, w):
    with problem.threads():
        return problem.objective(X_b, target_b, weight_b).value_and_gradient(w)


def _value_gradient_and_curvature(problem: _BlockProblem, X_b, target_b, weight_b, w):
    """The block's share and its curvature at ``w``, from the margins the share was computed on."""
    with problem.threads():
        objective = problem.objective(X_b, target_b, weight_b)
        return (*objective.value_and_gradient(w), objective.curvature(w))


def _curvature(problem: _BlockProblem, X_b, target_b, weight_b, w):
    with problem.threads():
        return problem.objective(X_b, target_b, weight_b).curvature(w)


def _hessp(problem: _BlockProblem, X_b, weight_b, curvature, v):
    with problem.threads():
        return problem.objective(X_b, None, weight_b).hessp_at(curvature, v)


def _share(part: tuple) -> tuple:
    return part[:2]


def _block_curvature(part: tuple):
    return part[2]


class DaskLinearObjective(PenalisedLinear):
    """:class:`._objective.LinearObjective`'s interface over Dask arrays.

    Parameters
    ----------
    X : dask.array.Array of shape (n, d), one chunk across columns
    target : dask.array.Array, ``X``'s row chunks
        (n,) int64 class indices for softmax losses, else (n, L).
    sample_weight : dask.array.Array of shape (n,), ``X``'s row chunks, class weights folded in
    loss, n_outputs, alpha, fit_intercept
        As for :class:`._objective.LinearObjective`.
    total_weight : float
        ``sample_weight.sum()``, already computed.
    n_threads : int or None
        nbloss kernel threads inside each block task.
    """

    def __init__(self, X, target, sample_weight, loss, n_outputs: int, alpha: float, fit_intercept: bool,
                 total_weight: float, n_threads: int | None = None):
        import dask

        super().__init__(loss, n_outputs, X.shape[1], alpha, fit_intercept, X.dtype)
        self.total_weight = float(total_weight)
        self._problem = dask.delayed(_BlockProblem(loss, n_outputs, fit_intercept, self.total_weight, n_threads))
        self._blocks = _dask.blocks(X, target, sample_weight)
        self._curvature_at = None
        self._curvature = None

    def _sum(self, parts: list, what: str):
        (total,) = _dask.compute(_dask.tree_reduce(parts, _dask.add), what=what)
        return total

    def value_and_gradient(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value and its gradient (float64, shape of ``w``).

        With a Hessian-vector product, each block also computes its curvature at ``w`` from the
        margins it already has, kept on the workers for :meth:`hessp` (Newton asks at the point it
        just accepted): no second read of ``X`` for it.
        """
        import dask

        point = dask.delayed(w)
        if self.has_hessp:
            task = dask.delayed(_value_gradient_and_curvature, pure=True)
            parts = _dask.persist(*[task(self._problem, x, t, s, point) for x, t, s in self._blocks],
                                  what="a loss and gradient pass")
            self._curvature = [dask.delayed(_block_curvature, pure=True)(part) for part in parts]
            self._curvature_at = w.copy()
            shares = [dask.delayed(_share, pure=True)(part) for part in parts]
        else:
            task = dask.delayed(_value_and_gradient, pure=True)
            shares = [task(self._problem, x, t, s, point) for x, t, s in self._blocks]
        value, gradient = self._sum(shares, "a loss and gradient pass")
        self.n_passes += 2
        penalty, penalty_gradient = self.penalty(w)
        return float(value) + penalty, gradient + penalty_gradient

    def hessp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian of the objective at ``w`` times ``v`` (float64, shape of ``w``)."""
        import dask

        if self._curvature_at is None or not np.array_equal(self._curvature_at, w):
            task, point = dask.delayed(_curvature, pure=True), dask.delayed(w)
            self._curvature = _dask.persist(*[task(self._problem, x, t, s, point) for x, t, s in self._blocks],
                                            what="the curvature")
            self._curvature_at = w.copy()
            self.n_passes += 1
        task, direction = dask.delayed(_hessp, pure=True), dask.delayed(v)
        parts = [task(self._problem, x, s, c, direction) for (x, _, s), c in zip(self._blocks, self._curvature)]
        self.n_passes += 2
        return self._sum(parts, "a Hessian-vector product") + self.penalty(v)[1]


def _encode(y_b: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.searchsorted(classes, y_b).astype(np.int64)


def _class_weighted(weight_b: np.ndarray, labels_b: np.ndarray, class_weight: np.ndarray) -> np.ndarray:
    return weight_b * class_weight[labels_b].astype(weight_b.dtype)


class DaskFitData:
    """A fit's Dask inputs lined up in row blocks and checked in one pass (see :func:`nbloss._dask.summarise`).

    Attributes
    ----------
    X : dask.array.Array (n, d), float32 or float64
    y : dask.array.Array (n,): labels as given (``labelled``), else floats in ``X``'s dtype
    sample_weight : dask.array.Array (n,) in ``X``'s dtype
    summary : nbloss._dask.Summary
    """

    def __init__(self, X, y, sample_weight, labelled: bool):
        import dask.array as da

        self.X = _dask.feature_matrix(X)
        self.dtype = self.X.dtype
        self.y = _dask.row_aligned(y, self.X, "y", dtype=None if labelled else self.dtype)
        if sample_weight is None:
            self.sample_weight = da.ones(self.X.shape[0], chunks=(self.X.chunks[0],), dtype=self.dtype)
        else:
            self.sample_weight = _dask.row_aligned(sample_weight, self.X, "sample_weight", dtype=self.dtype)
        self.summary = _dask.summarise(self.X, self.y, self.sample_weight, labelled)

    def class_problem(self, classes: np.ndarray, class_weight: np.ndarray, label_smoothing: float):
        """``(target, sample_weight)`` for the classifier's objective, built lazily per block."""
        labels = self.y.map_blocks(_encode, classes, dtype=np.int64)
        if classes.shape[0] > 2:
            target = labels
        else:
            target = labels.map_blocks(classification_target, 2, label_smoothing, self.dtype, dtype=self.dtype,
                                       new_axis=1, chunks=(self.X.chunks[0], (1,)))
        weight = self.sample_weight.map_blocks(_class_weighted, labels, class_weight, dtype=self.dtype)
        return target, weight

    def objective(self, target, sample_weight, loss, n_outputs: int, alpha: float, fit_intercept: bool,
                  total_weight: float, n_threads: int | None) -> DaskLinearObjective:
        return DaskLinearObjective(self.X, target, sample_weight, loss, n_outputs, alpha, fit_intercept,
                                   total_weight, n_threads)
