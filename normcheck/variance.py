"""Which factor matters most: each arm's variance of a metric over the grid, split into the
shares of lr, fc_units, their interaction and replicate-to-replicate noise, with intervals.

The original study's reflection ("the learning rate was the dominant factor") is a statement
about these shares. The quantity estimated is omega-squared: each effect's variance per run
(the mean square of its effects over the grid) and the noise's (the variance of one run around
its cell's mean), each over their sum. Read from noisy cell means, sums of squares overstate
every effect: with R replicates per cell, noise alone adds (I - 1) sigma^2 to lr's sum of
squares, (J - 1) sigma^2 to fc_units' and (I - 1)(J - 1) sigma^2 to the interaction's, sigma^2
being the variance of one run around its cell and replicate. So each effect's sum of squares
has that expected noise subtracted (sigma^2 estimated from the residuals of cell x replicate,
with (IJ - 1)(R - 1) degrees of freedom); the share shown is clipped at 0, which leaves a small
upward bias for an effect that is truly 0. A replicate (its seed and split)
is shared by every cell, so its own shift cancels from every effect and is part of the noise.

The intervals resample whole replicates: the jackknife (each replicate left out in turn, the
same one from every arm, so that arms' shares are compared with an interval on the difference)
gives the standard error of the unclipped estimate, and the interval is that estimate +-
t(R - 1) standard errors, clipped to [0, 1] (to [-1, 1] for a difference). Simulated from truths
fitted to the full grid's runs (benchmarks/README.md), the nominal 95% intervals covered 90% to
98% of the time at R = 5 and 10; a percentile bootstrap over replicates, tried first, covered
70% to 81% for the noise share and 84% to 89% for no-norm's lr share.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from normcheck.contrasts import Paired

FACTORS = ("lr", "fc_units", "lr x fc_units", "noise")
LEVEL = 0.95


def shares(values: np.ndarray, clip: bool = True) -> np.ndarray:
    """The four shares (``FACTORS``) of ``values`` shaped (lr, fc_units, replicate): each
    effect's variance per run and the noise's, over their sum (``clip=False``: an effect's
    corrected variance may be below 0, as the intervals need)."""
    n_lr, n_fc, n_rep = values.shape
    cells = values.mean(axis=2)
    grand = cells.mean()
    lr = cells.mean(axis=1) - grand
    fc = cells.mean(axis=0) - grand
    both = cells - grand - lr[:, None] - fc[None, :]
    within = values - cells[..., None]
    sums = n_rep * np.array([n_fc * np.sum(lr ** 2), n_lr * np.sum(fc ** 2), np.sum(both ** 2)])
    residual = within - (values.mean(axis=(0, 1)) - grand)[None, None, :]
    sigma2 = np.sum(residual ** 2) / ((n_lr * n_fc - 1) * (n_rep - 1))
    sums = sums - sigma2 * np.array([n_lr - 1, n_fc - 1, (n_lr - 1) * (n_fc - 1)])
    if clip:
        sums = np.maximum(0.0, sums)
    parts = np.append(sums / (n_lr * n_fc * n_rep),
                      np.sum(within ** 2) / (n_lr * n_fc * (n_rep - 1)))
    total = parts.sum()
    return parts / total if total > 0 else np.array([0.0, 0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Decomposition:
    """Each arm's shares and their intervals, and each arm's difference from none."""

    metric: str
    arms: tuple[str, ...]  # none first
    point: np.ndarray  # (arm, factor)
    low: np.ndarray
    high: np.ndarray
    diff_point: np.ndarray  # (arm - none, factor), rows for arms[1:]
    diff_low: np.ndarray
    diff_high: np.ndarray
    replicates: int
    dropped: int  # replicates left out: a run without a value
    where: str = ""  # " at dropout=0.2" when the grid has several

    def markdown(self) -> str:
        """The shares per arm, and each arm minus none, as a markdown table."""
        def cell(p: float, lo: float, hi: float, sign: str = "") -> str:
            return f"{p:{sign}.2f} [{lo:{sign}.2f}, {hi:{sign}.2f}]"

        head = "| arm | " + " | ".join(FACTORS) + " |"
        rows = [head, "|---" * (len(FACTORS) + 1) + "|"]
        for k, arm in enumerate(self.arms):
            rows.append(f"| {arm} | " + " | ".join(
                cell(self.point[k, f], self.low[k, f], self.high[k, f])
                for f in range(len(FACTORS))) + " |")
        for k, arm in enumerate(self.arms[1:]):
            rows.append(f"| {arm} - none | " + " | ".join(
                cell(self.diff_point[k, f], self.diff_low[k, f], self.diff_high[k, f], "+")
                for f in range(len(FACTORS))) + " |")
        note = (f"Shares of the variance of {self.metric} over the grid{self.where}, each arm "
                f"on its own ({self.replicates} replicates; {LEVEL:.0%} jackknife-t intervals "
                "over whole replicates, the same left out of every arm; effects corrected for "
                "the noise they carry, see normcheck/variance.py).")
        if self.dropped:
            note += f" {self.dropped} replicates without a value in every run left out."
        return note + "\n\n" + "\n".join(rows)


def decompose(paired: Paired, metric: str, dropout: int = 0) -> Decomposition:
    """The shares of ``metric`` for every arm of ``paired`` (at its ``dropout``-th dropout),
    with jackknife-t intervals over whole replicates."""
    values = paired(metric)[:, :, dropout]  # (lr, fc, replicate, norm)
    kept = np.isfinite(values).all(axis=(0, 1, 3))
    values = values[:, :, kept]
    n_rep, n_norm = values.shape[2], values.shape[3]
    if n_rep < 3 or len(paired.lrs) < 2 or len(paired.fcs) < 2:
        raise ValueError(f"the variance shares need two or more lrs and fc_units and three or "
                         f"more complete replicates; the grid has lr={list(paired.lrs)}, "
                         f"fc_units={list(paired.fcs)} and {n_rep} complete replicates")
    point = np.array([shares(values[..., k]) for k in range(n_norm)])
    raw = np.array([shares(values[..., k], clip=False) for k in range(n_norm)])
    leave_out = np.array([[shares(np.delete(values[..., k], r, axis=2), clip=False)
                           for k in range(n_norm)] for r in range(n_rep)])  # (rep, arm, factor)
    q = float(scipy_stats.t.ppf(1 - (1 - LEVEL) / 2, n_rep - 1))

    def interval(estimate: np.ndarray, jack: np.ndarray, low: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        se = np.sqrt((n_rep - 1) / n_rep * np.sum((jack - jack.mean(axis=0)) ** 2, axis=0))
        return np.clip(estimate - q * se, low, 1.0), np.clip(estimate + q * se, low, 1.0)

    def around(estimate: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray]:
        """The interval, widened where needed to hold the (clipped) estimate shown."""
        return np.minimum(bounds[0], estimate), np.maximum(bounds[1], estimate)

    diff = point[1:] - point[:1]
    return Decomposition(metric, tuple(paired.norms), point,
                         *around(point, interval(raw, leave_out, 0.0)), diff,
                         *around(diff, interval(raw[1:] - raw[:1],
                                                leave_out[:, 1:] - leave_out[:, :1], -1.0)),
                         n_rep, int((~kept).sum()),
                         f" at dropout={paired.dropouts[dropout]:g}"
                         if len(paired.dropouts) > 1 else "")
