"""Statistics for the verdicts: a bootstrap over whole replicates, t intervals, Holm's procedure.

The unit that varies is the replicate: its seed (weights, batch order, dropout) and its
train/validation split are shared by every cell and arm, so its results are correlated
across them. Each bootstrap sample therefore draws one set of replicate indices and applies it
to every cell and every arm at once; a replicate's values stay together, pairs included.

With 5 to 10 replicates a percentile interval is too narrow, so intervals are
``estimate +- t(R-1) x SE``, with the standard error from the bootstrap scaled by sqrt(R / (R-1))
(the bootstrap variance of a mean is (R-1)/R of the unbiased one). For a mean over replicates
this is the textbook t interval; for other statistics it is the same construction.
``benchmarks/calibration.py`` measures the coverage (docs/statistics.md).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

N_RESAMPLES = 4000
CONFIDENCE = 0.95


def _t_quantile(q: float, df):
    from scipy.special import stdtrit  # what scipy.stats.t.ppf calls; imports far faster

    return stdtrit(df, q)


def t_half_width(se, df, level: float = CONFIDENCE):
    """Half the width of a two-sided t interval at ``level`` (scalars or arrays)."""
    return _t_quantile(0.5 + level / 2, df) * se


def _t_sf(x: float, df: int) -> float:
    from scipy.special import stdtr  # scipy.stats.t.sf is stdtr(df, -x)

    return float(stdtr(df, -x))


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its standard error over replicates, and a t interval at ``level``."""

    value: float
    se: float
    df: int  # replicates - 1
    level: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        if self.df < 1 or not math.isfinite(self.se):
            return math.inf
        return float(t_half_width(self.se, self.df, self.level))

    @property
    def low(self) -> float:
        return self.value - self.half_width

    @property
    def high(self) -> float:
        return self.value + self.half_width

    def at(self, level: float) -> "Estimate":
        """The same estimate with its interval at another confidence level."""
        return replace(self, level=level)

    def p_above(self, margin: float) -> float:
        """The smallest ``1 - level`` at which the interval lies above ``margin``."""
        return self._p(self.value - margin)

    def p_below(self, margin: float) -> float:
        """The smallest ``1 - level`` at which the interval lies below ``margin``."""
        return self._p(margin - self.value)

    def p_within(self, margin: float) -> float:
        """The smallest ``1 - level`` at which the interval lies inside ``(-margin, margin)``."""
        return max(self.p_above(-margin), self.p_below(margin))

    def p_outside(self, margin: float) -> float:
        """The smallest ``1 - level`` at which the interval lies wholly beyond ``+-margin``."""
        return min(self.p_above(margin), self.p_below(-margin))

    def _p(self, distance: float) -> float:
        if math.isnan(self.value) or self.df < 1 or not math.isfinite(self.se):
            return 1.0
        if self.se == 0:
            return 0.0 if distance > 0 else 1.0
        return min(1.0, 2 * _t_sf(distance / self.se, self.df))

    def __str__(self) -> str:
        return f"{self.value:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def resample_replicates(data: np.ndarray, axis: int, n_resamples: int = N_RESAMPLES,
                        seed: int = 0) -> np.ndarray:
    """Bootstrap samples of ``data`` along its replicate ``axis``, stacked on a new first axis.

    One draw of replicate indices per sample serves the whole array, so every cell and every
    arm of a replicate is kept, and moved, together.
    """
    n = data.shape[axis]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    moved = np.moveaxis(data, axis, 0)  # (R, ...)
    return np.moveaxis(moved[idx], 1, axis + 1)  # (B, ..., R at axis + 1, ...)


def replicate_bootstrap(data: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
                        axis: int, n_resamples: int = N_RESAMPLES, seed: int = 0,
                        level: float = CONFIDENCE) -> Estimate:
    """Estimate ``statistic`` with a t interval whose standard error comes from resampling
    whole replicates (``axis`` of ``data``).

    ``statistic`` maps an array of shape ``(batch, *data.shape)`` to one value per batch entry.
    """
    return replicate_bootstraps(data, lambda d: statistic(d)[:, None], axis, n_resamples, seed,
                                level)[0]


def replicate_bootstraps(data: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
                         axis: int, n_resamples: int = N_RESAMPLES, seed: int = 0,
                         level: float = CONFIDENCE) -> list[Estimate]:
    """Like :func:`replicate_bootstrap` for a statistic with several values, shape ``(batch,
    k)``, all estimated from the same bootstrap samples."""
    n = data.shape[axis]
    values = statistic(data[None])[0]
    if n < 2:
        return [Estimate(float(v), math.nan, 0, level) for v in values]
    draws = statistic(resample_replicates(data, axis, n_resamples, seed))
    out = []
    for value, column in zip(values, draws.T, strict=True):
        column = column[np.isfinite(column)]
        se = (float(np.std(column, ddof=1) * math.sqrt(n / (n - 1))) if len(column) > 1
              else math.nan)
        out.append(Estimate(float(value), se, n - 1, level))
    return out


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def holm_levels(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """The significance level Holm's procedure judges each hypothesis at.

    Sorted by p-value, the i-th (from 0) is judged at ``alpha / (m - i)`` as long as every
    earlier one was rejected; once one is not, it and all after it are judged at the level
    where the procedure stopped (none of them can be rejected).
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    levels = np.empty(m)
    stop = None
    for i, k in enumerate(np.argsort(p, kind="stable")):
        level = alpha / (m - i) if stop is None else stop
        if stop is None and not p[k] <= level:
            stop = level
        levels[k] = level
    return levels
