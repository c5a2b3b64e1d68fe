"""Start-up: from ``pytest experiments`` to the first training step, with the cache and store there.

Prepares the decode cache and an MLflow store (untimed), then starts the suite with a live log
several times and stops each at its first training step. Prints the median, and the import time
of the plugin in a fresh interpreter.

    python benchmarks/startup.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normcheck.config import DataSpec
from normcheck.data import load_splits
from normcheck.tracking import Tracker


def to_first_step(cmd: list[str]) -> float:
    """Seconds until the session logs its first training step."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        if "training lr=" in line:
            seconds = time.perf_counter() - start
            process.kill()
            process.wait()
            return seconds
    sys.exit(f"{' '.join(cmd)} ended before training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NORMCHECK_DATA"),
                        help="data source (default: $NORMCHECK_DATA)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_splits(args.data_dir, DataSpec())  # the decode cache exists from here on
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        Tracker.open(uri, "normcheck")
        cmd = [sys.executable, "-m", "pytest", "experiments", "--grid", "quick", "-n", "0",
               "-p", "no:cacheprovider", "-o", "log_cli=true", "--log-cli-level=INFO",
               "--mlflow-uri", uri, "--report-dir", str(Path(tmp) / "reports"), "--retrain"]
        cmd += ["--data-dir", args.data_dir] if args.data_dir else []
        times = [to_first_step(cmd) for _ in range(args.repeats)]
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import normcheck.plugin"],
                             capture_output=True, text=True).stderr.splitlines()
    plugin_us = int(imports[-1].split("|")[1])
    print(f"to the first training step: median {statistics.median(times):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times)}); importing normcheck.plugin: "
          f"{plugin_us / 1e6:.2f} s")


if __name__ == "__main__":
    main()
