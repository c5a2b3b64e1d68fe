"""Which factor matters most: normcheck's variance shares with intervals, beside Optuna's
point importances, on the same runs of each arm; and the intervals' coverage by simulation.

For each arm of a metrics.csv (the report's), the shares of the final validation accuracy's
variance (normcheck/variance.py: lr, fc_units, their interaction and noise, corrected for
noise, jackknife-t intervals over replicates) next to Optuna's fANOVA and PED-ANOVA importances
of lr and fc_units (every run a trial; Optuna normalises its importances to add up to 1 and
has no noise term, so normcheck's lr and fc_units shares are also shown rescaled to add up to
1). Then ``--coverage``: how often the 95% intervals cover the truth in simulated studies
whose effects and noise are fitted to that metrics.csv, the jackknife-t intervals against a
percentile bootstrap over replicates, with Clopper-Pearson intervals on each rate; also under
two truths less kind than normal noise: heavy tails (each run's noise t with 3 degrees of
freedom, the same sd) and a collapse mixture (at the highest lr each run collapses to chance
with the rate seen there in the metrics.csv's no-norm runs, at least 10%, as no-norm's do).

    pip install -e '.[bench]'   # Optuna: a benchmark extra, not a dependency of normcheck
    python benchmarks/importance.py --metrics reports/metrics.csv [--coverage 400]
"""

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

import normcheck
from normcheck.contrasts import Paired
from normcheck.variance import FACTORS, decompose, shares

METRIC = "final_val_acc"


def optuna_importances(runs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """fANOVA's and PED-ANOVA's importances of lr and fc_units, every run one trial."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    spaces = {"lr": CategoricalDistribution(sorted(runs["lr"].unique())),
              "fc_units": CategoricalDistribution(sorted(int(f) for f in
                                                         runs["fc_units"].unique()))}
    for row in runs.itertuples():
        study.add_trial(optuna.trial.create_trial(
            params={"lr": row.lr, "fc_units": int(row.fc_units)}, distributions=spaces,
            value=float(getattr(row, METRIC))))
    evaluators = {"fANOVA": optuna.importance.FanovaImportanceEvaluator(seed=0),
                  "PED-ANOVA": optuna.importance.PedAnovaImportanceEvaluator()}
    return {name: dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
            for name, evaluator in evaluators.items()}


def compare(table: pd.DataFrame) -> None:
    paired = Paired(table)
    d = decompose(paired, METRIC)
    print("| arm | normcheck: lr | fc_units | lr x fc_units | noise | lr, fc_units rescaled "
          "to 1 | fANOVA: lr, fc_units | PED-ANOVA: lr, fc_units |")
    print("|---|---|---|---|---|---|---|---|")
    for k, arm in enumerate(d.arms):
        runs = table[table["norm"] == arm]
        found = optuna_importances(runs)
        cells = [f"{d.point[k, f]:.2f} [{d.low[k, f]:.2f}, {d.high[k, f]:.2f}]"
                 for f in range(len(FACTORS))]
        main = d.point[k, :2]
        rescaled = main / main.sum() if main.sum() > 0 else main
        print(f"| {arm} ({len(runs)} runs) | " + " | ".join(cells) +
              f" | {rescaled[0]:.2f}, {rescaled[1]:.2f} | " + " | ".join(
                  f"{found[name].get('lr', 0):.2f}, {found[name].get('fc_units', 0):.2f}"
                  for name in ("fANOVA", "PED-ANOVA")) + " |")
    for k, arm in enumerate(d.arms[1:]):
        print(f"| {arm} - none | " + " | ".join(
            f"{d.diff_point[k, f]:+.2f} [{d.diff_low[k, f]:+.2f}, {d.diff_high[k, f]:+.2f}]"
            for f in range(len(FACTORS))) + " | | | |")


def fitted(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A truth fitted to one arm's (lr, fc, replicate) values: the cell means as effects, the
    replicate's shared shift's sd and each run's own noise sd."""
    cells = values.mean(axis=2)
    rep = values.mean(axis=(0, 1)) - values.mean()
    residual = values - cells[..., None] - rep[None, None, :]
    n_lr, n_fc, n_rep = values.shape
    noise = np.sqrt(np.sum(residual ** 2) / ((n_lr * n_fc - 1) * (n_rep - 1)))
    return cells, float(np.std(rep, ddof=1)), float(noise)


CHANCE = 1 / 3


def true_shares(cells: np.ndarray, shared: float, noise: float | np.ndarray) -> np.ndarray:
    """The population's shares: effects of the expected cell means, noise the replicate's
    shared variance plus the mean within-cell variance (``noise``: one sd, or one per cell)."""
    grand = cells.mean()
    lr, fc = cells.mean(1) - grand, cells.mean(0) - grand
    both = cells - grand - lr[:, None] - fc[None, :]
    parts = np.array([np.mean(lr ** 2), np.mean(fc ** 2), np.mean(both ** 2),
                      shared ** 2 + np.mean(np.square(noise))])
    return parts / parts.sum()


def truths(cells: np.ndarray, shared: float, noise: float, collapse: float) -> dict:
    """name -> (draw(rng, replicates) of (lr, fc, replicate) values, the true shares)."""
    def normal(rng, n):
        return (cells[..., None] + rng.normal(0, shared, n)[None, None, :] +
                rng.normal(0, noise, cells.shape + (n,)))

    def heavy(rng, n):  # t(3) scaled to sd ``noise``: variance 3 before scaling
        t = rng.standard_t(3, cells.shape + (n,)) * noise / np.sqrt(3)
        return cells[..., None] + rng.normal(0, shared, n)[None, None, :] + t

    def mixture(rng, n):
        y = normal(rng, n)
        dead = np.zeros(y.shape, dtype=bool)
        dead[0] = rng.random(y[0].shape) < collapse  # the highest lr (lr axis high first)
        return np.where(dead, CHANCE + rng.normal(0, 0.01, y.shape), y)

    q = np.zeros(cells.shape)
    q[0] = collapse
    mixed = (1 - q) * cells + q * CHANCE
    within = (1 - q) * noise ** 2 + q * 0.01 ** 2 + q * (1 - q) * (cells - CHANCE) ** 2
    return {"normal": (normal, true_shares(cells, shared, noise)),
            "heavy tails, t(3)": (heavy, true_shares(cells, shared, noise)),
            f"collapse {collapse:.0%} at the highest lr": (
                mixture, true_shares(mixed, shared, np.sqrt(within)))}


def coverage(table: pd.DataFrame, sims: int, replicates: tuple[int, ...]) -> None:
    paired = Paired(table)
    values = paired(METRIC)[:, :, 0]
    collapsed = np.nan_to_num(paired("collapsed")[0, :, 0, :, 0]).mean()
    rng = np.random.default_rng(0)
    print(f"\ncoverage of nominal 95% intervals, {sims} simulated studies per row, truths "
          "fitted to each arm's runs [Clopper-Pearson 95% CI]")
    print("| arm | truth | R | interval | " + " | ".join(FACTORS) + " |")
    print("|---|---|---|---|" + "---|" * len(FACTORS))
    for k, arm in enumerate(paired.norms):
        cells, shared, noise = fitted(values[..., k])
        for truth, (draw, want) in truths(cells, shared, noise, max(collapsed, 0.1)).items():
            for n_rep in replicates:
                hits = {"jackknife-t": np.zeros(4), "percentile bootstrap": np.zeros(4)}
                for _ in range(sims):
                    y = draw(rng, n_rep)
                    one = Paired.of_arrays({METRIC: np.stack([y, y], -1)[:, :, None]},
                                           paired.lrs, paired.fcs, ["none", "batchnorm"])
                    d = decompose(one, METRIC)
                    hits["jackknife-t"] += ((d.low[0] <= want + 1e-12) &
                                            (want <= d.high[0] + 1e-12))
                    boot = np.array([shares(y[:, :, rng.integers(0, n_rep, n_rep)])
                                     for _ in range(400)])
                    low, high = np.percentile(boot, 2.5, 0), np.percentile(boot, 97.5, 0)
                    hits["percentile bootstrap"] += ((low <= want + 1e-12) &
                                                     (want <= high + 1e-12))
                for name, hit in hits.items():
                    rates = []
                    for h in hit:
                        ci = binomtest(int(h), sims).proportion_ci(0.95)
                        rates.append(f"{h / sims:.1%} [{ci.low:.1%}, {ci.high:.1%}]")
                    print(f"| {arm} | {truth} | {n_rep} | {name} | " + " | ".join(rates) + " |")
            print(f"| {arm} | {truth} | | true shares | " +
                  " | ".join(f"{w:.3f}" for w in want) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.csv"))
    parser.add_argument("--coverage", type=int, default=0, metavar="SIMS",
                        help="also simulate this many studies per row")
    args = parser.parse_args()
    table = pd.read_csv(args.metrics)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"normcheck {normcheck.__version__}, commit {commit}; {args.metrics}: {len(table)} "
          f"runs, {table['seed'].nunique()} replicates")
    compare(table)
    if args.coverage:
        coverage(table, args.coverage, (5, 10))


if __name__ == "__main__":
    main()
