"""Dask input: the one place that recognises Dask collections, lines them up in
row blocks, checks them on the workers and maps per-block functions over them.

Conventions: a fit's ``X`` becomes a Dask array of known row chunks and a single
chunk across columns; ``y`` and ``sample_weight`` are rechunked to the same
rows.  Nothing here gathers rows to the client.  The checks and the statistics
a fit needs (row count, first bad row of each input, the distinct labels with
their weights, weighted sums of ``y``) come back from one tree reduction of
per-block summaries; everything else stays on the workers.

Dask is imported only when a Dask collection is handed in.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from functools import reduce

import numpy as np

SPLIT_EVERY = 8  # blocks combined per task in tree reductions


def is_dask(x) -> bool:
    """Whether ``x`` is a Dask array, DataFrame or Series (without importing Dask)."""
    dask = sys.modules.get("dask")
    return (dask is not None and type(x).__module__.startswith(("dask.", "dask_expr"))
            and dask.is_dask_collection(x))


def any_dask(*items) -> bool:
    return any(is_dask(item) for item in items)


def as_dask_array(x, name: str):
    """``x`` as a Dask array with known chunk sizes (a DataFrame or Series: its values)."""
    import dask.array as da

    if not is_dask(x):
        raise TypeError(f"{name} must be a Dask collection like the other inputs, got {type(x).__name__}")
    if hasattr(x, "to_dask_array"):  # DataFrame or Series; lengths=True counts the rows of each partition
        return x.to_dask_array(lengths=True)
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a Dask array, DataFrame or Series, got {type(x).__name__}")
    if any(np.isnan(c) for c in x.chunks[0]):
        x = x.compute_chunk_sizes()
    return x


def column_names_of(X):
    """For scikit-learn's feature-name checks: a zero-row pandas DataFrame with a Dask DataFrame's
    columns (scikit-learn reads names from pandas, not from Dask), else ``X`` itself."""
    if hasattr(X, "columns"):
        import pandas as pd

        return pd.DataFrame(columns=X.columns)
    return X


def feature_matrix(X, name: str = "X"):
    """A 2-D float32/float64 Dask array with one chunk across columns (integers become float64)."""
    X = as_dask_array(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {X.ndim} dimensions")
    kind = X.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if not (kind == "f" and X.dtype.itemsize in (4, 8)):
        X = X.astype(np.float64)
    return X.rechunk({1: -1}) if X.numblocks[1] > 1 else X


def row_aligned(v, X, name: str, dtype=None):
    """``v`` ((n,) array-like or Dask collection) as a Dask array with ``X``'s row chunks."""
    import dask.array as da

    if is_dask(v):
        v = as_dask_array(v, name)
    else:
        v = da.from_array(np.asarray(v), chunks=(X.chunks[0],) + tuple((s,) for s in np.shape(v)[1:]))
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {v.shape[0]} rows, X has {X.shape[0]}")
    if dtype is not None:
        v = v.astype(dtype)
    return v.rechunk((X.chunks[0],)) if v.chunks[0] != X.chunks[0] else v


@dataclass
class Summary:
    """What one pass over the rows learns: counts, first bad rows (-1: none) and statistics of ``y``.

    ``values``/``weights``: distinct labels with their total sample weight (classifiers);
    ``weight_sum``/``weighted_y_sum``: for the mean of ``y`` (regressors).
    """

    rows: int
    bad_X: int
    bad_y: int
    bad_weight: int
    weight_sum: float
    weighted_y_sum: float
    values: np.ndarray | None
    weights: np.ndarray | None


def _first(mask: np.ndarray, offset: int) -> int:
    hits = np.flatnonzero(mask)
    return int(offset + hits[0]) if hits.size else -1


def _block_summary(X_b, y_b, s_b, offset: int, labelled: bool) -> Summary:
    bad_y = _first(~np.isfinite(y_b), offset) if y_b.dtype.kind == "f" else -1
    s64 = s_b.astype(np.float64)
    values = weights = None
    wy = 0.0
    if labelled:
        values, weights = _distinct(y_b, s64)
    elif bad_y < 0:
        wy = float(s64 @ y_b.astype(np.float64))
    return Summary(rows=X_b.shape[0], bad_X=_first(~np.isfinite(X_b).all(axis=1), offset), bad_y=bad_y,
                   bad_weight=_first(~(np.isfinite(s_b) & (s_b >= 0)), offset), weight_sum=float(s64.sum()),
                   weighted_y_sum=wy, values=values, weights=weights)


def _first_bad(rows) -> int:
    bad = [r for r in rows if r >= 0]
    return min(bad) if bad else -1


def _distinct(y_b: np.ndarray, weight_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (rows, for 2-D ``y_b``) and the total weight of each, in float64."""
    values, inverse = np.unique(y_b, return_inverse=True, axis=0 if y_b.ndim == 2 else None)
    return values, np.bincount(inverse.ravel(), weights=weight_b.astype(np.float64), minlength=values.shape[0])


def _merge_distinct(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return _distinct(np.concatenate([values for values, _ in parts]), np.concatenate([w for _, w in parts]))


def _merge(*parts: Summary) -> Summary:
    values = weights = None
    if parts[0].values is not None:
        values, weights = _merge_distinct(*((p.values, p.weights) for p in parts))
    return Summary(rows=sum(p.rows for p in parts), bad_X=_first_bad(p.bad_X for p in parts),
                   bad_y=_first_bad(p.bad_y for p in parts), bad_weight=_first_bad(p.bad_weight for p in parts),
                   weight_sum=sum(p.weight_sum for p in parts), weighted_y_sum=sum(p.weighted_y_sum for p in parts),
                   values=values, weights=weights)


def blocks(*arrays) -> list[tuple]:
    """Per row block, the tuple of each array's Delayed block."""
    return list(zip(*(a.to_delayed().ravel() for a in arrays)))


def tree_reduce(parts: list, combine):
    """Combine Delayed ``parts`` with ``combine(*parts)`` in a tree, ``SPLIT_EVERY`` at a time."""
    import dask

    combine = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [combine(*parts[i:i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def add(*parts):
    """Sum of block results: arrays, floats, or tuples of them element by element."""
    if isinstance(parts[0], tuple):
        return tuple(reduce(operator.add, column) for column in zip(*parts))
    return reduce(operator.add, parts)


def summarise(X, y, sample_weight, labelled: bool) -> Summary:
    """One pass over the aligned blocks: raises ``ValueError`` naming the first bad row of each input."""
    import dask

    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)
    summary_of = dask.delayed(_block_summary, pure=True)
    parts = [summary_of(x, yb, s, int(offset), labelled)
             for (x, yb, s), offset in zip(blocks(X, y, sample_weight), offsets)]
    (summary,) = compute(tree_reduce(parts, _merge), what="checking the data")
    if summary.bad_X >= 0:
        raise ValueError(f"X contains NaN or infinity (first at row {summary.bad_X})")
    if summary.bad_y >= 0:
        raise ValueError(f"y contains NaN or infinity (first at row {summary.bad_y})")
    if summary.bad_weight >= 0:
        raise ValueError(f"sample_weight must be finite and >= 0 (first bad row {summary.bad_weight})")
    return summary


def weighted_distinct(y, sample_weight=None, limit: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (rows) of a Dask ``y`` with their total ``sample_weight``, by a tree reduction.

    A constant starting margin depends on ``y`` only through this weighted distribution, so it can be
    computed from it exactly.  More than ``limit`` distinct values (continuous targets) raise
    ``ValueError``, instead of gathering ``y`` to the client.
    """
    import dask

    y = as_dask_array(y, "y")
    if y.ndim == 2 and y.numblocks[1] > 1:
        y = y.rechunk({1: -1})
    if sample_weight is None:
        import dask.array as da

        sample_weight = da.ones(y.shape[0], chunks=(y.chunks[0],))
    else:
        sample_weight = row_aligned(sample_weight, y, "sample_weight", dtype=np.float64)
    block = dask.delayed(_capped(_distinct, limit), pure=True)
    parts = [block(yb, s) for yb, s in blocks(y, sample_weight)]
    (result,) = compute(tree_reduce(parts, _capped(_merge_distinct, limit)), what="the distinct targets")
    if result is None:
        raise ValueError(f"y has more than {limit} distinct values: compute the starting margin on a sample "
                         "(or leave it to the library)")
    return result


class _capped:
    """``function``'s distinct values, or None once there are more than ``limit`` (or a part was None)."""

    def __init__(self, function, limit: int):
        self.function, self.limit = function, limit

    def __call__(self, *parts):
        if any(p is None for p in parts):
            return None
        values, weights = self.function(*parts)
        return (values, weights) if values.shape[0] <= self.limit else None


def compute(*items, what: str):
    """``dask.compute`` on the current scheduler; a failure on the workers becomes a ``RuntimeError``
    saying what was being computed."""
    return _on_dask("compute", items, what)


def persist(*items, what: str):
    """``dask.persist``, failing like :func:`compute` (a distributed scheduler fails later, in a compute)."""
    return _on_dask("persist", items, what)


def _on_dask(name: str, items, what: str):
    import dask

    try:
        return getattr(dask, name)(*items)
    except Exception as exc:
        raise RuntimeError(f"nbloss: {what} failed on Dask ({type(exc).__name__}: {exc})") from exc


def map_rows(X, function, n_columns: int | None, dtype):
    """``function`` applied to each row block of ``X``: a Dask array of (n,) or (n, n_columns)."""
    if n_columns is None:
        return X.map_blocks(function, dtype=dtype, drop_axis=1, chunks=(X.chunks[0],))
    return X.map_blocks(function, dtype=dtype, chunks=(X.chunks[0], (n_columns,)))
