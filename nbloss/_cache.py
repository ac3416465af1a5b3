"""Keeps Numba's on-disk cache of the kernels in step with every file they are compiled from.

Numba stamps a cached function with the contents of the one file that defines
it, but a kernel also inlines code from other files (:mod:`nbloss._numerics`
and the formulas of its family in :mod:`nbloss.kernels`).  A change to one of
those alone (a ``git pull`` into an editable install, say) would leave the
old machine code in use, silently.  So for functions defined in these files
the stamp also covers the contents of all of them, and a change to any one
recompiles every kernel.  An upgrade is no exception: Numba 0.68 stamps with
content hashes, and its cache files can outlive the package's (pip removes the
files it installed, and ``NUMBA_CACHE_DIR`` or the user-wide cache are not the
package's), so a kernel file that an upgrade left unchanged would have kept
its old entry too.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent
# every file with code that Numba compiles into a kernel
SOURCES = (_PACKAGE / "_numerics.py", *sorted((_PACKAGE / "kernels").glob("*.py")))


@functools.cache
def _contents_digest(stats: tuple) -> bytes:
    """sha256 of the files' contents; ``stats`` (path, mtime, size) only keys the memo, as in Numba."""
    digest = hashlib.sha256()
    for path, _, _ in stats:
        digest.update(Path(path).read_bytes())
    return digest.digest()


def sources_stamp() -> bytes:
    """One stamp of the contents of every file in :data:`SOURCES`."""
    stats = []
    for path in SOURCES:
        st = path.stat()
        stats.append((str(path), st.st_mtime_ns, st.st_size))
    return _contents_digest(tuple(stats))


@functools.cache
def _is_source(py_file: str) -> bool:
    """Whether ``py_file`` is one of :data:`SOURCES`.  Asked by each locator Numba tries for each
    cached function (twice per kernel at import), and resolving a path is a few system calls:
    nbloss's own import took 46 ms with a resolve per call and 40 with this memo."""
    return Path(py_file).resolve() in SOURCES


# cache directories already found writable in this process (see ``ensure_cache_path`` below): when the
# kernels were defined at import, nbloss's own import took 37-40 ms with Numba's check per function and
# 31-34 with this, six fresh processes each
_WRITABLE_DIRS: set = set()


def _covering(base: type) -> type:
    """``base`` (one of Numba's locators backed by a source file) for functions defined in
    :data:`SOURCES` only, stamped with :func:`sources_stamp` (which covers the defining file too)."""

    class Locator(base):
        def get_source_stamp(self):
            return sources_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _is_source(py_file):
                return None
            return super().from_function(py_func, py_file)

        def ensure_cache_path(self):
            # Numba checks that the directory is writable by creating a temporary file in it, for each
            # cached function as it is defined (70 of them, as the kernel modules load); once per
            # directory is enough
            path = self.get_cache_path()
            if path not in _WRITABLE_DIRS:
                super().ensure_cache_path()
                _WRITABLE_DIRS.add(path)

    Locator.__name__ = Locator.__qualname__ = "Nbloss" + base.__name__.lstrip("_")
    return Locator


def _numba_class(name: str) -> type:
    # public names in recent Numba (0.68), with a leading underscore in older ones (0.60)
    return getattr(caching, name, None) or getattr(caching, "_" + name)


def install() -> None:
    """Put the covering locators first in Numba's list (once), in Numba's own order of preference:
    ``NUMBA_CACHE_DIR`` if set, else the package's ``__pycache__``, else the user-wide cache."""
    classes = _numba_class("CacheImpl")._locator_classes
    if any(getattr(c, "__module__", None) == __name__ for c in classes):
        return
    bases = [_numba_class(name) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                "UserWideCacheLocator")]
    classes[:0] = [_covering(base) for base in bases]
