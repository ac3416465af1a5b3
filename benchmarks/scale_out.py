"""A Dask fit of a dataset larger than the workers' memory, against an in-memory fit of a 10% sample.

    python benchmarks/scale_out.py                 # 4,200,000 x 64 float64 (2.15 GB on disk), 5 classes
    python benchmarks/scale_out.py --rows 420000   # a quick look (215 MB)

1. Generates the dataset chunk by chunk on a 2-worker ``distributed.LocalCluster``
   and writes it to ``--data-dir`` as a NumPy stack (``dask.array.to_npy_stack``);
   rows are i.i.d.: Gaussian features, labels from a fixed linear model plus
   Gumbel noise (so the Bayes-optimal model is linear).
2. Fits ``LinearClassifier`` on the whole stack, read from disk on every pass
   (nothing persisted), on 2 workers of ``--memory-limit`` each (default 1 GiB,
   so the workers together hold less than the data).  A thread on the client
   samples each worker's resident memory (RSS) every 0.2 s.
3. In a fresh subprocess: loads the first 10% of the rows into memory and fits
   them, reporting time and the process's peak RSS; with ``--full-in-memory`` also
   the whole dataset in one process (no memory bound), to show Dask's overhead.
4. Scores every model on 200,000 fresh rows of the same distribution (log-loss and accuracy).

Writes a table, JSON (``--json``) and a plot (``--plot``): fit time, peak memory, and the
workers' memory over the Dask fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _report import add_output_arguments, pyplot, save

CHUNK_ROWS = 125_000  # 64 MB blocks of 64 float64 features
SEED = 20261122


def _true_model(d: int, k: int) -> np.ndarray:
    return np.random.default_rng(SEED).normal(scale=0.4, size=(d, k))


def _block(block_id: int, rows: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of block ``block_id`` (reproducible wherever it runs)."""
    rng = np.random.default_rng([SEED, block_id])
    X = rng.normal(size=(rows, d))
    y = (X @ _true_model(d, k) + rng.gumbel(size=(rows, k))).argmax(axis=1)
    return X, y


def _X_block(rows: int, d: int, k: int, block_info=None) -> np.ndarray:
    return _block(block_info[None]["chunk-location"][0], rows, d, k)[0]


def _y_block(rows: int, d: int, k: int, block_info=None) -> np.ndarray:
    return _block(block_info[None]["chunk-location"][0], rows, d, k)[1]


def generate(client, data_dir: Path, n: int, d: int, k: int) -> None:
    import dask.array as da

    chunks = [CHUNK_ROWS] * (n // CHUNK_ROWS) + ([n % CHUNK_ROWS] if n % CHUNK_ROWS else [])
    stamp = data_dir / "shape.json"
    if stamp.exists() and json.loads(stamp.read_text()) == [n, d, k, CHUNK_ROWS]:
        print(f"reusing the dataset in {data_dir}", file=sys.stderr)
        return
    X = da.map_blocks(lambda rows, block_info=None: _X_block(rows[0], d, k, block_info),
                      da.from_array(np.array(chunks), chunks=1), dtype=np.float64, chunks=(tuple(chunks), (d,)),
                      new_axis=1)
    y = da.map_blocks(lambda rows, block_info=None: _y_block(rows[0], d, k, block_info),
                      da.from_array(np.array(chunks), chunks=1), dtype=np.int64, chunks=(tuple(chunks),))
    t = time.perf_counter()
    da.to_npy_stack(str(data_dir / "X"), X)
    da.to_npy_stack(str(data_dir / "y"), y)  # regenerates each block's rows to draw its labels
    stamp.write_text(json.dumps([n, d, k, CHUNK_ROWS]))
    print(f"wrote {X.nbytes / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s", file=sys.stderr)


class MemorySampler(threading.Thread):
    """Each worker's RSS every ``interval`` seconds, from the client (``client.run``)."""

    def __init__(self, client, interval: float = 0.2):
        super().__init__(daemon=True)
        self.client, self.interval = client, interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._done = threading.Event()
        self.start_time = time.perf_counter()

    def run(self):
        import psutil

        while not self._done.is_set():
            try:
                rss = self.client.run(lambda: psutil.Process().memory_info().rss)
            except Exception:  # a worker restarting: skip the sample
                rss = {}
            self.samples.append((time.perf_counter() - self.start_time, rss))
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()

    def peak(self) -> int:
        return max(max(s.values()) for _, s in self.samples if s)


def _scores(coef, intercept, test) -> dict:
    X, y = test
    z = X @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"test_log_loss": float(-log_p[np.arange(y.shape[0]), y].mean()),
            "test_accuracy": float((z.argmax(axis=1) == y).mean())}


def in_memory_fit(data_dir: str, fraction: float, alpha: float, tol: float) -> dict:
    """Run in a fresh process: load the first ``fraction`` of the rows, fit, report time and peak RSS."""
    import resource

    import nbloss

    X_parts, y_parts = [], []
    meta = json.loads((Path(data_dir) / "shape.json").read_text())
    want = int(meta[0] * fraction)
    t = time.perf_counter()
    for i in range(len(list((Path(data_dir) / "X").glob("*.npy")))):
        X_parts.append(np.load(Path(data_dir) / "X" / f"{i}.npy"))
        y_parts.append(np.load(Path(data_dir) / "y" / f"{i}.npy"))
        if sum(p.shape[0] for p in X_parts) >= want:
            break
    X, y = np.concatenate(X_parts)[:want], np.concatenate(y_parts)[:want]
    del X_parts, y_parts
    load = time.perf_counter() - t
    model = nbloss.LinearClassifier(alpha=alpha, tol=tol, n_threads=2)
    t = time.perf_counter()
    model.fit(X, y)
    return {"rows": want, "load_s": load, "fit_s": time.perf_counter() - t, "n_iter": model.n_iter_,
            "passes": model.n_passes_, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}


def plot(report: dict, path: str) -> None:
    plt = pyplot()
    fig, (ax_time, ax_memory, ax_trace) = plt.subplots(1, 3, figsize=(15, 4.2))
    names = [r["name"] for r in report["rows"]]
    ax_time.barh(names, [r["fit_s"] for r in report["rows"]], color="tab:blue")
    ax_time.set_xlabel("fit time (s)")
    ax_memory.barh(names, [r["peak_memory_gb"] for r in report["rows"]], color="tab:orange")
    ax_memory.axvline(report["data_gb"], color="k", ls="--", label=f"data {report['data_gb']:.2f} GB")
    ax_memory.set_xlabel("peak memory (GB): per worker for Dask, per process in memory")
    ax_memory.legend(loc="lower right")
    trace = report["worker_memory_trace"]
    for worker in sorted({w for _, sample in trace for w in sample}):
        points = [(t, sample[worker] / 1e9) for t, sample in trace if worker in sample]
        ax_trace.plot(*zip(*points), label=worker.split("//")[-1])
    ax_trace.axhline(report["memory_limit_gb"], color="r", ls=":", label="memory limit")
    ax_trace.set_xlabel("seconds into the Dask fit")
    ax_trace.set_ylabel("worker RSS (GB)")
    ax_trace.legend(fontsize=7)
    fig.suptitle(f"LinearClassifier on {report['n_rows']:,} x {report['features']} ({report['data_gb']:.2f} GB), "
                 f"{report['classes']} classes, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4_200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1e-5)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--memory-limit", default="1GiB", help="per worker")
    parser.add_argument("--data-dir", default="benchmarks/data/scale_out")
    parser.add_argument("--full-in-memory", action="store_true", help="also fit all rows in one process")
    parser.add_argument("--in-memory-child", help=argparse.SUPPRESS)
    add_output_arguments(parser, "scale_out")
    args = parser.parse_args()
    if args.in_memory_child:
        print(json.dumps(in_memory_fit(args.data_dir, float(args.in_memory_child), args.alpha, args.tol)))
        return

    import dask.array as da
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    import nbloss

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    n, d, k = args.rows, args.features, args.classes
    test = _block(10**6, 200_000, d, k)  # a block id no training block has
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        generate(client, data_dir, n, d, k)
        X = da.from_npy_stack(str(data_dir / "X"), mmap_mode=None)
        y = da.from_npy_stack(str(data_dir / "y"), mmap_mode=None)
        print(f"Dask fit: {X.shape[0]:,} x {X.shape[1]} in {X.numblocks[0]} blocks, 2 workers of "
              f"{args.memory_limit}", file=sys.stderr)
        sampler = MemorySampler(client)
        sampler.start()
        t = time.perf_counter()
        model = nbloss.LinearClassifier(alpha=args.alpha, tol=args.tol, n_threads=1, verbose=1).fit(X, y)
        fit_s = time.perf_counter() - t
        sampler.stop()
        rows.append({"name": "Dask, all rows (from disk)", "rows": n, "fit_s": fit_s,
                     "peak_memory_gb": sampler.peak() / 1e9, "n_iter": model.n_iter_, "passes": model.n_passes_,
                     **_scores(model.coef_, model.intercept_, test)})
        trace = [(t, {w: int(v) for w, v in s.items()}) for t, s in sampler.samples]
    for fraction, name in [(0.1, "in memory, 10% sample"), (1.0, "in memory, all rows")]:
        if fraction == 1.0 and not args.full_in_memory:
            continue
        print(f"{name}: fresh process", file=sys.stderr)
        out = subprocess.run([sys.executable, __file__, "--in-memory-child", str(fraction), "--data-dir",
                              str(data_dir), "--alpha", str(args.alpha), "--tol", str(args.tol)],
                             check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"name": name, "rows": child["rows"], "fit_s": child["fit_s"],
                     "peak_memory_gb": child["peak_rss"] / 1e9, "n_iter": child["n_iter"], "passes": child["passes"],
                     **_scores(np.array(child["coef"]), np.array(child["intercept"]), test)})

    data_gb = n * d * 8 / 1e9
    print(f"\n{n:,} x {d} float64 = {data_gb:.2f} GB on disk, {k} classes, alpha={args.alpha}, tol={args.tol}")
    print(f"{'contender':30s} {'rows':>10s} {'fit s':>8s} {'peak GB':>8s} {'iter':>5s} {'passes':>6s} "
          f"{'test log-loss':>13s} {'test acc':>8s}")
    for r in rows:
        print(f"{r['name']:30s} {r['rows']:>10,d} {r['fit_s']:8.1f} {r['peak_memory_gb']:8.2f} {r['n_iter']:5d} "
              f"{r['passes']:6d} {r['test_log_loss']:13.5f} {r['test_accuracy']:8.4f}")
    report = {"n_rows": n, "features": d, "classes": k, "data_gb": data_gb, "alpha": args.alpha, "tol": args.tol,
              "memory_limit_gb": parse_bytes(args.memory_limit) / 1e9, "rows": rows, "worker_memory_trace": trace}
    save(report, args, plot)


if __name__ == "__main__":
    main()
