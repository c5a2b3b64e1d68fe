"""The Ray engine against the local one on this machine: wall time per grid, the engine's
overhead per configuration, and start-up.

Starts what a cluster user runs, on loopback (the test suite's helpers in tests/services.py):
PostgreSQL, an MLflow server on it, and a Ray cluster of one node (all cores) or two nodes
(half each). Every session logs to the same server and claims in the same database, each in a
fresh experiment, so the engines differ only in how the runs are spread:

- local: ``pytest experiments -n <cores>`` (each worker one thread per core it gets);
- ray: ``pytest experiments --engine ray`` with one CPU per task.

Also: a Ray task round trip that only reads the split from the object store (Ray's own cost
per configuration), and a session whose runs are all in the store (start-up and reporting).

    python benchmarks/engine_scaling.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
    python benchmarks/engine_scaling.py --data-dir ... --grid full --grid quick:5
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from services import MlflowServer, Postgres, RayCluster  # noqa: E402

from normcheck.device import cpu_count  # noqa: E402
from normcheck.options import add_options, data_dir  # noqa: E402


def session(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds one pytest session takes, end to end, and its output; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "experiments/test_grid.py", "-q",
                           "-p", "no:cacheprovider", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return seconds, done.stdout


RAY_ROUND_TRIP = """
import sys, time, ray
from normcheck.data import Images
from normcheck.records import DataSpec
ray.init(address=sys.argv[1], log_to_driver=False)
split = Images(sys.argv[2] or None, DataSpec().classes).splits(DataSpec())
ref = ray.put(split)

@ray.remote(num_cpus=1, max_retries=0)
def touch(split):
    return len(split.train_y)

ray.get(touch.remote(ref))  # warm: a worker started and the split on each node
ray.get([touch.remote(ref) for _ in range(8)])
n = 100
start = time.perf_counter()
for _ in range(n):
    ray.get(touch.remote(ref))
one = (time.perf_counter() - start) / n
start = time.perf_counter()
ray.get([touch.remote(ref) for _ in range(n)])
print(one * 1000, (time.perf_counter() - start) / n * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--grid", action="append", metavar="NAME[:SEEDS]",
                        help="grid, optionally with its replicates (default: full, quick:5)")
    args = parser.parse_args()
    data = data_dir(args.data_dir) or ""
    grids = [(g.split(":")[0], g.split(":")[1] if ":" in g else None)
             for g in (args.grid or ["full", "quick:5"])]
    cores = cpu_count()
    layouts = [("ray, 1 node", (cores,)), ("ray, 2 nodes", (cores // 2, cores - cores // 2))]

    rows, notes = [], []
    pg = Postgres()
    tmp = Path(tempfile.mkdtemp(prefix="nc-bench-"))
    server = MlflowServer(tmp / "mlflow", pg.create_database("mlflow"))
    os.environ["PGPASSWORD"] = pg.password  # for the sessions: off their command lines
    try:
        def common(grid: str, seeds: str | None, experiment: str) -> list[str]:
            return (["--grid", grid, "--mlflow-uri", server.uri, "--claims-db", pg.bare_uri(),
                     "--experiment", experiment, "--report-dir", str(tmp / experiment),
                     "--inconclusive", "warn"] + (["--seeds", seeds] if seeds else [])
                    + (["--data-dir", data] if data else []))

        for grid, seeds in grids:
            experiment = f"local-{uuid.uuid4().hex[:6]}"
            seconds, out = session(common(grid, seeds, experiment) + ["-n", str(cores)], {})
            runs = int(re.search(r"trained (\d+)", out).group(1))
            reused, _ = session(common(grid, seeds, experiment) + ["-n", str(cores)], {})
            rows.append((grid, seeds, runs, f"local, -n {cores}", seconds, reused))
        for name, cpus in layouts:
            started = time.perf_counter()
            cluster = RayCluster(cpus)
            up = time.perf_counter() - started
            try:
                trip = subprocess.run([sys.executable, "-c", RAY_ROUND_TRIP, cluster.address,
                                       data], capture_output=True, text=True, check=True,
                                      env={**os.environ, **cluster.env}).stdout.split()
                notes.append(f"{name}: cluster up in {up:.1f} s; a task reading the split "
                             f"from the object store: {float(trip[0]):.1f} ms one at a time, "
                             f"{float(trip[1]):.1f} ms each when {100} are in flight")
                ray = ["--engine", "ray", "--ray-address", cluster.address]
                for grid, seeds in grids:
                    experiment = f"ray-{uuid.uuid4().hex[:6]}"
                    seconds, out = session(common(grid, seeds, experiment) + ray, cluster.env)
                    runs = int(re.search(r"trained (\d+)", out).group(1))
                    reused, _ = session(common(grid, seeds, experiment) + ray, cluster.env)
                    rows.append((grid, seeds, runs, name, seconds, reused))
            finally:
                cluster.stop()
    finally:
        server.process.stop()
        pg.stop()

    print(f"{cores} cores; MLflow server on PostgreSQL, claims in PostgreSQL; one CPU per run")
    print(f"{'grid':10s} {'runs':>5s} {'engine':14s} {'seconds':>8s} {'s/run':>6s} "
          f"{'x local':>8s} {'overhead/run':>13s} {'all reused':>11s}")
    local = {(g, s): sec for g, s, _, e, sec, _ in rows if e.startswith("local")}
    for grid, seeds, runs, engine, seconds, reused in rows:
        base = local[grid, seeds]
        label = grid + (f":{seeds}" if seeds else "")
        print(f"{label:10s} {runs:5d} {engine:14s} {seconds:8.1f} {seconds / runs:6.2f} "
              f"{seconds / base:8.2f} {(seconds - base) / runs * 1000:10.0f} ms "
              f"{reused:9.1f} s")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
