"""The replicate bootstrap's properties, checked by simulation under known truth.

Each property is also checked against a deliberately broken variant of the code (resampling
within cells, splitting pairs, the wrong quantile): the property must fail there, or the test
would assert nothing.
"""

import numpy as np
import pytest
from conftest import within_cells
from scipy import stats as scipy_stats

from normcheck import stats
from normcheck.stats import Estimate, holm, holm_levels, replicate_bootstrap

CELLS, REPLICATES, RHO, SIMS = 9, 5, 0.3, 1000
JOINT = stats.resample_replicates  # the real one, kept before tests patch it


def paired_study(rng: np.random.Generator, replicates: int = REPLICATES) -> np.ndarray:
    """(cell, replicate, arm) accuracies with no true difference between arms.

    Both arms of a pair share a large common term (same seed, same split); the arms also
    differ by noise that is correlated across a replicate's cells with correlation RHO.
    """
    common = 0.05 * rng.standard_normal((CELLS, replicates, 1))
    shared = rng.standard_normal((1, replicates, 2))
    own = rng.standard_normal((CELLS, replicates, 2))
    return 0.6 + common + 0.01 * (np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * own)


def mean_difference(d: np.ndarray) -> np.ndarray:
    """(batch, cell, replicate, arm) -> (batch,): mean over cells and replicates of arm 1 - 0."""
    return (d[..., 1] - d[..., 0]).mean(axis=(1, 2))


def coverage(sims: int = SIMS, replicates: int = REPLICATES) -> float:
    """Share of 95% intervals of the mean difference that cover its true value, 0."""
    rng = np.random.default_rng(2026)
    hits = 0
    for i in range(sims):
        e = replicate_bootstrap(paired_study(rng, replicates), mean_difference, axis=1,
                                n_resamples=500, seed=i)
        hits += e.low <= 0 <= e.high
    return hits / sims


def test_interval_covers_at_its_level_with_replicates_correlated_across_cells() -> None:
    assert 0.93 <= coverage() <= 0.97


def pairs_split(data: np.ndarray, axis: int, n_resamples: int, seed: int) -> np.ndarray:
    """Broken on purpose: replicates drawn jointly over cells, but separately for each arm."""
    arms = [JOINT(data[..., k], axis, n_resamples, seed + k)
            for k in range(data.shape[-1])]
    return np.stack(arms, axis=-1)


@pytest.mark.parametrize("broken, why", [
    (within_cells, "resampling within each cell ignores the replicate's correlation: too narrow"),
    (pairs_split, "split pairs carry the common term into the difference: too wide"),
])
def test_a_wrong_resampling_unit_or_split_pairs_fail_the_coverage_check(
        monkeypatch: pytest.MonkeyPatch, broken, why: str) -> None:
    monkeypatch.setattr(stats, "resample_replicates", broken)
    assert not 0.93 <= coverage() <= 0.97, why


@pytest.mark.parametrize("quantile", [
    lambda q, df: float(scipy_stats.norm.ppf(q)),  # normal instead of t: too narrow at R=5
    lambda q, df: float(scipy_stats.t.ppf(q - 0.025, df)),  # a one-sided 95% quantile
])
def test_a_wrong_quantile_fails_the_coverage_check(monkeypatch: pytest.MonkeyPatch,
                                                  quantile) -> None:
    monkeypatch.setattr(stats, "_t_quantile", quantile)
    assert coverage() < 0.93


def test_pairs_stay_together() -> None:
    """Arms that differ by the same amount in every pair: the interval has no width. If pairs
    were split, the arms' large common term would make it wide."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.6, 0.05, size=(CELLS, REPLICATES, 1))
    data = np.concatenate([base, base + 0.03], axis=-1)
    e = replicate_bootstrap(data, mean_difference, axis=1)
    assert e.value == pytest.approx(0.03) and e.high - e.low == pytest.approx(0, abs=1e-12)


def test_one_draw_of_replicates_serves_every_cell() -> None:
    data = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # (cell, replicate, arm)
    drawn = stats.resample_replicates(data, axis=1, n_resamples=50, seed=1)
    assert drawn.shape == (50, 2, 3, 4)
    rows = (drawn - data[:, :1]) // 4  # the replicate index each (cell, slot, arm) came from
    assert (rows == rows[:, :1, :, :1]).all()  # the same for every cell and every arm


def test_a_mean_over_replicates_gets_the_textbook_t_interval() -> None:
    """For a mean, the bootstrap standard error scaled by sqrt(R/(R-1)) is s/sqrt(R)."""
    values = np.array([0.1, 0.4, 0.2, 0.5, 0.3])
    e = replicate_bootstrap(values[:, None], lambda d: d.mean(axis=(1, 2)), axis=0,
                            n_resamples=200_000)
    t = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert e.low == pytest.approx(t.low, rel=0.01) and e.high == pytest.approx(t.high, rel=0.01)


def test_p_values_are_where_the_interval_reaches_the_margin() -> None:
    e, inner, wide = Estimate(0.05, 0.02, 4), Estimate(0.005, 0.004, 4), Estimate(0.0, 0.05, 4)
    assert e.at(1 - e.p_above(0)).low == pytest.approx(0, abs=1e-9)
    assert e.at(1 - e.p_below(0.1)).high == pytest.approx(0.1, abs=1e-9)
    assert inner.at(1 - inner.p_within(0.02)).high == pytest.approx(0.02, abs=1e-9)
    assert e.at(1 - e.p_outside(0.01)).low == pytest.approx(0.01, abs=1e-9)
    for level in (0.9, 0.95, 0.99):
        assert (e.at(level).low > 0) == (e.p_above(0) < 1 - level)
        assert (-0.02 < inner.at(level).low and inner.at(level).high < 0.02) == \
            (inner.p_within(0.02) < 1 - level)
    assert wide.p_above(0) == wide.p_below(0) == 1.0
    assert Estimate(0.0, 0.0, 4).p_above(0) == 1.0 and Estimate(0.1, 0.0, 4).p_above(0) == 0.0


def test_holm() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
    # sorted 0.001, 0.011, 0.03, 0.04, 0.2: 0.001 <= 0.01, 0.011 <= 0.0125, 0.03 > 0.0167: stop
    levels = holm_levels(np.array([0.03, 0.001, 0.2, 0.011, 0.04]), 0.05)
    assert levels.tolist() == pytest.approx([0.05 / 3, 0.01, 0.05 / 3, 0.0125, 0.05 / 3])
    assert holm_levels(np.array([0.001, 0.002]), 0.05).tolist() == [0.025, 0.05]
