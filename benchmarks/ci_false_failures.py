"""How often would CI's hypothesis check fail for no reason but the draw of replicates?

Runs the quick grid as CI does, once per base seed S, with fresh replicates: training seeds
S, S+1, ... and, where the grid resamples splits, split seeds S, S+1, ... . Each run's verdicts
are compared with those recorded for the quick grid (at CI's base seed 42) in
experiments/recorded_verdicts.toml; any difference is a false failure, since nothing but the
replicates changed. Prints each run's verdicts, whether CI would have passed, and its wall
time.

    python benchmarks/ci_false_failures.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
    python benchmarks/ci_false_failures.py --data-dir ... --seeds 15   # another quick grid size
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from normcheck import regression
from normcheck.data import load_splits
from normcheck.family import load
from normcheck.grid import load_grid

RECORD = "experiments/recorded_verdicts.toml"


def run(base_seed: int, seeds: int | None, data_dir: str, workdir: Path) -> tuple[list, float]:
    out = workdir / f"seed-{base_seed}"
    out.mkdir()
    grid = out / "grid.toml"
    grid.write_text(f'extends = "quick"\n[train]\nseed = {base_seed}\n[data]\n'
                    f'split_seed = {base_seed}\n' +
                    (f"[replicates]\nseeds = {seeds}\n" if seeds else ""))
    cmd = [sys.executable, "-m", "pytest", "experiments", "--grid", str(grid), "-n", "auto",
           "-q", "-p", "no:cacheprovider", "--data-dir", data_dir, "--report-dir", str(out),
           "--mlflow-uri", f"sqlite:///{out}/mlflow.db", "-k", "test_configuration"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"base seed {base_seed}: the grid did not train\n{done.stdout[-3000:]}")
    family = load([Path(__file__).resolve().parents[1] / "experiments"])
    return family.evaluate(pd.read_csv(out / "metrics.csv")), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--base-seeds", type=int, nargs="+",
                        default=[1000 * k for k in range(1, 11)])
    parser.add_argument("--seeds", type=int, default=None,
                        help="replicates per configuration (default: the quick grid's)")
    args = parser.parse_args()
    fingerprint = load_splits(args.data_dir, load_grid("quick").data).fingerprint
    recorded = regression.recorded_for(regression.load(RECORD), "quick", fingerprint)
    if not recorded:
        raise SystemExit(f"{RECORD} has no record for the quick grid on this data "
                         f"(fingerprint {fingerprint})")
    print(f"recorded: {recorded}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.base_seeds:
            verdicts, seconds = run(seed, args.seeds, args.data_dir, Path(tmp))
            changed = [v.name for v in verdicts if recorded.get(v.name) != v.outcome]
            rows.append({"base_seed": seed, **{v.name: v.outcome for v in verdicts},
                         "check": "FAIL: " + ", ".join(changed) if changed else "pass",
                         "wall_s": round(seconds, 1)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    failures = (table["check"] != "pass").sum()
    seeds = args.seeds or load_grid("quick").seeds
    print(f"false failures: {failures}/{len(table)} base seeds with {seeds} replicates; "
          f"median wall time {table['wall_s'].median():.0f} s per quick run")


if __name__ == "__main__":
    main()
