"""Wall time of whole grids with -n 0, -n 2 and -n auto: speed-up, parallel efficiency, memory.

Each run is the README's command in a fresh MLflow store (nothing reused), end to end:
start-up, collection, training, hypotheses and reports. Peak resident memory per process comes
from the session's own summary line.

    python benchmarks/grid_scaling.py --data-dir ../shared/datasets/cifar10-cat-dog-horse \\
        --grid quick --grid full --seeds 1
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normcheck.device import cpu_count
from normcheck.grid import load_grid
from normcheck.options import add_options, data_dir


def run_grid(grid: str, workers: str, seeds: int | None, data_dir: str | None,
             folder: Path) -> tuple[float, str, int]:
    """Seconds, the peak-memory line and pytest's exit code of one session in a fresh store."""
    cmd = [sys.executable, "-m", "pytest", "experiments", "--grid", grid, "-n", workers, "-q",
           "-p", "no:cacheprovider", "--report-dir", str(folder / "reports"),
           "--mlflow-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    cmd += ["--data-dir", data_dir] if data_dir else []
    cmd += ["--seeds", str(seeds)] if seeds else []
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = re.search(r"^peak memory: (.*)$", done.stdout, re.MULTILINE)
    if not re.search(r"runs: reused 0, trained \d+", done.stdout):
        sys.exit(f"{' '.join(cmd)} did not train its grid:\n{done.stdout[-3000:]}")
    return seconds, peak.group(1) if peak else "?", done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--grid", action="append", help="grid profile(s) [quick]")
    parser.add_argument("--seeds", type=int, default=None, help="replicates (default: grid's)")
    parser.add_argument("--workers", nargs="+", default=["0", "2", "auto"])
    args = parser.parse_args()
    args.data_dir = data_dir(args.data_dir)
    print(f"{cpu_count()} cores; fresh MLflow store per run")
    for grid in args.grid or ["quick"]:
        runs = len(load_grid(grid).with_replicates(args.seeds).configs())
        times = {}
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                seconds, peak, code = run_grid(grid, workers, args.seeds, args.data_dir,
                                               Path(tmp))
            times[workers] = seconds
            n = cpu_count() if workers == "auto" else max(1, int(workers))
            speedup = times[args.workers[0]] / seconds
            print(f"{grid:6s} {runs:3d} runs  -n {workers:4s}: {seconds:6.1f} s  "
                  f"({seconds / runs:.2f} s/run)  speed-up {speedup:.2f}x  efficiency "
                  f"{speedup / n:.0%}  exit {code}  peak memory: {peak}", flush=True)


if __name__ == "__main__":
    main()
