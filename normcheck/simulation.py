"""Result tables simulated under known truths, to measure what the verdicts do.

A ``Truth`` fixes, for every (lr, fc_units, norm) cell, the mean and sd of final validation
accuracy, the probability that a run is unstable (and collapses), and the mean and sd of
log beta-smoothness. Each simulated replicate draws a factor per norm and metric that all its
cells share, so one norm's results are correlated across cells with correlation ``rho``, as a
real replicate's seed and split make them; the two norms' factors are correlated with
``rho_norms``, so the paired differences stay correlated across cells too.
``benchmarks/calibration.py`` and the unit tests feed these tables to ``hypotheses.evaluate``
and count how often each verdict is reached, and how often each interval covers the truth.
"""

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from normcheck.hypotheses import Paired, declared, evaluate, smoothness_pairs

LRS, FCS = (0.01, 0.003, 0.001), (32, 64, 128)
NORMS = ("none", "batchnorm")  # the arms simulated: the study's two
CHANCE = 1 / 3


@dataclass(frozen=True, eq=False)
class Truth:
    """What a simulated study's results are drawn from. Arrays have shape (lr, fc, norm), the
    lr axis high first, norms as in ``NORMS``."""

    name: str
    acc: np.ndarray  # mean final validation accuracy of a stable run
    acc_sd: np.ndarray  # sd of a stable run's accuracy across replicates
    unstable: np.ndarray  # probability that a run is unstable (it then collapses to chance)
    log_beta: np.ndarray  # mean log beta-smoothness
    log_beta_sd: np.ndarray
    replicates: int = 5
    rho: float = 0.3  # correlation of one replicate's results across the cells of one norm
    rho_norms: float = 0.5  # correlation of a replicate's shared factor between the norms
    lrs: tuple[float, ...] = LRS
    fcs: tuple[int, ...] = FCS

    def with_replicates(self, replicates: int) -> "Truth":
        return replace(self, replicates=replicates)


def _cells(value: float) -> np.ndarray:
    return np.full((len(LRS), len(FCS), len(NORMS)), float(value))


def null_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """No effect of anything, with unequal noise: every cell's accuracy has mean 0.6; no-norm's
    sd is 0.08 at lr=0.01 and 0.02 elsewhere, BatchNorm's 0.015; no run is unstable; log
    beta-smoothness has the same mean for both norms, with no-norm twice as variable."""
    sd = _cells(0.015)
    sd[:, :, 0] = 0.02
    sd[0, :, 0] = 0.08
    beta_sd = _cells(0.3)
    beta_sd[:, :, 0] = 0.6
    return Truth("null", _cells(0.6), sd, _cells(0.0), _cells(3.0), beta_sd, replicates, rho)


def unstable_null_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """The null truth, but at lr=0.01 a run of either norm is unstable (and collapses to
    chance) with probability 0.2: instability that normalization does not change."""
    unstable = _cells(0.0)
    unstable[0] = 0.2
    return replace(null_truth(replicates, rho), name="null, equal instability",
                   unstable=unstable)


def h1_margin_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """BatchNorm worse than no-norm by exactly H1's margin everywhere, no unstable runs: the
    boundary where "non-inferior" is just false."""
    spec = declared()
    null = null_truth(replicates, rho)
    acc = null.acc.copy()
    acc[:, :, 1] -= spec["H1"]["margin"]
    return replace(null, name="H1 at its margin", acc=acc)


def h4_margin_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """No-norm's lr x fc_units interaction exactly at H4's margin, none with BatchNorm: the
    boundary where "holds" is just false."""
    null = null_truth(replicates, rho)
    x = np.log10(np.array(null.lrs))
    u = np.log2(np.array(null.fcs))
    shape = np.outer((x - x.mean()) / np.ptp(x), (u - u.mean()) / np.ptp(u))
    acc = null.acc.copy()
    acc[:, :, 0] += declared()["H4"]["margin"] * shape
    return replace(null, name="H4 at its margin", acc=acc)


def study_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """Effects of about the sizes the version-1 runs showed: BatchNorm flat in lr and 0.04
    more accurate than no-norm at the lower lrs; no-norm losing 0.12 at lr=0.01, noisy there
    and unstable in 40% of runs; an lr x capacity interaction of 0.08 without normalization
    and none with BatchNorm; no-norm's log beta-smoothness 0.5 higher. For the effects of a
    real run, use ``truth_from_table``."""
    acc = _cells(0.6)
    acc[:, :, 0] = 0.56
    acc[0, :, 0] = 0.44 + np.array([0.04, 0.0, -0.04])  # the interaction: wider is worse here
    sd = null_truth().acc_sd
    unstable = _cells(0.0)
    unstable[0, :, 0] = 0.4
    beta = _cells(3.0)
    beta[:, :, 0] = 3.5
    return Truth("study-like", acc, sd, unstable, beta, null_truth().log_beta_sd, replicates,
                 rho)


def truth_from_table(table: pd.DataFrame, name: str = "measured") -> Truth:
    """The truth a real metrics table suggests: per cell, its stable runs' mean and sd of
    final validation accuracy, its rate of unstable runs, and the mean and sd of log
    beta-smoothness; ``rho`` from the correlation of replicates' residuals across the cells
    of a norm, ``rho_norms`` from that of the paired differences' residuals."""
    paired = Paired(table)
    if len(paired.dropouts) > 1:
        raise ValueError("truth_from_table takes a grid without a dropout axis")
    acc, unstable = paired("final_val_acc")[:, :, 0], paired("unstable")[:, :, 0] > 0
    stable = np.where(unstable, np.nan, acc)  # (lr, fc, rep, norm)
    log_ratio, _ = smoothness_pairs(paired)
    log_beta = np.where(np.isnan(log_ratio[:, :, 0])[..., None], np.nan,
                        np.log(paired("beta_smoothness")[:, :, 0]))
    rho = _cross_cell_correlation(stable)
    rho_diff = _cross_cell_correlation((stable[..., 1] - stable[..., 0])[..., None])
    # differences of two factors correlated rho_norms: rho_diff = rho (1 - r) / (1 - rho r)
    rho_norms = (rho - rho_diff) / (rho * (1 - rho_diff)) if rho > 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell with < 2 stable runs

        def mean(a: np.ndarray) -> np.ndarray:
            return np.nan_to_num(np.nanmean(a, axis=2))

        def sd(a: np.ndarray) -> np.ndarray:
            return np.nan_to_num(np.nanstd(a, axis=2, ddof=1))

        return Truth(name, mean(stable), sd(stable), unstable.mean(axis=2), mean(log_beta),
                     sd(log_beta), len(paired.seeds), max(rho, 0.0),
                     float(np.clip(rho_norms, 0.0, 1.0)), tuple(paired.lrs), tuple(paired.fcs))


def _cross_cell_correlation(values: np.ndarray) -> float:
    """(lr, fc, replicate, norm): the mean correlation, over pairs of cells of one norm, of
    replicates' deviations from their cell's mean."""
    residual = values - np.nanmean(values, axis=2, keepdims=True)
    correlations = []
    for n in range(values.shape[-1]):
        per_cell = residual[..., n].reshape(-1, values.shape[2])  # (cell, replicate)
        corr = pd.DataFrame(per_cell.T).corr(min_periods=3).to_numpy()
        correlations.append(corr[np.triu_indices_from(corr, k=1)])
    return float(np.nanmean(np.concatenate(correlations)))


class Simulator:
    """Draws result tables from a truth; ``table(rng)`` is one simulated study."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        t = truth
        shape = (len(t.lrs), len(t.fcs), t.replicates, len(NORMS))
        index = pd.MultiIndex.from_product([t.lrs, t.fcs, range(t.replicates), NORMS],
                                           names=["lr", "fc_units", "seed", "norm"])
        self.shape = shape
        self.frame = index.to_frame(index=False).assign(
            dropout=0.0, split_seed=lambda f: f["seed"], n_val=480, num_classes=3,
            diverged=False, epochs=5)

    def arrays(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One study's metrics, each of shape (lr, fc, replicate, norm)."""
        t, shape = self.truth, self.shape
        a, b = math.sqrt(t.rho), math.sqrt(1 - t.rho)
        c, d = math.sqrt(t.rho_norms), math.sqrt(1 - t.rho_norms)

        def correlated() -> np.ndarray:
            both = rng.standard_normal((1, 1, t.replicates, 1))
            shared = c * both + d * rng.standard_normal((1, 1, t.replicates, len(NORMS)))
            return a * shared + b * rng.standard_normal(shape)

        def cell(x: np.ndarray) -> np.ndarray:
            return x[:, :, None, :]

        from scipy.stats import norm

        unstable = correlated() < norm.ppf(cell(t.unstable))
        acc = cell(t.acc) + cell(t.acc_sd) * correlated()
        acc = np.where(unstable, CHANCE + 0.01 * rng.standard_normal(shape), acc)
        log_beta = cell(t.log_beta) + cell(t.log_beta_sd) * correlated()
        return {"final_val_acc": acc, "test_acc": acc, "final_train_acc": acc,
                "unstable": unstable, "collapsed": unstable, "beta_smoothness": np.exp(log_beta)}

    def table(self, rng: np.random.Generator) -> pd.DataFrame:
        arrays = self.arrays(rng)
        return self.frame.assign(**{k: v.reshape(-1) for k, v in arrays.items()})


def true_values(truth: Truth) -> dict[str, float]:
    """The value each contrast of ``hypotheses.evaluate`` estimates, under ``truth``, keyed
    like ``contrasts``. Unstable runs sit at chance, so a cell's expected accuracy mixes the
    two; H5 leaves unstable pairs out (weighting cells by how often a pair stays in)."""
    from normcheck import hypotheses as h

    p = truth.unstable
    acc = ((1 - p) * truth.acc + p * CHANCE)[:, :, None, None, :]  # (lr, fc, dropout, rep, norm)
    unstable = p[:, :, None, None, :]
    lrs, fcs = list(truth.lrs), list(truth.fcs)
    high, low = lrs.index(0.01), len(lrs) - 1
    slope = h._lr_slope(acc[None], lrs)[0]
    interaction = h._interaction(acc[None], lrs, fcs)[0]
    valid = (1 - p[..., 0]) * (1 - p[..., 1])  # H5 averages over pairs with no unstable run
    beta_diff = truth.log_beta[..., 0] - truth.log_beta[..., 1]
    return {
        "H1": float(np.mean(acc[..., 1] - acc[..., 0])),
        "H2.1": float(np.mean(unstable[high, ..., 0] - unstable[high, ..., 1])),
        "H2.2": float(np.mean(acc[low, ..., 0] - acc[high, ..., 0])),
        "H3": float(slope[1] - slope[0]),
        "H4.1": float(interaction[0]), "H4.2": float(interaction[1]),
        "H5": float(np.sum(valid * beta_diff) / np.sum(valid)),
    }


def contrasts(verdicts: list) -> dict[str, object]:
    """Every verdict's estimates, keyed ``H1``, ``H2.1``, ``H2.2``, ... like ``true_values``."""
    out = {}
    for v in verdicts:
        for k, part in enumerate(v.parts):
            out[v.name if len(v.parts) == 1 else f"{v.name}.{k + 1}"] = part.estimate
    return out



def false_verdict(name: str, verdict: str, truth: dict[str, float], spec: dict) -> bool:
    """Whether ``verdict`` claims something the truth contradicts (inconclusive never does)."""
    if verdict == "inconclusive":
        return False
    if name == "H1":
        m, d = spec["H1"]["margin"], truth["H1"]
        return not {"superior": d > 0, "non-inferior": d > -m, "refuted": d < -m}[verdict]
    if name == "H2":
        parts = (truth["H2.1"], truth["H2.2"])
        holds, refuted = all(v > 0 for v in parts), any(v < 0 for v in parts)
    elif name == "H4":
        m, none, bn = spec["H4"]["margin"], abs(truth["H4.1"]), abs(truth["H4.2"])
        holds, refuted = none > m and bn < m, none < m or bn > m
    else:
        holds, refuted = truth[name] > 0, truth[name] < 0
    return not (holds if verdict == "holds" else refuted)


@dataclass(frozen=True)
class Calibration:
    """How the verdicts behaved on ``sims`` tables simulated from one truth."""

    truth: Truth
    sims: int
    rates: dict[str, dict[str, float]]  # hypothesis -> verdict -> share of tables
    false: dict[str, float]  # hypothesis -> share of tables with a false verdict
    family_false: float  # share of tables with any false verdict
    coverage: dict[str, float]  # contrast -> share of 95% intervals covering its true value
    bias: dict[str, tuple[float, float]]  # contrast -> mean error of its estimate, and that
    # mean's standard error: a statistic whose expectation moves with noise shows up here
    all_decided: float = 0.0  # share of tables where no verdict was inconclusive


def calibrate(truth: Truth, sims: int, seed: int = 0, spec: dict | None = None) -> Calibration:
    """Evaluate ``sims`` simulated studies and count verdicts, false verdicts and coverage."""
    spec = spec or declared()
    simulator, values = Simulator(truth), true_values(truth)
    rates: dict[str, dict[str, float]] = {}
    false = dict.fromkeys(spec["family"]["members"], 0.0)
    covered: dict[str, float] = {}
    errors: dict[str, list[float]] = {}
    family_false = all_decided = 0.0
    for i in range(sims):
        verdicts = evaluate(simulator.table(np.random.default_rng([seed, i])), spec)
        all_decided += all(v.outcome != "inconclusive" for v in verdicts) / sims
        any_false = False
        for v in verdicts:
            rates.setdefault(v.name, {})
            rates[v.name][v.outcome] = rates[v.name].get(v.outcome, 0) + 1 / sims
            wrong = false_verdict(v.name, v.outcome, values, spec)
            false[v.name] += wrong / sims
            any_false |= wrong
        family_false += any_false / sims
        for key, estimate in contrasts(verdicts).items():
            e = estimate.at(0.95)
            covered[key] = covered.get(key, 0) + (e.low <= values[key] <= e.high) / sims
            errors.setdefault(key, []).append(e.value - values[key])
    bias = {k: (float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v))))
            for k, v in errors.items()}
    return Calibration(truth, sims, rates, false, family_false, covered, bias, all_decided)


@dataclass(frozen=True)
class SequentialCalibration:
    """How a sequential design behaved on ``sims`` studies simulated from one truth."""

    truth: Truth
    design: object  # sequential.Design
    sims: int
    decided: dict[str, float]  # hypothesis -> share of studies where it was decided
    false: dict[str, float]  # hypothesis -> share with a false decision
    family_false: float  # share of studies with any false decision
    mean_replicates: float  # replicates run before the study stopped, on average
    all_decided: float  # share of studies that decided every hypothesis within the budget
    replicates: dict[str, float]  # hypothesis -> mean replicates until decided (or the budget)


def calibrate_sequential(truth: Truth, design, sims: int, seed: int = 0,
                         spec: dict | None = None) -> SequentialCalibration:
    """Run ``design`` on ``sims`` studies drawn from ``truth`` with its full budget of
    replicates; each stops where the design says, and its decisions are checked."""
    from normcheck import sequential

    spec = spec or declared()
    simulator = Simulator(truth.with_replicates(design.max_seeds))
    values = true_values(truth)
    decided: dict[str, float] = {}
    false: dict[str, float] = {}
    to_decide: dict[str, float] = {}
    family_false = replicates = all_decided = 0.0
    for i in range(sims):
        run = sequential.run(simulator.table(np.random.default_rng([seed, i])), design, spec)
        any_false = False
        for v in run.verdicts():
            is_decided = v.outcome != "inconclusive"
            wrong = false_verdict(v.name, v.outcome, values, spec)
            decided[v.name] = decided.get(v.name, 0) + is_decided / sims
            at = run.decided[v.name][1] if is_decided else run.looks[-1].replicates
            to_decide[v.name] = to_decide.get(v.name, 0) + at / sims
            false[v.name] = false.get(v.name, 0) + wrong / sims
            any_false |= wrong
        family_false += any_false / sims
        replicates += run.looks[-1].replicates / sims
        all_decided += (len(run.decided) == len(run.names)) / sims
    return SequentialCalibration(truth, design, sims, decided, false, family_false, replicates,
                                 all_decided, to_decide)
