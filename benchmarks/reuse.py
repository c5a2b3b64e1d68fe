"""A session whose every run is already in the store should feel like a report rebuild.

Trains a grid once into a fresh MLflow store, then times sessions of the same command that find
every run there (reused), next to ``python -m normcheck report`` rebuilding the reports from the
same store, and prints the seconds and the ratios side by side.

    python benchmarks/reuse.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
    python benchmarks/reuse.py --data-dir ... --grid quick --seeds 3 --workers 0 auto
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normcheck.options import add_options, data_dir


def timed(cmd: list[str], expect: str | None = None) -> float:
    """Seconds one command takes, end to end; it must succeed (and print ``expect``)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or (expect and not re.search(expect, done.stdout)):
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--grid", default="full")
    parser.add_argument("--seeds", type=int, default=1, help="replicates [1]")
    parser.add_argument("--workers", nargs="+", default=["auto"], help="-n values [auto]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.data_dir = data_dir(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        common = ["--grid", args.grid, "--seeds", str(args.seeds), "--mlflow-uri", uri,
                  "--report-dir", str(Path(tmp) / "reports")]
        session = [sys.executable, "-m", "pytest", "experiments", "-q", "-p", "no:cacheprovider",
                   "--inconclusive", "warn", *common] + (
                      ["--data-dir", args.data_dir] if args.data_dir else [])
        rebuild = [sys.executable, "-m", "normcheck", "report", *common]
        rows = [("train every run (-n auto)",
                 timed(session + ["-n", "auto"], r"runs: reused 0, trained \d+"))]
        for workers in args.workers:
            rows.append((f"all reused (-n {workers})", statistics.median(
                timed(session + ["-n", workers], r"runs: reused \d+, trained 0")
                for _ in range(args.repeats))))
        rows.append(("python -m normcheck report", statistics.median(
            timed(rebuild) for _ in range(args.repeats))))
    base = rows[-1][1]
    print(f"grid {args.grid}, {args.seeds} replicate(s); median of {args.repeats} where repeated")
    print(f"{'session':32s} {'seconds':>8s} {'x rebuild':>10s}")
    for name, seconds in rows:
        print(f"{name:32s} {seconds:8.1f} {seconds / base:10.2f}")


if __name__ == "__main__":
    main()
