"""Functions the Dask tests send to worker processes.

Workers are spawned processes that get the test process's ``sys.path``, so
they import this module by name, as the tests do.
"""

from __future__ import annotations

import os

import numpy as np


def die_on_call(block: np.ndarray, counter: str, die_from: int, die_until: int) -> np.ndarray:
    """Return ``block``; calls number ``die_from`` to ``die_until`` (counted across the cluster in the
    file ``counter``) first kill the worker process running them, as a crash or an OOM kill would.
    Empty blocks (Dask's dtype inference on the client) are not counted."""
    if block.size == 0:
        return block
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
    if die_from <= os.path.getsize(counter) <= die_until:
        os._exit(1)
    return block


class PidRecording:
    """An XGBoost scikit-learn-API objective that appends the id of the process running it to
    ``path``, then defers to ``objective`` (XGBoost reads the ``sample_weight`` parameter's name)."""

    def __init__(self, objective, path: str):
        self.objective, self.path = objective, path

    def __call__(self, y_true, y_pred, sample_weight=None):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")
        return self.objective(y_true, y_pred, sample_weight)

    def pids(self) -> set[int]:
        with open(self.path) as f:
            return {int(line) for line in f}
