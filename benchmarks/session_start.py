"""What a whole-session test costs, side by side in one run: a session started cold (a fresh
interpreter importing torch and MLflow) against one forked warm from ``tests/warm.py``'s
server, and a one-process session training on both cores' threads against one pinned to one
core, each beside a core kept busy (as the other xdist worker keeps it in CI).

    python benchmarks/session_start.py [--repeats 3]

The tiny grid of the tests (8 configurations, synthetic data). Prints medians over the
repeats, interleaved, and the ratios.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from conftest import EXPERIMENTS, TINY_GRID, write_batches  # noqa: E402
from warm import Warm  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(start) -> tuple[float, float]:
    """Wall and CPU seconds of one session (CPU only for this process's own children)."""
    cpu, wall = children_cpu(), time.perf_counter()
    process = start()
    out, _ = process.communicate(timeout=900)
    if process.returncode not in (0, 1):  # 1: the tiny grid's hypotheses fail, as they may
        raise RuntimeError(f"the session failed ({process.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - wall, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("needs two cores: one to keep busy, one to pin a session to")
    folder = Path(tempfile.mkdtemp(prefix="nc-start-"))
    try:
        data = write_batches(folder / "data" / "cifar-10-batches-py", 1000, 170)
        for path in EXPERIMENTS.glob("*.py"):
            shutil.copy(path, folder / path.name)
        (folder / "tiny.toml").write_text(TINY_GRID)
        env = {**os.environ, "NORMCHECK_CACHE": str(folder / "cache"), "PYTHONPATH": str(folder)}
        env.pop("MLFLOW_TRACKING_URI", None)
        args = ["-m", "pytest", "--grid", "tiny.toml", "--data-dir", str(data), "--mlflow-uri",
                f"sqlite:///{folder / 'mlflow.db'}", "--report-dir", "out", "-p",
                "no:cacheprovider", "-p", "no:hypothesispytest", "-q"]

        def cold(*extra: str, pin: list[int] | None = None):
            preexec = (lambda: os.sched_setaffinity(0, pin)) if pin else None
            return lambda: subprocess.Popen([sys.executable, *args, *extra], cwd=folder, env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True, preexec_fn=preexec)

        server = Warm(folder / "warm")

        def warm(*extra: str):
            return lambda: server.popen([*args, *extra], folder, env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)

        timed(cold("-n", "0"))  # train the grid once: the start cases below reuse every run
        cases = {
            "start, reuse all, 1 process: cold": cold("-n", "0"),
            "start, reuse all, 1 process: warm": warm("-n", "0"),
            "start, reuse all, 2 workers: cold": cold("-n", "2"),
            "start, reuse all, 2 workers: warm": warm("-n", "2"),
        }
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                preexec_fn=lambda: os.sched_setaffinity(0, [cores[1]]))
        try:
            beside = {
                "train 8, beside a busy core: all cores' threads": cold("-n", "0", "--retrain"),
                "train 8, beside a busy core: pinned to one core": cold("-n", "0", "--retrain",
                                                                        pin=[cores[0]]),
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in beside}
            for _ in range(repeats):
                for name, start in beside.items():
                    results[name].append(timed(start))
        finally:
            busy.kill()
            busy.wait()
        for name in cases:
            results[name] = []
        for _ in range(repeats):
            for name, start in cases.items():
                results[name].append(timed(start))
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{'case':52} {'wall s':>7} {'CPU s':>7}   (medians of {repeats})")
    median = {name: (statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows))
              for name, rows in results.items()}
    for name, (wall, cpu) in median.items():
        cpu_text = f"{cpu:7.1f}" if "warm" not in name else "      -"  # not this one's child
        print(f"{name:52} {wall:7.1f} {cpu_text}")
    for a, b in (("start, reuse all, 1 process: cold", "start, reuse all, 1 process: warm"),
                 ("start, reuse all, 2 workers: cold", "start, reuse all, 2 workers: warm"),
                 ("train 8, beside a busy core: all cores' threads",
                  "train 8, beside a busy core: pinned to one core")):
        print(f"ratio wall {a.split(': ')[1]} / {b.split(': ')[1]} ({a.split(':')[0]}): "
              f"{median[a][0] / median[b][0]:.2f}"
              + (f", CPU {median[a][1] / median[b][1]:.2f}" if "warm" not in b else ""))


if __name__ == "__main__":
    main()
