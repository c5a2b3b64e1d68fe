"""The verdicts under known truths (normcheck.simulation), on fewer studies than
benchmarks/calibration.py: under least favourable truths (every hypothesis at its boundary,
no-norm's runs at lr=0.01 collapsing to chance with a replicate's collapses correlated, noise
as uneven as the full grid's) the family's false-verdict rate stays at most alpha and every
claim's p-value is valid at the levels the verdicts are read at; effects of the study's size
are found. The checks are also run with the statistics broken on purpose, where they must
fail."""

from dataclasses import replace

import numpy as np
import pytest
from helpers import FAMILY, TMean

from normcheck import contrasts, simulation
from normcheck.contrasts import Cells, Replicates
from normcheck.simulation import (
    boundary_truth,
    calibrate,
    claim_is_false,
    false_verdict,
    h1_margin_truth,
    h4_margin_truth,
    norms_truth,
    null_truth,
    study_truth,
    true_values,
    uneven_truth,
    unstable_null_truth,
)
from normcheck.stats import Proportion

SIMS = 300
ALPHA = 0.05
LEVELS = (0.025, 0.01, 0.005, 0.0025)  # one-sided: where the family's claims are judged


def at_most(k: int, n: int, rate: float) -> bool:
    """Consistent with a true rate of at most ``rate``: the exact 99% lower bound is."""
    return Proportion(k, n, 0.98).low <= rate


def valid(c, levels=LEVELS) -> dict[str, tuple[float, int, int]]:
    """Claims whose p-values are too often small: claim -> (level, hits, of)."""
    bad = {}
    for q in levels:
        for claim, (hits, n) in c.validity(q).items():
            if n and not at_most(hits, n, q):
                bad[claim] = (q, hits, n)
    return bad


@pytest.fixture(scope="module")
def least_favourable():
    """Every hypothesis at its boundary, collapses at lr=0.01 correlated within a replicate."""
    return boundary_truth(uneven_truth(10, rho=0.6), FAMILY, collapse=0.1)


def test_the_least_favourable_truth_is_at_every_boundary(least_favourable) -> None:
    values = true_values(least_favourable, FAMILY)
    for (key, part), target in {("H1", 0): -0.02, ("H2", 1): 0.0, ("H3", 0): 0.0,
                                ("H4", 0): 0.02, ("H5", 0): 0.0, ("E1", 0): 0.0,
                                ("E2", 0): 0.0, ("E3", 0): 0.02, ("E3", 1): 0.02,
                                ("E4", 0): -0.02, ("E4", 1): -0.02}.items():
        # within the Monte Carlo error of computing it (true_values' tolerance) and of
        # fitting the boundary (on 40,000 replicates, not 100,000: 1.6 times larger)
        assert abs(values[key][part] - target) <= 2.6 * values.tolerance[key][part], \
            (key, values[key])
    assert values["H2"][0] > 0.9  # no-norm collapses, BatchNorm does not
    claims = FAMILY.gather(simulation.Simulator(least_favourable).paired(
        np.random.default_rng(0)), describe=False)
    for claim in ("holds", "refuted"):
        assert all(claim_is_false(h, claim, values, claims)
                   for h in ("H1", "H3", "H4", "H5", "E1", "E2", "E3", "E4"))


def test_the_family_and_each_claim_keep_their_error_at_the_boundary(least_favourable) -> None:
    c = calibrate(least_favourable, FAMILY, SIMS)
    assert at_most(c.family_false, SIMS, ALPHA), c.false
    assert not valid(c), valid(c)


def test_version_4s_t_interval_fails_at_the_boundary(least_favourable, monkeypatch) -> None:
    """Broken on purpose: the t interval on means, at the means' own boundary, makes some
    claim's p-value far too often small (a replicate that saw no collapse looks like a clear
    deficit)."""
    truth = boundary_truth(uneven_truth(10, rho=0.6), FAMILY, collapse=0.1, center="mean")
    monkeypatch.setattr(contrasts, "estimate", TMean.of)
    assert valid(calibrate(truth, FAMILY, SIMS, center="mean"))


@pytest.mark.parametrize("truth", [h1_margin_truth(10), h4_margin_truth(10),
                                   unstable_null_truth(10), null_truth(10, rho=0.0)],
                         ids=lambda t: t.name)
def test_one_hypothesis_at_its_boundary(truth) -> None:
    c = calibrate(truth, FAMILY, SIMS)
    assert at_most(c.family_false, SIMS, ALPHA) and not valid(c), (c.false, valid(c))
    assert all(Proportion(n, SIMS, 0.98).high >= 0.95 for n in c.covered.values()), c.coverage


def test_the_norms_grids_hypotheses_at_their_boundaries() -> None:
    """Three arms: fifteen primary hypotheses and twelve explanatory ones, each family at
    most alpha."""
    truth = boundary_truth(norms_truth(uneven_truth(10, rho=0.6)), FAMILY, replicates=20_000)
    c = calibrate(truth, FAMILY, 100)
    assert len(c.outcomes) == 27 and set(c.families_false) == {"primary", "explanatory"}
    assert at_most(c.family_false, 100, ALPHA), c.false


def test_effects_of_the_studys_size_are_found() -> None:
    c = calibrate(study_truth(20), FAMILY, SIMS)
    assert c.rates["H1"].get("superior", 0) >= 0.95, c.rates["H1"]
    assert c.rates["H3"].get("holds", 0) >= 0.8, c.rates["H3"]
    assert c.rates["H2"].get("holds", 0) >= 0.5, c.rates["H2"]
    assert at_most(c.family_false, SIMS, ALPHA)


def test_truths_are_compared_with_a_tolerance() -> None:
    """A boundary computed as -3e-18 is the boundary: claims on both sides are false."""
    values = true_values(h1_margin_truth(), FAMILY)
    claims = FAMILY.gather(simulation.Simulator(h1_margin_truth()).paired(
        np.random.default_rng(0)), describe=False)
    shifted = replace(values, values={**values.values, "H1": [-0.02 - 3e-18]})
    for verdict in ("non-inferior", "refuted"):
        assert false_verdict("H1", verdict, shifted, claims)
    assert false_verdict("H1", "superior", shifted, claims)
    assert not false_verdict("H1", "inconclusive", shifted, claims)


def max_minus_min(cells: Cells) -> Replicates:
    """Version 1's lr-sensitivity, as a negative slope: max - min over lr of each replicate's
    mean over its other cells."""
    means = np.nanmean(cells.values, axis=(1, 2))  # (lr, replicate)
    return Replicates(-(np.nanmax(means, axis=0) - np.nanmin(means, axis=0)))


def test_no_contrast_moves_with_noise(monkeypatch) -> None:
    """No effect, no-norm far noisier than BatchNorm: every contrast's true value is its
    null. Broken on purpose (H3 with version 1's max - min), the noisier norm looks more
    lr-sensitive."""
    values = true_values(null_truth(), FAMILY)
    nulls = {"H1": [0.0], "H2": [0.5, 0.0], "H3": [0.0], "H4": [0.0], "H5": [0.0]}
    for key, null in nulls.items():
        assert np.all(np.abs(np.subtract(values[key], null)) <= values.tolerance[key]), \
            (key, values[key])
    monkeypatch.setattr(Cells, "lr_slope", max_minus_min)
    simulation._true_values_cached.cache_clear()
    try:
        assert true_values(null_truth(), FAMILY)["H3"][0] > 0.02
    finally:
        simulation._true_values_cached.cache_clear()


def test_the_replicate_is_the_unit(monkeypatch) -> None:
    """Broken on purpose: each (cell, replicate) taken as its own observation (the cells of a
    replicate are correlated) makes the intervals cover far too rarely."""
    truth = replace(null_truth(10), rho=0.6, rho_norms=0.0)
    assert Proportion(calibrate(truth, FAMILY, 150).covered["H1"], 150, 0.98).high >= 0.95

    def per_cell(cells: Cells) -> Replicates:
        return Replicates(np.moveaxis(cells.values, 3, 0).reshape(-1))

    monkeypatch.setattr(Cells, "mean", per_cell)
    assert calibrate(truth, FAMILY, 150).covered["H1"] / 150 < 0.85
