"""Do the verdicts mean what they say? Simulate result tables under known truths and count.

Truths: no effect with unequal noise; the same with equal instability in both norms;
BatchNorm worse by exactly H1's margin; no-norm's interaction exactly at H4's margin; effects
of the study's size; optionally the effects and noise a real metrics.csv shows. For each, and
each number of replicates, with replicates correlated across cells and norms, this evaluates
the hypotheses as the suite does and prints, per hypothesis, how often each verdict came out,
how often a verdict was false, how often each contrast's 95% interval covered its true value
and how far its estimates were from it on average; and, per truth, how often any verdict of
the family was false.

    python benchmarks/calibration.py                         # 1000 tables per truth
    python benchmarks/calibration.py --metrics reports/metrics.csv   # power at measured effects
    python benchmarks/calibration.py --sequential --sims 200  # replicates in rounds (below)

With ``--sequential``: a group-sequential design (normcheck.sequential; looks after 5, 10, ...,
30 replicates) under optional stopping, with Pocock- and O'Brien-Fleming-type spending, against
naive re-testing at alpha at every look: under no effect, how often any decision is false; under
the study's effects, the replicates it takes and how often it decides everything, against the
fixed number of replicates that decides as often.
"""

import argparse
import time

import numpy as np
import pandas as pd

from normcheck.hypotheses import REP_AXIS, Paired, declared, over_replicates
from normcheck.sequential import Design
from normcheck.simulation import (
    Calibration,
    Simulator,
    calibrate,
    calibrate_sequential,
    h1_margin_truth,
    h4_margin_truth,
    null_truth,
    study_truth,
    truth_from_table,
    unstable_null_truth,
)
from normcheck.stats import replicate_bootstrap, resample_replicates


def show(c: Calibration, seconds: float) -> None:
    t = c.truth
    print(f"\n## truth: {t.name}, {t.replicates} replicates, rho {t.rho:.2f}, {c.sims} tables "
          f"({seconds:.0f} s)")
    rows = []
    for name, rates in c.rates.items():
        keys = [k for k in c.coverage if k.split(".")[0] == name]
        rows.append({"hypothesis": name,
                     "holds/superior": rates.get("holds", 0) + rates.get("superior", 0),
                     "non-inferior": rates.get("non-inferior", 0),
                     "refuted": rates.get("refuted", 0),
                     "inconclusive": rates.get("inconclusive", 0),
                     "false verdicts": c.false[name],
                     "95% coverage": ", ".join(f"{k} {c.coverage[k]:.1%}" for k in keys),
                     "mean error (its se)": ", ".join(
                         f"{c.bias[k][0]:+.4f} ({c.bias[k][1]:.4f})" for k in keys)})
    frame = pd.DataFrame(rows)
    for col in ("holds/superior", "non-inferior", "refuted", "inconclusive", "false verdicts"):
        frame[col] = frame[col].map("{:.1%}".format)
    print(frame.to_string(index=False))
    print(f"any false verdict in the family: {c.family_false:.1%}")


def interval_methods(sims: int, replicates: list[int], rho: float, seed: int) -> None:
    """Why t intervals: coverage of H1's 95% interval under the null truth, the t interval the
    suite uses against a percentile interval from the same bootstrap samples."""
    print("\n## why t intervals: 95% coverage of H1's contrast under the null truth")
    for r in replicates:
        simulator, hits = Simulator(null_truth(r, rho)), {"t": 0, "percentile": 0}
        for i in range(sims):
            paired = Paired(simulator.table(np.random.default_rng([seed, 99, i])))
            acc = paired("final_val_acc")
            diff = acc[..., 1] - acc[..., 0]
            draws = over_replicates(resample_replicates(diff, REP_AXIS, seed=i))
            low, high = np.percentile(draws, [2.5, 97.5])
            hits["percentile"] += low <= 0 <= high
            e = replicate_bootstrap(diff, over_replicates, REP_AXIS, seed=i)
            hits["t"] += e.low <= 0 <= e.high
        print(f"{r} replicates: t {hits['t'] / sims:.1%}, percentile "
              f"{hits['percentile'] / sims:.1%} ({sims} tables)")


def sequential_designs(sims: int, rho: float, seed: int, measured=None) -> None:
    """Optional stopping: valid spending against naive re-testing, and replicates to decide
    against fixed designs."""
    designs = [("pocock", Design()), ("obrien-fleming", Design(spending="obrien-fleming")),
               ("naive: alpha at every look", Design(naive=True))]
    looks = Design().looks()
    print(f"\n## sequential designs: looks after {looks} replicates, {sims} studies per row")
    truths = [null_truth(rho=rho), study_truth(rho=rho)] + ([measured] if measured else [])
    for k, truth in enumerate(truths):
        print(f"\n### truth: {truth.name}")
        print(f"{'design':28s} {'any false':>9s} {'all decided':>11s} {'stops at':>8s}   "
              "per hypothesis: decided, mean replicates to its decision")
        for name, design in designs:
            start = time.perf_counter()
            c = calibrate_sequential(truth, design, sims, seed=1000 * seed + k)
            cells = [f"{h} {c.decided[h]:.0%} @{c.replicates[h]:.1f}" for h in sorted(c.decided)]
            print(f"{name:28s} {c.family_false:9.1%} {c.all_decided:11.1%} "
                  f"{c.mean_replicates:8.1f}   {'; '.join(cells)}   "
                  f"({time.perf_counter() - start:.0f} s)")
        if truth.name == null_truth().name:
            continue
        for n in looks:  # fixed designs: how often each hypothesis is decided with n
            f = calibrate(truth.with_replicates(n), sims, seed=1000 * seed + k)
            cells = [f"{h} {max(0.0, 1 - f.rates[h].get('inconclusive', 0)):.0%}"
                     for h in sorted(f.rates)]
            print(f"{'fixed, ' + str(n) + ' replicates':28s} {f.family_false:9.1%} "
                  f"{f.all_decided:11.1%} {n:8d}   {'; '.join(cells)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="tables per truth [1000]")
    parser.add_argument("--replicates", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--rho", type=float, default=0.3,
                        help="correlation of a replicate's results across cells [0.3]")
    parser.add_argument("--metrics", default=None,
                        help="a metrics.csv whose effects and noise to simulate (power)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truths", nargs="*", default=["null", "equal-instability",
                                                         "h1-margin", "h4-margin", "study-like"],
                        help="which simulated truths (default: all; none with --metrics only)")
    parser.add_argument("--sequential", action="store_true",
                        help="only the sequential designs (replicates in rounds)")
    args = parser.parse_args()
    alpha = declared()["family"]["alpha"]
    if args.sequential:
        measured = args.metrics and truth_from_table(pd.read_csv(args.metrics), "measured")
        sequential_designs(args.sims, args.rho, args.seed, measured or None)
        return
    builders = {"null": null_truth, "equal-instability": unstable_null_truth,
                "h1-margin": h1_margin_truth, "h4-margin": h4_margin_truth,
                "study-like": study_truth}
    truths = [builders[name](r, args.rho) for name in args.truths for r in args.replicates]
    if args.metrics:
        measured = truth_from_table(pd.read_csv(args.metrics), f"measured ({args.metrics})")
        truths += [measured.with_replicates(r) for r in args.replicates]
    checks = []
    for k, truth in enumerate(truths):
        start = time.perf_counter()
        c = calibrate(truth, args.sims, seed=1000 * args.seed + k)  # each truth its own draws
        show(c, time.perf_counter() - start)
        if truth.name != study_truth().name and not truth.name.startswith("measured"):
            worst = max(c.false.values())
            checks.append((f"{truth.name}, {truth.replicates} replicates: largest false-verdict "
                           f"rate {worst:.1%}", worst <= alpha))
        low = min(c.coverage.values())
        checks.append((f"{truth.name}, {truth.replicates} replicates: lowest 95% coverage "
                       f"{low:.1%}", low >= 0.93))
    interval_methods(args.sims // 2, args.replicates, args.rho, args.seed)
    print("\n## summary (targets: false verdicts at most "
          f"{alpha:.0%} under each boundary truth, coverage at least 93%)")
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'MISS'} {text}")


if __name__ == "__main__":
    main()
