"""The exact tests over replicates (normcheck.stats), checked by simulation under known truths
at the levels the verdicts are read at, with a binomial interval on every simulated rate.

Each property is also checked against code broken on purpose (version 4's t interval, the cell
instead of the replicate as the unit): the property must fail there, or the test would assert
nothing.
"""

import math

import numpy as np
import pytest
from helpers import TMean
from scipy import stats as scipy_stats

from normcheck.stats import Median, Proportion, Reduction, from_dict, holm, needs, sign_tail

SIMS = 4000
LEVELS = (0.025, 0.01, 0.005, 0.001)  # one-sided: the family's first levels and a late look's


def at_most(hits: int, n: int, q: float) -> bool:
    """A simulated rate is consistent with being at most ``q``: its exact 99.9% lower
    Clopper-Pearson bound is at most q."""
    return Proportion(hits, n, 0.998).low <= q


def collapse_mixture(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """(n, replicates) contrasts shaped like no-norm's accuracy drop at lr=0.01 under a least
    favourable truth: most replicates see no collapse and sit a little below 0, a few see one
    and jump far above; centred so that the MEDIAN is exactly 0 (its mean is above 0)."""
    jump = rng.random((n, replicates)) < 0.15
    values = 0.03 * rng.standard_normal((n, replicates)) + np.where(jump, 0.25, 0.0)
    median = np.median(0.03 * rng.standard_normal(400_000) +
                       np.where(rng.random(400_000) < 0.15, 0.25, 0.0))
    return values - median


@pytest.mark.parametrize("replicates", [5, 10, 40])
def test_the_sign_test_is_exact_under_a_collapse_mixture(replicates: int) -> None:
    """P(p <= q) <= q at every level used, in both directions, at the median's boundary."""
    d = collapse_mixture(np.random.default_rng(replicates), SIMS, replicates)
    estimates = [Median.of(row) for row in d]
    for q in LEVELS:
        for side in ("p_above", "p_below"):
            hits = sum(getattr(e, side)(0.0) <= q for e in estimates)
            assert at_most(hits, SIMS, q), (side, q, hits)


def mean_mixture(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """The same mixture centred so that its MEAN is exactly 0: t's boundary."""
    jump = rng.random((n, replicates)) < 0.15
    return 0.03 * rng.standard_normal((n, replicates)) + np.where(jump, 0.25, 0.0) - 0.15 * 0.25


def test_version_4s_t_interval_fails_under_the_same_mixture() -> None:
    """Broken on purpose: at the mean's boundary the t test's 'below' side is several times
    too often significant (replicates that saw no collapse look like a clear deficit)."""
    d = mean_mixture(np.random.default_rng(3), SIMS, 10)
    hits = sum(TMean.of(row).p_below(0.0) <= 0.005 for row in d)
    assert not at_most(hits, SIMS, 0.005), hits


def test_a_median_interval_covers_at_least_its_level() -> None:
    rng = np.random.default_rng(1)
    for replicates in (10, 40):
        d = collapse_mixture(rng, SIMS, replicates)
        covered = sum(e.low <= 0 <= e.high for e in (Median.of(row) for row in d))
        assert Proportion(covered, SIMS, 0.998).high >= 0.95, (replicates, covered)
        k = Median.of(d[0])._count_needed(0.025)
        exact = 1 - 2 * sign_tail(replicates, k)  # the discrete level actually reached
        assert covered / SIMS == pytest.approx(exact, abs=0.015)


def test_the_replicate_is_the_unit() -> None:
    """Broken on purpose: a replicate's cells are correlated; treating each (cell, replicate)
    as its own observation makes the interval far too narrow."""
    rng = np.random.default_rng(2)
    cells, replicates, rho = 9, 10, 0.6
    shared = rng.standard_normal((SIMS, 1, replicates))
    own = rng.standard_normal((SIMS, cells, replicates))
    data = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own  # median 0 in every cell
    right = sum(e.low <= 0 <= e.high for e in (Median.of(x.mean(axis=0)) for x in data))
    wrong = sum(e.low <= 0 <= e.high for e in (Median.of(x.ravel()) for x in data[:500]))
    assert right / SIMS >= 0.95 and wrong / 500 < 0.85, (right, wrong)


def test_pairs_stay_together() -> None:
    """Arms that differ by about 0.03 in every pair, under a large common term: the paired
    interval is narrow; medians of the arms taken apart would carry the common term."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.6, 0.05, size=20)
    paired = Median.of(base + 0.03 + 0.001 * rng.standard_normal(20) - base)
    assert paired.value == pytest.approx(0.03, abs=0.002)
    assert paired.high - paired.low < 0.005


def test_identical_replicates_give_no_zero_width_interval_and_no_zero_p() -> None:
    same = Median.of([1 / 3] * 10)
    assert same.low == -math.inf and same.high == math.inf
    assert same.p_above(0) == 1.0 and same.p_below(1) == 1.0
    tied = Median.of([0.2] * 12 + [0.1, 0.3])  # every order statistic used is 0.2
    assert tied.low < 0.2 < tied.high
    assert Proportion(3, 3).low < Proportion(3, 3).high and Proportion(3, 3).p_above(0.5) > 0
    assert Proportion(0, 0).p_above(0.5) == 1.0


def test_p_values_are_where_the_interval_reaches_the_margin() -> None:
    e = Median.of(np.linspace(-0.01, 0.09, 15))
    for margin in (-0.02, 0.0, 0.01):
        p = e.p_above(margin)
        assert e.at(1 - 2 * p).low > margin
        assert not e.at(1 - 2 * p * 0.99).low > margin  # a stricter level: not made
    assert e.p_above(0.2) == 1.0 and e.p_below(-0.2) == 1.0
    assert e.p_above(-0.02) == sign_tail(15, 15) == 2 ** -15


def test_a_sign_test_needs_its_replicates() -> None:
    assert needs(0.005) == 8 and needs(1 / 1024) == 10
    clear = Median.of(np.full(7, 0.05) + np.arange(7) * 1e-3)
    assert clear.p_above(0) == 2 ** -7 > 0.005  # seven replicates cannot decide at 0.005


def test_the_binomial_test_is_exact_and_its_interval_is_clopper_pearson() -> None:
    p = Proportion(14, 14)
    assert p.p_above(0.5) == pytest.approx(0.5 ** 14)
    ci = scipy_stats.binomtest(9, 12).proportion_ci(0.95, method="exact")
    assert Proportion(9, 12).low == pytest.approx(ci.low) and \
        Proportion(9, 12).high == pytest.approx(ci.high)
    assert Proportion(9, 12).p_below(0.5) == pytest.approx(scipy_stats.binom.cdf(9, 12, 0.5))


class PointB(Reduction):
    """Broken on purpose: b taken at its estimate, its interval ignored."""

    def bounds(self, a: float) -> tuple[float, float]:
        small, large = self._sizes(*self.a.bounds(a / 3))
        return small - abs(self.b.value), large - abs(self.b.value)


def test_a_reduction_is_valid_at_its_boundary() -> None:
    """|a| - |b| exactly at 0.02, a precise and b noisy: the claim is made no more often than
    its level (the projection is conservative). Broken on purpose (b's interval ignored), it
    is made about half the time."""
    rng = np.random.default_rng(5)
    q = 0.01
    right = wrong = 0
    for _ in range(2000):
        a = Median.of(0.30 + 0.002 * rng.standard_normal(20))
        b = Median.of(0.28 + 0.04 * rng.standard_normal(20))
        right += Reduction(a, b).p_above(0.02) <= q
        wrong += PointB(a, b).p_above(0.02) <= q
    assert at_most(right, 2000, q), right
    assert not at_most(wrong, 2000, q), wrong


def test_estimates_round_trip_through_their_dicts() -> None:
    m = Median.of([0.1, 0.2, float("nan"), 0.3])
    r = Reduction(m, Median.of([0.0, 0.1, 0.05]))
    for e in (m, Proportion(3, 5, 0.99), r):
        back = from_dict(e.to_dict())
        assert back == e and str(back) == str(e)
    assert m.missing == 1 and m.n == 3


def test_holm() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
