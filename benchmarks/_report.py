"""What every benchmark script shares: its output options, and writing its JSON and its plot.

The scripts run as ``python benchmarks/<name>.py`` from the repository root, so
this module is imported by name from the scripts' own directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--json`` and ``--plot``, defaulting to ``benchmarks/results/<name>.{json,png}``."""
    parser.add_argument("--json", default=f"benchmarks/results/{name}.json")
    parser.add_argument("--plot", default=f"benchmarks/results/{name}.png")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(report: dict, args: argparse.Namespace, plot) -> None:
    """Write ``report`` as JSON to ``args.json`` and ``plot(report, args.plot)``."""
    for path in (args.json, args.plot):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    plot(report, args.plot)
    print(f"\nwrote {args.json} and {args.plot}")
