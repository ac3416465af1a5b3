"""nbloss: Numba-compiled, parallel CPU loss kernels with exact gradients and Hessians.

Layout: :mod:`nbloss._numerics` (scalar stable formulas), :mod:`nbloss.kernels`
(one module per loss family), :mod:`nbloss._validation` (input checks),
:mod:`nbloss.losses` (the public loss objects), :mod:`nbloss._threading`
(threading layer and thread count), :mod:`nbloss.estimators` (the
scikit-learn estimators ``LinearClassifier`` and ``LinearRegressor``),
:mod:`nbloss.boosting` (adapters for XGBoost, LightGBM and CatBoost).  The
estimators and adapters are imported on first use, so ``import nbloss`` does
not import scikit-learn or a boosting library; so are the kernel modules, so
it defines no Numba function either (see :mod:`nbloss.kernels`).
"""

from . import _cache

_cache.install()  # before any kernel is defined: its cache entry must cover every file it is compiled from

from ._threading import get_num_threads, set_num_threads, threading_layer  # noqa: E402
from .losses import (  # noqa: E402
    BinaryCrossEntropy,
    BinaryFocalLoss,
    CrossEntropy,
    FocalLoss,
    HuberLoss,
    PseudoHuberLoss,
    SquaredError,
)

__version__ = "0.1.0"

__all__ = [
    "LinearClassifier",
    "LinearRegressor",
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "CrossEntropy",
    "FocalLoss",
    "HuberLoss",
    "PseudoHuberLoss",
    "SquaredError",
    "get_num_threads",
    "set_num_threads",
    "threading_layer",
]


def __getattr__(name: str):
    if name in ("LinearClassifier", "LinearRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'nbloss' has no attribute {name!r}")
