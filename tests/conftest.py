import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

# Most of this suite's time is Numba compiling the kernels on an empty cache (on 2 cores, 898 s cold against
# 259 s with every kernel cached), and a kernel that two workers need at once is compiled by both.  So a run of
# the whole suite first compiles each kernel once, into the on-disk cache the workers then load from: one
# process per dtype, the two running side by side.  NBLOSS_NO_PRECOMPILE=1 skips it.
_PRECOMPILE = """
import sys
import numpy as np
import nbloss
from nbloss._validation import as_sample_weight
from nbloss.kernels.sigmoid import sigmoid
from nbloss.kernels.softmax import hessian_product, softmax

dtype = np.dtype(sys.argv[1]).type
rng = np.random.default_rng(0)
labels = rng.integers(0, 4, 40)
z = rng.normal(size=(40, 4)).astype(dtype)
soft = rng.dirichlet(np.ones(4), 40).astype(dtype)
binary = (rng.random((40, 4)) < 0.5).astype(dtype)
per_column = nbloss.BinaryCrossEntropy(pos_weight=[1.0, 2.0, 3.0, 4.0])
# the focal losses at an integer, a half and a general gamma: each kind has kernels of its own
calls = [(nbloss.CrossEntropy(), labels), (nbloss.CrossEntropy(), soft), (nbloss.BinaryCrossEntropy(), binary),
         (per_column, binary),
         *[(nbloss.FocalLoss(gamma=gamma), labels) for gamma in (2.0, 1.5, 1.7)],
         *[(nbloss.BinaryFocalLoss(gamma=gamma), binary) for gamma in (2.0, 1.5, 1.7)],
         (nbloss.HuberLoss(), z), (nbloss.PseudoHuberLoss(), z), (nbloss.SquaredError(), z)]
for loss, y in calls:
    loss.gradient_hessian(y, z)
    loss.loss(y, z)
for n in (40, 20_000):  # the sample weights' check, serial and parallel
    as_sample_weight(np.ones(n), n, dtype)
out = np.empty_like(z)
softmax(z, out)
sigmoid(z, out)
hessian_product(z, np.ones(40, dtype), z, out)
if dtype is np.float32:  # and CatBoost's per-row objectives (float64 rows) in this process, for balance
    from nbloss.boosting._catboost import RowDerivatives
    from nbloss.boosting._common import Derivatives
    for loss, target in [(nbloss.CrossEntropy(), 1), (nbloss.FocalLoss(), 1), (nbloss.HuberLoss(), np.zeros(4)),
                         (nbloss.BinaryCrossEntropy(), np.zeros(4)), (per_column, np.zeros(4))]:
        RowDerivatives(Derivatives(loss))(target, np.zeros(4), None)
"""


_PRECOMPILE_SECONDS = pytest.StashKey[float]()


def _runs_whole_suite(config) -> bool:
    tests = Path(__file__).parent.resolve()
    return all(Path(arg).resolve() in (tests, tests.parent) for arg in config.args)


def pytest_configure(config):
    worker = hasattr(config, "workerinput")
    if worker or os.environ.get("NBLOSS_NO_PRECOMPILE") or not _runs_whole_suite(config):
        return
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _PRECOMPILE, dtype]) for dtype in ("float64", "float32")]
    for proc in procs:
        if proc.wait() != 0:
            raise pytest.UsageError("compiling the kernels before the suite failed (see above)")
    # pytest's own clock starts after this: the summary says what it left out
    config.stash[_PRECOMPILE_SECONDS] = time.perf_counter() - start


# Worst errors measured by the accuracy tests, keyed "loss/quantity/dtype".
WORST_ERRORS: dict[str, float] = {}


def record_error(key: str, value: float) -> None:
    WORST_ERRORS[key] = max(WORST_ERRORS.get(key, 0.0), float(value))


@pytest.fixture
def worst_errors():
    return record_error


def pytest_sessionfinish(session):
    # an xdist worker hands its worst errors to the controller, which prints the merged table
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["nbloss_worst_errors"] = json.dumps(WORST_ERRORS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for key, value in json.loads(getattr(node, "workeroutput", {}).get("nbloss_worst_errors", "{}")).items():
        record_error(key, value)


def pytest_terminal_summary(terminalreporter, config):
    if _PRECOMPILE_SECONDS in config.stash:
        terminalreporter.write_line(f"kernels compiled before the session (not in its time): "
                                    f"{config.stash[_PRECOMPILE_SECONDS]:.1f} s")
    if not WORST_ERRORS:
        return
    terminalreporter.section("worst relative errors against mpmath (50 digits)")
    for key in sorted(WORST_ERRORS):
        terminalreporter.write_line(f"{key:<48s} {WORST_ERRORS[key]:.3e}")
    path = os.environ.get("NBLOSS_ERROR_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(WORST_ERRORS, fh, indent=1, sort_keys=True)
