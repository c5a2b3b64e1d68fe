"""Result tables simulated under known truths, to measure what the verdicts do.

A ``Truth`` fixes, for every (lr, fc_units, norm) cell, the mean and sd of a stable run's final
validation accuracy, the probability that a run collapses to chance, the probability that a run
that did not collapse is still unstable (its loss went up), and the mean and sd of log
beta-smoothness. Each simulated replicate draws a factor per norm and metric that all its cells
share, so one norm's results are correlated across cells with correlation ``rho``, as a real
replicate's seed and split make them; the norms' factors are correlated with ``rho_norms``, so
paired differences stay correlated across cells too. Collapses are drawn from such a factor as
well: with ``rho`` 0.6, most replicates see none and a few see several.

What the hypotheses estimate under a truth (``true_values``) is computed by simulating many
replicates with fixed random numbers: the medians of the replicates' contrasts, and for H2 the
share of replicates where no-norm had more unstable runs. ``boundary_truth`` moves a truth
until every hypothesis of every arm sits exactly at its boundary, the least favourable place
for the family's error. ``calibrate`` and ``calibrate_sequential`` feed simulated studies to
the verdicts and count; ``benchmarks/calibration.py`` prints what they find.
"""

import math
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from normcheck.assertions import values_of
from normcheck.contrasts import Paired, span_weights
from normcheck.family import Family, Gathered, verdict_name
from normcheck.multiplicity import HOLDS, REFUTED, SUPERIOR
from normcheck.registration import declared
from normcheck.stats import Proportion

LRS, FCS = (0.01, 0.003, 0.001), (32, 64, 128)
SIMULATED_NORMS = ("none", "batchnorm")  # the arms simulated unless a truth says otherwise
CHANCE = 1 / 3
TRUE_REPLICATES = 100_000  # replicates simulated to compute what a truth's contrasts are


@dataclass(frozen=True, eq=False)
class Truth:
    """What a simulated study's results are drawn from. Arrays have shape (lr, fc, norm), the
    lr axis high first, norms as in ``norms``."""

    name: str
    acc: np.ndarray  # mean final validation accuracy of a run that did not collapse
    acc_sd: np.ndarray  # its sd across replicates
    unstable: np.ndarray  # probability that a run collapses to chance (and so is unstable)
    log_beta: np.ndarray  # mean log beta-smoothness
    log_beta_sd: np.ndarray
    replicates: int = 5
    rho: float = 0.3  # correlation of one replicate's results across the cells of one norm
    rho_norms: float = 0.5  # correlation of a replicate's shared factor between the norms
    lrs: tuple[float, ...] = LRS
    fcs: tuple[int, ...] = FCS
    norms: tuple[str, ...] = SIMULATED_NORMS
    loss_up: np.ndarray | None = None  # probability that a run that did not collapse is
    # unstable all the same (its loss went up); its accuracy is a stable run's
    # What the explanatory hypotheses read (None: the defaults below). ics: mean and sd of
    # ics_cosine; log_grad: of log grad_change; train_acc: mean final training accuracy of a
    # run that did not collapse (its sd is acc_sd's, its noise shared with validation's).
    ics: np.ndarray | None = None  # default 0.9, sd 0.05
    ics_sd: np.ndarray | None = None
    log_grad: np.ndarray | None = None  # default log_beta and log_beta_sd
    log_grad_sd: np.ndarray | None = None
    train_acc: np.ndarray | None = None  # default acc + 0.05

    def explained(self) -> dict[str, np.ndarray]:
        """The explanatory metrics' parameters, defaults filled in."""
        def given(a: np.ndarray | None, default: np.ndarray) -> np.ndarray:
            return default if a is None else a

        return {"ics": given(self.ics, np.full_like(self.acc, 0.9)),
                "ics_sd": given(self.ics_sd, np.full_like(self.acc, 0.05)),
                "log_grad": given(self.log_grad, self.log_beta),
                "log_grad_sd": given(self.log_grad_sd, self.log_beta_sd),
                "train_acc": given(self.train_acc, self.acc + 0.05)}

    def with_replicates(self, replicates: int) -> "Truth":
        return replace(self, replicates=replicates)

    def key(self) -> tuple:
        """What fixes the truth's contrasts (not the number of replicates)."""
        arrays = (self.acc, self.acc_sd, self.unstable, self.log_beta, self.log_beta_sd,
                  self.loss_up if self.loss_up is not None else np.zeros(0),
                  *self.explained().values())
        return (tuple(a.tobytes() for a in arrays), self.rho, self.rho_norms, self.lrs,
                self.fcs, self.norms)


def _cells(value: float, norms: tuple[str, ...] = SIMULATED_NORMS) -> np.ndarray:
    return np.full((len(LRS), len(FCS), len(norms)), float(value))


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
    """The null truth, but at lr=0.01 a run of either norm collapses to chance with
    probability 0.2: instability that normalization does not change."""
    unstable = _cells(0.0)
    unstable[0] = 0.2
    return replace(null_truth(replicates, rho), name="null, equal instability",
                   unstable=unstable)


def uneven_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """No effect, with noise as uneven as the full grid's: per-cell sds of 0.011-0.091 (its
    measured range), BatchNorm noisier than no-norm in 7 of 9 cells, log beta-smoothness
    from -1.4 to 2.1 by cell, and no-norm's runs at lr=0.01 unstable without collapsing
    (loss up) 5% of the time. A base for ``boundary_truth`` when no metrics.csv is at hand."""
    sd = np.stack([np.array([[0.075, 0.048, 0.091], [0.014, 0.011, 0.033],
                             [0.033, 0.022, 0.018]]),
                   np.array([[0.080, 0.066, 0.040], [0.045, 0.023, 0.012],
                             [0.046, 0.043, 0.024]])], axis=-1)
    log_beta = np.stack([np.array([[1.4, 1.1, -0.6], [1.8, 1.8, 1.1], [2.1, 1.9, 1.9]]),
                         np.array([[-1.2, -1.2, -1.4], [0.8, 0.5, 0.2], [1.9, 1.7, 1.4]])],
                        axis=-1)
    loss_up = _cells(0.0)
    loss_up[0, :, 0] = 0.05
    return Truth("uneven noise", _cells(0.6), sd, _cells(0.0), log_beta, _cells(0.4),
                 replicates, rho, loss_up=loss_up)


def h1_margin_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """BatchNorm worse than no-norm by exactly H1's margin everywhere, no unstable runs: the
    boundary where "non-inferior" and "refuted" are both just false."""
    null = null_truth(replicates, rho)
    acc = null.acc.copy()
    acc[:, :, 1] -= declared()["H1"]["margin"]
    return replace(null, name="H1 at its margin", acc=acc)


def h4_margin_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """No-norm's lr x fc_units interaction exactly H4's margin, none with BatchNorm: the
    reduction of its size is the margin, where "holds" and "refuted" are both just false."""
    null = null_truth(replicates, rho)
    acc = null.acc.copy()
    acc[:, :, 0] += declared()["H4"]["margin"] * _pattern(null, "interaction")
    return replace(null, name="H4 at its margin", acc=acc)


def study_truth(replicates: int = 5, rho: float = 0.3) -> Truth:
    """Effects of about the sizes the version-1 runs showed: BatchNorm flat in lr and 0.04
    more accurate than no-norm at the lower lrs; no-norm losing 0.12 at lr=0.01, noisy there
    and collapsing in 40% of runs; an lr x capacity interaction of 0.08 without normalization
    and none with BatchNorm; no-norm's log beta-smoothness 0.5 higher. For the effects of a
    real run, use ``truth_from_table``."""
    acc = _cells(0.6)
    acc[:, :, 0] = 0.56
    acc[0, :, 0] = 0.44 + np.array([0.04, 0.0, -0.04])  # the interaction: wider is worse here
    unstable = _cells(0.0)
    unstable[0, :, 0] = 0.4
    beta = _cells(3.0)
    beta[:, :, 0] = 3.5
    return Truth("study-like", acc, null_truth().acc_sd, unstable, beta,
                 null_truth().log_beta_sd, replicates, rho)


def truth_from_table(table: pd.DataFrame, name: str = "measured") -> Truth:
    """The truth a real metrics table suggests: per cell and norm, its stable runs' mean and
    sd of final validation accuracy, its rate of collapsed runs and of other unstable runs,
    and the mean and sd of log beta-smoothness; ``rho`` from the correlation of replicates'
    residuals across the cells of a norm, ``rho_norms`` from that of the paired differences'
    residuals."""
    paired = Paired(table)
    if len(paired.dropouts) > 1:
        raise ValueError("truth_from_table takes a grid without a dropout axis")
    acc = paired("final_val_acc")[:, :, 0]
    collapsed = np.nan_to_num(paired("collapsed")[:, :, 0]) > 0
    unstable = np.nan_to_num(paired("unstable")[:, :, 0]) > 0
    stable = np.where(collapsed, np.nan, acc)  # (lr, fc, rep, norm)
    excluded = collapsed | (np.nan_to_num(paired("diverged")[:, :, 0]) > 0)
    log_beta = np.where(excluded, np.nan, np.log(paired("beta_smoothness")[:, :, 0]))
    rho = _cross_cell_correlation(stable)
    rho_diff = _cross_cell_correlation(stable[..., 1:] - stable[..., :1])
    # differences of two factors correlated rho_norms: rho_diff = rho (1 - r) / (1 - rho r)
    rho_norms = (rho - rho_diff) / (rho * (1 - rho_diff)) if rho > 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell with < 2 stable runs

        def mean(a: np.ndarray) -> np.ndarray:
            return np.nan_to_num(np.nanmean(a, axis=2))

        def sd(a: np.ndarray) -> np.ndarray:
            return np.nan_to_num(np.nanstd(a, axis=2, ddof=1))

        stable_runs = np.maximum((~collapsed).sum(axis=2), 1)
        explained = {}
        if "ics_cosine" in table and table["ics_cosine"].notna().any():  # results 0.4.0 on
            ics = np.where(excluded, np.nan, paired("ics_cosine")[:, :, 0])
            log_grad = np.where(excluded, np.nan, np.log(paired("grad_change")[:, :, 0]))
            explained = {"ics": mean(ics), "ics_sd": sd(ics), "log_grad": mean(log_grad),
                         "log_grad_sd": sd(log_grad), "train_acc": mean(np.where(
                             collapsed, np.nan, paired("final_train_acc")[:, :, 0]))}
        return Truth(name, mean(stable), sd(stable), collapsed.mean(axis=2), mean(log_beta),
                     sd(log_beta), len(paired.seeds), max(rho, 0.0),
                     float(np.clip(rho_norms, 0.0, 1.0)), tuple(paired.lrs),
                     tuple(paired.fcs), tuple(paired.norms),
                     (unstable & ~collapsed).sum(axis=2) / stable_runs, **explained)


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
    """Draws simulated studies from a truth: ``arrays(rng)`` as arrays, ``table(rng)`` as a
    metrics table. The same generator state draws the same noise whatever the truth's means,
    so two truths that differ only in their means can be compared on common random numbers."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        t = truth
        self.shape = (len(t.lrs), len(t.fcs), t.replicates, len(t.norms))
        index = pd.MultiIndex.from_product([t.lrs, t.fcs, range(t.replicates), t.norms],
                                           names=["lr", "fc_units", "seed", "norm"])
        self.frame = index.to_frame(index=False).assign(
            dropout=0.0, split_seed=lambda f: f["seed"], n_val=480, num_classes=3, epochs=5)

    def arrays(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One study's metrics, each of shape (lr, fc, replicate, norm)."""
        from scipy.special import ndtri

        t, shape = self.truth, self.shape
        a, b = math.sqrt(t.rho), math.sqrt(1 - t.rho)
        c, d = math.sqrt(t.rho_norms), math.sqrt(1 - t.rho_norms)

        def correlated() -> np.ndarray:
            both = rng.standard_normal((1, 1, t.replicates, 1))
            shared = c * both + d * rng.standard_normal((1, 1, t.replicates, len(t.norms)))
            return a * shared + b * rng.standard_normal(shape)

        def cell(x: np.ndarray) -> np.ndarray:
            return x[:, :, None, :]

        with np.errstate(divide="ignore"):
            collapsed = correlated() < ndtri(cell(t.unstable))
            loss_up = correlated() < ndtri(cell(t.loss_up if t.loss_up is not None
                                                else np.zeros_like(t.acc)))
        noise = correlated()
        chance = CHANCE + 0.01 * rng.standard_normal(shape)
        acc = np.where(collapsed, chance, cell(t.acc) + cell(t.acc_sd) * noise)
        log_beta = cell(t.log_beta) + cell(t.log_beta_sd) * correlated()
        e = t.explained()
        train = np.where(collapsed, chance, cell(e["train_acc"]) + cell(t.acc_sd) * noise)
        ics = cell(e["ics"]) + cell(e["ics_sd"]) * correlated()
        log_grad = cell(e["log_grad"]) + cell(e["log_grad_sd"]) * correlated()
        return {"final_val_acc": acc, "test_acc": acc, "final_train_acc": train,
                "unstable": collapsed | loss_up, "collapsed": collapsed,
                "loss_up": loss_up & ~collapsed, "diverged": np.zeros(shape, dtype=bool),
                "beta_smoothness": np.exp(log_beta), "ics_cosine": ics,
                "grad_change": np.exp(log_grad)}

    def paired(self, rng: np.random.Generator) -> Paired:
        """One study as ``hypotheses.Paired`` arrays, without building a table."""
        arrays = {k: v[:, :, None] for k, v in self.arrays(rng).items()}  # a dropout axis
        return Paired.of_arrays(arrays, list(self.truth.lrs), list(self.truth.fcs),
                                list(self.truth.norms))

    def table(self, rng: np.random.Generator) -> pd.DataFrame:
        arrays = self.arrays(rng)
        return self.frame.assign(**{k: v.reshape(-1) for k, v in arrays.items()})


# -- what a truth's contrasts are --------------------------------------------------------------

@dataclass(frozen=True)
class TrueValues:
    """What each part of each verdict estimates under a truth (keyed by verdict name, in its
    parts' order), and a tolerance within which a truth counts as at its boundary (the Monte
    Carlo error of computing it, and more)."""

    values: dict[str, list[float]]
    tolerance: dict[str, list[float]]

    def __getitem__(self, name: str) -> list[float]:
        return self.values[name]


CENTERS = {"median": np.nanmedian, "mean": np.nanmean}


def contrasts(gathered: Gathered) -> dict[str, np.ndarray]:
    """Each verdict's contrasts per replicate, keyed by verdict name, ``.1``, ``.2`` ... when
    it has several (``H2.1``, ``H4-layernorm.2``)."""
    out = {}
    for name, e in zip(gathered.names, gathered.evidence, strict=True):
        arrays = values_of(e.claim)
        for k, a in enumerate(arrays, start=1):
            out[name if len(arrays) == 1 else f"{name}.{k}"] = a
    return out


def _part_values(truth: Truth, family: Family, replicates: int, seed: int,
                 center: str) -> dict[str, list[float]]:
    """verdict name -> what its parts estimate, from ``replicates`` simulated replicates."""
    paired = Simulator(truth.with_replicates(replicates)).paired(np.random.default_rng(seed))
    gathered = family.gather(paired, describe=False)
    return {name: e.claim.true_values(CENTERS[center])
            for name, e in zip(gathered.names, gathered.evidence, strict=True)}


@lru_cache(maxsize=64)
def _true_values_cached(key: tuple, truth: Truth, family: Family, replicates: int,
                        center: str) -> TrueValues:
    batches = [_part_values(truth, family, replicates // 20, 10_000 + i, center)
               for i in range(20)]
    whole = _part_values(truth, family, replicates, 2026, center)
    values, tolerance = {}, {}
    for name, parts in whole.items():
        values[name] = [float(v) for v in parts]
        # the whole run's Monte Carlo standard error, from 20 batches of a twentieth each
        se = [np.std([b[name][k] for b in batches], ddof=1) / math.sqrt(20)
              for k in range(len(parts))]
        tolerance[name] = [float(max(4 * e, 1e-6)) for e in se]  # 4 se, and at least 1e-6
    return TrueValues(values, tolerance)


def true_values(truth: Truth, family: Family, replicates: int = TRUE_REPLICATES,
                center: str = "median") -> TrueValues:
    """What each part of each verdict of ``family`` estimates under ``truth``: the claim's
    own estimand (the median of the replicates' contrast, a share, a reduction of sizes),
    computed on ``replicates`` simulated replicates with fixed random numbers.
    ``center="mean"`` gives the contrasts' means instead of their medians."""
    return _true_values_cached(truth.key(), truth, family, replicates, center)


# -- truths at the boundary ---------------------------------------------------------------------

def _pattern(truth: Truth, kind: str) -> np.ndarray:
    """(lr, fc) patterns that move one contrast by exactly 1 and leave the others: a uniform
    shift (mean), the lr slope, and the lr x fc_units interaction over the grid's span."""
    x = np.log10(np.array(truth.lrs))
    u = np.log2(np.array(truth.fcs))
    cx, cu = x - x.mean(), u - u.mean()
    if kind == "mean":
        return np.ones((len(x), len(u)))
    if kind == "slope":
        return np.repeat(cx[:, None], len(u), axis=1)  # least-squares slope of cx is 1
    if kind == "capacity":  # the change from the narrowest to the widest classifier
        w = span_weights(list(truth.fcs), math.log2)
        return np.repeat((cu / np.sum(w * cu))[None, :], len(x), axis=0)
    if kind == "returns":  # the first step's gain minus the second's (E4), mean 0
        returns = np.zeros(len(u))
        if len(u) >= 3:
            returns[[0, len(u) // 2, -1]] = [-1, 2, -1]
        return np.repeat(returns[None, :] / 6, len(x), axis=0)
    span = np.outer(span_weights(list(truth.lrs), math.log10),
                    span_weights(list(truth.fcs), math.log2))
    shape = np.outer(cx, cu)
    return shape / np.sum(span * shape)


def boundary_truth(base: Truth, family: Family, collapse: float = 0.1, name: str | None = None,
                   replicates: int = 40_000, sweeps: int = 40, center: str = "median"
                   ) -> Truth:
    """``base`` moved until every hypothesis of every arm is exactly at its boundary, the
    least favourable truth for the family: each arm worse than no-norm by H1's margin, equal
    lr slopes (H3), no-norm's accuracy at lr=0.01 equal to its accuracy at the lowest lr
    (H2's accuracy part) although its runs there collapse to chance with probability
    ``collapse`` (its stable runs there are better, to make up for it), an interaction twice
    H4's margin without normalization and H4's margin with each arm (so the reduction is the
    margin), equal log beta-smoothness (H5). The noise, correlations, instability elsewhere
    and per-cell log beta of ``base`` stay. Medians (``center="mean"``: means) are matched on
    ``replicates`` simulated replicates with common random numbers. They depend on ``rho``
    (how collapses cluster in replicates): build a boundary truth at the ``rho`` it is
    simulated at."""
    spec = declared()
    m1, m4, high = spec["H1"]["margin"], spec["H4"]["margin"], base.lrs.index(spec["H2"]["high_lr"])
    unstable = base.unstable.copy()
    unstable[high, :, 0] = collapse
    acc, log_beta = base.acc.copy(), base.log_beta.copy()
    explained = {k: v.copy() for k, v in base.explained().items()}
    arms = list(base.norms[1:])
    truth = replace(base, name=name or f"every hypothesis at its boundary"
                    f"{' (means)' if center == 'mean' else ''} ({base.name}, "
                    f"collapse {collapse:g} at lr={spec['H2']['high_lr']:g})",
                    unstable=unstable)
    low = len(base.lrs) - 1
    patterns = {kind: _pattern(base, kind)
                for kind in ("mean", "slope", "interaction", "capacity", "returns")}
    steps = [("H2.2", 0, None, "low", 0.0), ("H4.1", 0, None, "interaction", -2 * m4)]
    for k, arm in enumerate(arms, start=1):  # contrast, norm axis, arm, what moves it, target
        steps += [("H1", k, arm, "mean", -m1), ("H3", k, arm, "slope", 0.0),
                  ("H4.2", k, arm, "interaction", -m4), ("H5", k, arm, "beta", 0.0)]
    if "E1" in family.names:  # the explanatory family: E3 and E4 of each arm and of none
        m3, m4e = spec["E3"]["margin"], spec["E4"]["margin"]
        for k, arm in enumerate(arms, start=1):
            steps += [("E1", k, arm, "ics", 0.0), ("E2", k, arm, "grad", 0.0),
                      ("E3.1", 0, arm, "train", m3), ("E3.2", k, arm, "train", m3),
                      ("E4.1", 0, arm, "returns", -m4e), ("E4.2", k, arm, "returns", -m4e)]
    for _ in range(sweeps):
        moved = 0.0
        for contrast, k, arm, kind, target in steps:
            truth = replace(truth, acc=acc, log_beta=log_beta, **explained)
            paired = Simulator(truth.with_replicates(replicates)).paired(
                np.random.default_rng(7))
            c = contrasts(family.gather(paired, describe=False))
            hypothesis, _, part = contrast.partition(".")
            key = verdict_name(hypothesis, arm or arms[0], arms) + (f".{part}" if part else "")
            if key not in c:  # not asked on this grid (E4 on two widths)
                continue
            error = float(CENTERS[center](c[key])) - target
            moved = max(moved, abs(error))
            if kind == "low":
                acc[low, :, 0] -= error
            elif kind == "beta":
                log_beta[:, :, k] += error
            elif kind == "grad":
                explained["log_grad"][:, :, k] += error
            elif kind == "ics":
                explained["ics"][:, :, k] -= error
            elif kind == "train":
                explained["train_acc"][:, :, k] -= error * patterns["capacity"]
            else:
                acc[:, :, k] -= error * patterns[kind]
        if moved < 1e-5:
            break
    return replace(truth, acc=acc, log_beta=log_beta, **explained)


def norms_truth(base: Truth, names: tuple[str, ...] = ("none", "batchnorm", "layernorm",
                                                        "groupnorm")) -> Truth:
    """``base`` (none and one arm) widened to several arms for the norms grid's family: each
    new arm a copy of ``base``'s arm, its noise uneven (layernorm's sd as no-norm's, groupnorm's
    1.5 times the arm's), so that ``boundary_truth`` of it puts every hypothesis of three arms
    at its boundary."""
    def widen(a: np.ndarray, scales: list[float] | None = None) -> np.ndarray:
        out = [a[..., 0]] + [a[..., 1] * (scales[i] if scales else 1.0)
                             for i in range(len(names) - 1)]
        return np.stack(out, axis=-1)

    sd = widen(base.acc_sd, [1.0, 1.0, 1.5])
    sd[..., 2] = base.acc_sd[..., 0]
    loss_up = base.loss_up if base.loss_up is not None else np.zeros_like(base.acc)
    return replace(base, name=f"{base.name}, {len(names) - 1} arms", acc=widen(base.acc),
                   acc_sd=sd, unstable=widen(base.unstable), log_beta=widen(base.log_beta),
                   log_beta_sd=widen(base.log_beta_sd), norms=names, loss_up=widen(loss_up),
                   **{k: widen(v) for k, v in base.explained().items()})


# -- verdicts against the truth ----------------------------------------------------------------

OUTCOME_CLAIM = {"holds": HOLDS, "non-inferior": HOLDS, "superior": SUPERIOR, "refuted": REFUTED}


def claim_is_false(name: str, claim: str, truth: TrueValues, gathered: Gathered) -> bool:
    """Whether ``claim`` (holds, superior, refuted) of verdict ``name`` is false under the
    truth. A truth within its tolerance of a boundary counts as at the boundary, where the
    claims on both sides are false."""
    evidence = gathered.evidence[gathered.names.index(name)]
    return evidence.claim.is_false(claim, truth.values[name], truth.tolerance[name])


def false_verdict(name: str, verdict: str, truth: TrueValues, gathered: Gathered) -> bool:
    """Whether ``verdict`` claims something the truth contradicts (inconclusive never does; a
    superior verdict claims "holds" too)."""
    if verdict == "inconclusive":
        return False
    if verdict == "superior" and claim_is_false(name, HOLDS, truth, gathered):
        return True
    return claim_is_false(name, OUTCOME_CLAIM[verdict], truth, gathered)


def rate(k: int, n: int) -> tuple[float, float, float]:
    """A simulated rate with its Clopper-Pearson 95% interval."""
    p = Proportion(k, n, 0.95)
    return (k / n if n else math.nan), p.low, p.high


@dataclass(frozen=True)
class Calibration:
    """How the verdicts behaved on ``sims`` studies simulated from one truth. Counts are of
    studies; ``rate`` turns one into a share with its Clopper-Pearson interval."""

    truth: Truth
    sims: int
    outcomes: dict[str, dict[str, int]]  # verdict -> outcome -> studies
    false: dict[str, int]  # verdict -> studies where it was false
    families_false: dict[str, int]  # family -> studies with any false verdict in it
    covered: dict[str, int]  # contrast -> studies whose 95% interval covered its true value
    p_values: dict[str, list[float]]  # claim whose null holds under the truth -> its p-values
    all_decided: int = 0  # studies where no verdict was inconclusive

    @property
    def rates(self) -> dict[str, dict[str, float]]:
        return {v: {o: n / self.sims for o, n in outcomes.items()}
                for v, outcomes in self.outcomes.items()}

    @property
    def family_false(self) -> int:
        """Studies with a false verdict in the worst family (each is controlled on its own)."""
        return max(self.families_false.values(), default=0)

    @property
    def family_rate(self) -> tuple[float, float, float]:
        return rate(self.family_false, self.sims)

    @property
    def coverage(self) -> dict[str, float]:
        return {k: n / self.sims for k, n in self.covered.items()}

    def validity(self, q: float) -> dict[str, tuple[int, int]]:
        """Per claim false under the truth: how many of its p-values were at most ``q``, of
        how many."""
        return {k: (int(np.sum(np.array(p) <= q)), len(p)) for k, p in self.p_values.items()}


def calibrate(truth: Truth, family: Family, sims: int, seed: int = 0,
              center: str = "median") -> Calibration:
    """Judge ``sims`` simulated studies as the suite does and count verdicts, false verdicts,
    95% coverage and the p-values of claims that are false under the truth (``center``:
    which truth, see ``true_values``)."""
    simulator, values = Simulator(truth), true_values(truth, family, center=center)
    alpha = family.alpha
    outcomes: dict[str, dict[str, int]] = {}
    false: dict[str, int] = {}
    covered: dict[str, int] = {}
    p_values: dict[str, list[float]] = {}
    families_false = dict.fromkeys(_groups(family), 0)
    all_decided = 0
    for i in range(sims):
        gathered = family.gather(simulator.paired(np.random.default_rng([seed, i])),
                                 describe=False)
        verdicts = gathered.verdicts(gathered.p, alpha, alpha)
        for key, p in gathered.p.items():
            name, claim = key.rsplit(":", 1)
            if claim_is_false(name, claim, values, gathered):
                p_values.setdefault(key, []).append(p)
        all_decided += all(v.outcome != "inconclusive" for v in verdicts)
        wrong_in = set()
        for v in verdicts:
            counts = outcomes.setdefault(v.name, {})
            counts[v.outcome] = counts.get(v.outcome, 0) + 1
            wrong = false_verdict(v.name, v.outcome, values, gathered)
            false[v.name] = false.get(v.name, 0) + wrong
            if wrong:
                wrong_in.add(family.group(v.hypothesis))
            for k, (part, true) in enumerate(zip(v.parts, values[v.name],
                                                 strict=True)):
                key = v.name if len(v.parts) == 1 else f"{v.name}.{k + 1}"
                e = part.estimate.at(0.95)
                covered[key] = covered.get(key, 0) + (e.low <= true <= e.high)
        for group in wrong_in:
            families_false[group] += 1
    return Calibration(truth, sims, outcomes, false, families_false, covered, p_values,
                       all_decided)


def _groups(family: Family) -> list[str]:
    """The family's families (primary, explanatory ...), in order."""
    return list(dict.fromkeys(family.group(n) for n in family.names))


@dataclass(frozen=True)
class SequentialCalibration:
    """How a sequential design behaved on ``sims`` studies simulated from one truth."""

    truth: Truth
    design: object  # sequential.Design
    sims: int
    decided: dict[str, int]  # verdict -> studies where it was decided
    false: dict[str, int]  # verdict -> studies with a false decision
    families_false: dict[str, int]  # family -> studies with any false decision in it
    replicates: list[int]  # replicates each study ran before it stopped
    all_decided: int  # studies that decided every hypothesis within the budget
    to_decide: dict[str, float]  # verdict -> mean replicates until decided (or the stop)
    futile: int = 0  # studies stopped early because every hypothesis left was futile

    @property
    def family_false(self) -> int:
        """Studies with a false decision in the worst family."""
        return max(self.families_false.values(), default=0)

    @property
    def family_rate(self) -> tuple[float, float, float]:
        return rate(self.family_false, self.sims)

    @property
    def mean_replicates(self) -> float:
        return float(np.mean(self.replicates))


def calibrate_sequential(truth: Truth, family: Family, design, sims: int,
                         seed: int = 0) -> SequentialCalibration:
    """Run ``design`` on ``sims`` studies drawn from ``truth`` with its full budget of
    replicates; each stops where the design says, and its decisions are checked."""
    from normcheck import sequential

    simulator = Simulator(truth.with_replicates(design.max_seeds))
    values = true_values(truth, family)
    claims = family.gather(simulator.paired(np.random.default_rng(seed)), describe=False)
    decided: dict[str, int] = {}
    false: dict[str, int] = {}
    to_decide: dict[str, float] = {}
    families_false = dict.fromkeys(_groups(family), 0)
    all_decided = futile = 0
    replicates = []
    for i in range(sims):
        run = sequential.take_looks(simulator.paired(np.random.default_rng([seed, i])), design,
                                    family)
        wrong_in = set()
        for v in run.verdicts():
            is_decided = v.outcome != "inconclusive"
            wrong = false_verdict(v.name, v.outcome, values, claims)
            decided[v.name] = decided.get(v.name, 0) + is_decided
            at = run.decided_at(v.name) or run.looks[-1].replicates
            to_decide[v.name] = to_decide.get(v.name, 0) + at / sims
            false[v.name] = false.get(v.name, 0) + wrong
            if wrong:
                wrong_in.add(family.group(v.hypothesis))
        for group in wrong_in:
            families_false[group] += 1
        replicates.append(run.looks[-1].replicates)
        all_decided += run.all_decided
        futile += run.stopped_for_futility
    return SequentialCalibration(truth, design, sims, decided, false, families_false,
                                 replicates, all_decided, to_decide, futile)
