"""Start-up: from ``pytest experiments`` to the first training step, with the cache and store there.

Prepares the decode cache and an empty MLflow store (untimed), then starts the suite with
``-n 0`` and ``-n auto``, alternating, and stops each at its first training step: the moment
any of its processes creates an MLflow run, which it does right before training it. Prints the
medians, and the import time of the plugin in a fresh interpreter.

    python benchmarks/startup.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normcheck.data import load_splits
from normcheck.options import add_options, data_dir
from normcheck.records import DataSpec
from normcheck.tracking import Tracker


def to_first_step(cmd: list[str], db: Path) -> float:
    """Seconds until the session (any of its processes) creates its first MLflow run, which it
    does right before that run's first training step."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own group: xdist workers included
    try:
        while process.poll() is None:
            if _runs(db):
                return time.perf_counter() - start
            time.sleep(0.05)
        sys.exit(f"{' '.join(cmd)} ended before training")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _runs(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        except sqlite3.OperationalError:  # locked by a writer: ask again
            return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", nargs="+", default=["0", "auto"], help="-n values [0 auto]")
    args = parser.parse_args()
    args.data_dir = data_dir(args.data_dir)
    load_splits(args.data_dir, DataSpec())  # the decode cache exists from here on
    times: dict[str, list[float]] = {n: [] for n in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for n in args.workers:  # alternating, so a slow spell of the machine hits both
                db = Path(tmp) / f"mlflow-{i}-{n}.db"
                Tracker.open(f"sqlite:///{db}", "normcheck")  # the store exists, no runs yet
                cmd = [sys.executable, "-m", "pytest", "experiments", "--grid", "quick",
                       "-n", n, "-p", "no:cacheprovider", "--mlflow-uri", f"sqlite:///{db}",
                       "--report-dir", str(Path(tmp) / "reports")]
                cmd += ["--data-dir", args.data_dir] if args.data_dir else []
                times[n].append(to_first_step(cmd, db))
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import normcheck.plugin"],
                             capture_output=True, text=True).stderr.splitlines()
    plugin_us = int(imports[-1].split("|")[1])
    for n, seconds in times.items():
        print(f"-n {n}: to the first training step: median {statistics.median(seconds):.2f} s "
              f"({', '.join(f'{t:.2f}' for t in seconds)})")
    print(f"importing normcheck.plugin: {plugin_us / 1e6:.2f} s")


if __name__ == "__main__":
    main()
