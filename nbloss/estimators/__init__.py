"""scikit-learn estimators over nbloss losses.

:mod:`._objective` is the penalised linear-model objective (value, gradient and
Hessian-vector products over ``X``), :mod:`._dask_objective` the same summed
over Dask row blocks on the workers, :mod:`._solvers` the truncated-Newton and
L-BFGS solvers, :mod:`._linear` the two estimators.
"""

from ._linear import LinearClassifier, LinearRegressor

__all__ = ["LinearClassifier", "LinearRegressor"]
