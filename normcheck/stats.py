"""Statistics for the verdicts: a stratified bootstrap over seeds, and Holm's correction."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 4000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def stratified_bootstrap(data: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
                         strata_dims: int, confidence: float = 0.95,
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """Bootstrap ``statistic`` by resampling seeds within each stratum (grid cell).

    ``data`` has shape ``(*strata, seeds, *rest)``: the first ``strata_dims`` axes are the cells,
    the next axis the seeds. A replicate's values along ``rest`` (e.g. both norms of a paired
    replicate) are resampled together. ``statistic`` maps an array of shape
    ``(batch, *strata, seeds, *rest)`` to one value per batch entry.
    """
    strata, n_seeds, rest = (data.shape[:strata_dims], data.shape[strata_dims],
                             data.shape[strata_dims + 1:])
    flat = data.reshape(-1, n_seeds, *rest)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_seeds, size=(n_resamples, flat.shape[0], n_seeds))
    resampled = flat[np.arange(flat.shape[0])[None, :, None], idx]
    values = statistic(resampled.reshape(n_resamples, *strata, n_seeds, *rest))
    point = float(statistic(data[None])[0])
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return Estimate(point, float(low), float(high))


def paired_pvalues(differences: np.ndarray) -> np.ndarray:
    """Two-sided one-sample t-test p-values of each row's mean difference against zero."""
    from scipy import stats as scipy_stats  # imported here: workers that only train skip it

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical rows: p is still valid
        result = scipy_stats.ttest_1samp(differences, 0.0, axis=1)
    # identical differences (zero variance) give NaN: no evidence either way
    return np.where(np.isnan(result.pvalue), 1.0, result.pvalue)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
