"""Python-side validation: the one place where inputs become kernel arrays.

Everything a kernel receives went through here: float32/float64 C-contiguous
``raw_prediction`` (no copy when it already is), int64 labels, targets and
weights in the dtype of ``raw_prediction``, all as read-only views (see
:func:`read_only`).  Checks that need a pass of their own are done here (the
sample weights' by a compiled pass from :mod:`nbloss.kernels.checks`, which
reads once and allocates nothing); checks the kernels can fold into their pass
(NaN logits, label range, target range) are reported by the kernels as a first
bad row and turned into messages by :func:`raise_for_bad_rows`.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import kernels
from ._threading import launch

REDUCTIONS = ("mean", "sum", "none")
_FLOAT64, _FLOAT32 = np.dtype(np.float64), np.dtype(np.float32)
# NumPy's C function without its ``__array_function__`` dispatch (NEP 18's ``_implementation``), which took
# half of its 0.3 us; only ndarrays reach it, and they have no override to dispatch to
_may_share_memory = getattr(np.may_share_memory, "_implementation", np.may_share_memory)


def as_float_array(x, name: str, dtype=None) -> np.ndarray:
    """``x`` as a C-contiguous float32/float64 array, copying only when needed.

    float32 and float64 are kept (or cast to ``dtype`` when given); integer and
    bool become float64; float16 becomes float32; anything else (complex,
    object, strings) raises ``TypeError`` naming the argument.  The result is
    in the machine's byte order, the only one the kernels are compiled for.
    """
    arr = np.asarray(x)
    found = arr.dtype
    # NumPy's native float dtypes are singletons, so the common case costs two identity tests
    # (the kind and size tests below took 0.15 us); any other dtype object, equal or not, is checked
    if not (found is _FLOAT64 or found is _FLOAT32):
        if found.kind not in "fiub":
            raise TypeError(f"{name} must be a real numeric array, got dtype {found}")
        if dtype is None:
            dtype = _FLOAT32 if found.kind == "f" and found.itemsize <= 4 else _FLOAT64
    elif dtype is None:
        dtype = found
    if found == dtype and arr.flags.c_contiguous and arr.ndim:
        return arr  # what ascontiguousarray would return, without the cost of errstate (~1.5 us)
    with np.errstate(over="ignore"):  # a value overflowing the cast becomes inf and is rejected by its check
        return np.ascontiguousarray(arr, dtype=dtype)


def read_only(arr: np.ndarray) -> np.ndarray:
    """``arr``, or a read-only view of it.

    Numba types a read-only array apart from a writeable one and compiles a
    kernel again for each mix of read-only and writeable inputs (15 to 30 s
    each on 2 cores: memory maps, pandas' copy-on-write arrays and scikit-learn's
    ``readonly_memmap`` checks all hand over read-only arrays).  Every array a
    kernel only reads goes through here, so each kernel compiles once per dtype.
    """
    if not arr.flags.writeable:
        return arr
    view = arr.view()
    view.setflags(write=False)  # 0.3 us; assigning to ``view.flags.writeable`` took 0.5
    return view


# sample_weight=None, per dtype: shared, since nothing can write to it
_NO_WEIGHTS = {np.dtype(t): read_only(np.empty(0, dtype=t)) for t in (np.float32, np.float64)}


def as_raw(raw_prediction, *, two_d_only: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(raw2d, shape)``: a read-only (n, L) view of ``raw_prediction`` and its own shape."""
    raw = read_only(as_float_array(raw_prediction, "raw_prediction"))
    if two_d_only:
        if raw.ndim != 2:
            raise ValueError(f"raw_prediction must be 2-D (n_samples, n_classes), got shape {raw.shape}")
        if raw.shape[1] < 2:
            raise ValueError(f"raw_prediction must have at least 2 columns (classes), got {raw.shape[1]}")
        return raw, raw.shape
    if raw.ndim == 1:
        return raw.reshape(-1, 1), raw.shape
    if raw.ndim == 2:
        return raw, raw.shape
    raise ValueError(f"raw_prediction must be 1-D or 2-D, got shape {raw.shape}")


def as_labels(y_true, n_samples: int) -> np.ndarray:
    """Class indices as read-only int64 (range is checked by the kernels, before indexing)."""
    y = np.asarray(y_true)
    kind = y.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"y_true must hold class indices (integers), got dtype {y.dtype}")
    if y.shape != (n_samples,):
        raise ValueError(f"y_true must have shape ({n_samples},) to match raw_prediction, got {y.shape}")
    if kind == "f":
        bad = ~np.isfinite(y) | (y != np.floor(y)) | (np.abs(y) > 2.0**62)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"y_true must hold integral class indices; row {row} has {y[row].item()!r}")
    return read_only(np.ascontiguousarray(y, dtype=np.int64))


def as_targets(y_true, raw2d: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Targets with the shape of ``raw_prediction``, as a read-only (n, L) array of its dtype."""
    y = read_only(as_float_array(y_true, "y_true", dtype=raw2d.dtype))
    if y.shape != shape:
        raise ValueError(f"y_true must have the shape of raw_prediction {shape}, got {y.shape}")
    return y.reshape(raw2d.shape)


def as_sample_weight(sample_weight, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Finite, non-negative, read-only (n,) weights in ``dtype``; a (0,) array stands for None."""
    if sample_weight is None:
        return _NO_WEIGHTS[dtype]
    sw = as_float_array(sample_weight, "sample_weight", dtype=dtype)
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {sw.shape}")
    # under this many weights, waking the thread pool costs more than the pass (n = 1e3: 6.6 us, 1.1 serial)
    first_bad_weight = kernels.checks.first_bad_weight
    row = int(kernels.serial(first_bad_weight)(sw) if n_samples < 16_384 else launch(first_bad_weight, sw))
    if row < n_samples:
        raise ValueError(
            f"sample_weight must be finite and non-negative (in {np.dtype(dtype).name}); "
            f"row {row} has {np.asarray(sample_weight)[row].item()!r}"
        )
    return read_only(sw)


def check_reduction(reduction: str) -> None:
    one_of(reduction, "reduction", REDUCTIONS)


def one_of(value, name: str, options: tuple) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def output_array(out, name: str, shape: tuple[int, ...], dtype, raw: np.ndarray) -> np.ndarray:
    """A caller's ``out`` buffer of shape ``shape`` (a tuple) after checks, or a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{name} must have shape {shape} and dtype {np.dtype(dtype).name}, "
            f"got shape {out.shape} and dtype {out.dtype.name}"
        )
    flags = out.flags
    if not flags.c_contiguous or not flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable")
    if _may_share_memory(out, raw):
        raise ValueError(f"{name} must not share memory with raw_prediction")
    return out


def check_distinct(gradient_out: np.ndarray, hessian_out: np.ndarray) -> None:
    if _may_share_memory(gradient_out, hessian_out):
        raise ValueError("gradient_out and hessian_out must not share memory")


def raise_for_bad_rows(n: int, bad_target: int, bad_raw: int, y_true, raw2d: np.ndarray,
                       target_rule: str) -> None:
    """Turn a kernel's first-bad-row report into a ``ValueError`` (no-op if none)."""
    if bad_target < n:
        value = np.asarray(y_true).reshape(n, -1)[bad_target].tolist()
        shown = value[0] if len(value) == 1 else value
        raise ValueError(f"y_true {target_rule}; row {bad_target} has {shown!r}")
    if bad_raw < n:
        raise ValueError(f"raw_prediction must not contain NaN; row {bad_raw} has {raw2d[bad_raw].tolist()!r}")


def positive_scalar(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (np.isfinite(value) and ok):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def per_class_vector(value, name: str, size: int) -> np.ndarray:
    """A finite, non-negative, writeable float64 vector of length ``size`` (a parameter of the
    kernels, which are compiled for writeable ones: see :func:`read_only`)."""
    vec = as_float_array(value, name, dtype=np.float64)
    if not vec.flags.writeable:
        vec = vec.copy()
    if vec.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {vec.shape}")
    bad = ~(np.isfinite(vec) & (vec >= 0))
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite and non-negative; entry {k} is {vec[k].item()!r}")
    return vec
