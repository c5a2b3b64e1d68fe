"""How often would CI's hypothesis check fail for no reason but the seeds?

Runs the quick grid (as CI does, with --expect-verdicts) once per base seed, and prints each
run's verdicts, whether the check would pass, and its wall time. A failure here means the
recorded answer did not survive a change of seeds alone: a false failure.

    python benchmarks/ci_false_failures.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from normcheck import hypotheses

RECORD = "experiments/recorded_verdicts.toml"


def run(base_seed: int, data_dir: str, workdir: Path) -> tuple[int, float, list]:
    out = workdir / f"seed-{base_seed}"
    cmd = [sys.executable, "-m", "pytest", "experiments", "--grid", "quick", "-n", "auto", "-q",
           "-p", "no:cacheprovider", "--base-seed", str(base_seed), "--data-dir", data_dir,
           "--expect-verdicts", RECORD, "--report-dir", str(out),
           "--mlflow-uri", f"sqlite:///{out}/mlflow.db"]
    start = time.perf_counter()
    code = subprocess.run(cmd, capture_output=True, text=True).returncode
    seconds = time.perf_counter() - start
    verdicts = hypotheses.evaluate(pd.read_csv(out / "metrics.csv"))
    return code, seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--base-seeds", type=int, nargs="+",
                        default=[1000, 2000, 3000, 4000, 5000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.base_seeds:
            code, seconds, verdicts = run(seed, args.data_dir, Path(tmp))
            rows.append({"base_seed": seed, **{v.name: v.verdict for v in verdicts},
                         "check": "pass" if code == 0 else f"FAIL ({code})",
                         "wall_s": round(seconds, 1)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    failures = (table["check"] != "pass").sum()
    print(f"false-failure rate: {failures}/{len(table)} base seeds; "
          f"median wall time {table['wall_s'].median():.0f} s per quick run")


if __name__ == "__main__":
    main()
