import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

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


def pytest_terminal_summary(terminalreporter):
    if not WORST_ERRORS:
        return
    terminalreporter.section("worst relative errors against mpmath (50 digits)")
    for key in sorted(WORST_ERRORS):
        terminalreporter.write_line(f"{key:<48s} {WORST_ERRORS[key]:.3e}")
    path = os.environ.get("NBLOSS_ERROR_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(WORST_ERRORS, fh, indent=1, sort_keys=True)
