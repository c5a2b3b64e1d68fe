"""The group-sequential design (normcheck.sequential): what it spends, when it stops (decided,
budget, futility), that a claim once made stays made, that stored looks refuse another design,
and that optional stopping keeps the family's error under a least favourable truth. Broken on
purpose (every look at the full alpha), the error over looks is too large."""

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import FAMILY, OBSERVATIONS

from normcheck import sequential
from normcheck.multiplicity import over_looks
from normcheck.sequential import Design, DesignMismatch, LooksChanged, Rounds, spent
from normcheck.simulation import (
    Simulator,
    boundary_truth,
    calibrate_sequential,
    null_truth,
    study_truth,
    uneven_truth,
)
from normcheck.stats import Median, Proportion


@pytest.mark.parametrize("spending", sequential.SPENDING)
@pytest.mark.parametrize("first, round_, max_seeds", [(10, 5, 40), (3, 2, 12), (10, 10, 10)])
def test_the_looks_spend_alpha_and_no_more(spending, first, round_, max_seeds) -> None:
    design = Design(0.05, spending, first, round_, max_seeds)
    alphas = design.look_alphas()
    assert design.looks()[-1] == max_seeds and len(alphas) == len(design.looks())
    assert sum(alphas) == pytest.approx(0.05, abs=1e-12)
    assert all(a > 0 for a in alphas)


def test_pocock_spends_early_and_obrien_fleming_late() -> None:
    assert spent("pocock", 0.05, 1 / 4) > 0.01 > spent("obrien-fleming", 0.05, 1 / 4)
    assert spent("pocock", 0.05, 1.0) == pytest.approx(0.05)
    assert spent("obrien-fleming", 0.05, 1.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="spending 'linear'"):
        Design(spending="linear")


def test_the_registered_design_and_its_digest() -> None:
    design = Design.declared()
    assert (design.first, design.round, design.max_seeds, design.base_seed) == \
        (10, 5, 40, 100000)
    assert design.version == 7 and len(design.digest) == 12
    assert Design.declared(max_seeds=30).digest != design.digest


def test_over_looks_keeps_a_claims_error_at_its_level() -> None:
    """One contrast exactly at its boundary, looked at after 10, 15, ..., 40 replicates: a
    claim made at some look (p-value at most its share) no more often than the level. Broken
    on purpose (every look at the full level), it is made far too often."""
    rng = np.random.default_rng(0)
    values = rng.standard_exponential((4000, 40)) - np.log(2)  # skewed, median 0
    design, naive = Design(round=1), Design(round=1, naive=True)
    looks = design.looks()
    p = [[{"c": Median.of(row[:n]).p_above(0.0)} for n in looks] for row in values]

    def made(d: Design) -> int:
        return sum(over_looks(ps, d.look_alphas(), 0.05)["c"] <= 0.05 * 0.1 for ps in p)

    assert Proportion(made(design), 4000, 0.98).low <= 0.005
    assert Proportion(made(naive), 4000, 0.98).low > 0.005


def test_a_clear_effect_is_decided_early_and_stays_decided() -> None:
    design = Design(first=10, round=5, max_seeds=25)
    paired = Simulator(study_truth(replicates=25)).paired(np.random.default_rng(1))
    run = sequential.take_looks(paired, design, FAMILY)
    assert run.looks[0].replicates == 10 and run.looks[0].share == design.look_alphas()[0]
    for name in run.names:  # a claim once made stays made at every later look
        outcomes = [next(v for v in look.verdicts if v.name == name).outcome
                    for look in run.looks]
        first = next((i for i, o in enumerate(outcomes) if o != "inconclusive"), None)
        assert first is None or all(o != "inconclusive" for o in outcomes[first:])
    assert run.decided_at("H1") == 10 and run.done and run.next_replicates() is None


def test_a_look_needs_its_replicates() -> None:
    table = Simulator(null_truth(replicates=4)).table(np.random.default_rng(0))
    rounds = Rounds(Design(first=5, round=5, max_seeds=10), FAMILY)
    with pytest.raises(ValueError, match="look 1 needs 5 replicates; the table has 4"):
        rounds.look(table)
    assert sequential.take_looks(table, Design(first=5, round=5, max_seeds=10), FAMILY).looks == []


def test_a_study_with_only_futile_hypotheses_left_stops_and_says_what_it_saved() -> None:
    paired = Simulator(null_truth(replicates=40)).paired(np.random.default_rng(4))
    run = sequential.take_looks(paired, Design(), OBSERVATIONS)
    assert run.stopped_for_futility and run.looks[-1].replicates < 40
    assert run.saved == 40 - run.looks[-1].replicates
    text = run.markdown()
    assert f"Stopped for futility after {run.looks[-1].replicates} replicates" in text
    assert f"saved {run.saved} replicates of the budget of 40" in text
    assert "(rough, at the trend seen)" in text
    no_futility = sequential.take_looks(paired, Design(futility=0.0), FAMILY)
    assert no_futility.looks[-1].replicates == 40 and not no_futility.stopped_for_futility


def test_looks_read_back_the_same_and_refuse_another_design() -> None:
    design = Design(first=5, round=5, max_seeds=15)
    paired = Simulator(study_truth(replicates=15)).paired(np.random.default_rng(2))
    run = sequential.take_looks(paired, design, FAMILY)
    back = Rounds.from_dict(design, FAMILY, run.to_dict())
    assert back.verdicts() == run.verdicts()
    assert [look.replicates for look in back.looks] == [look.replicates for look in run.looks]
    with pytest.raises(DesignMismatch, match=f"taken under design {design.digest}"):
        Rounds.from_dict(Design(first=5, round=5, max_seeds=20), FAMILY, run.to_dict())


@pytest.mark.parametrize("changed", [{"max_seeds": 20}, {"round": 3}, {"first": 4},
                                     {"base_seed": 200000}, {"spending": "obrien-fleming"}])
def test_a_record_is_refused_under_any_other_design(changed: dict) -> None:
    """What the whole-session test (tests/test_rounds.py) shows for one option, for each."""
    design = Design(first=5, round=5, max_seeds=15)
    record = Rounds(design, FAMILY).to_record()
    sequential.check(design, record)
    with pytest.raises(DesignMismatch, match=f"taken under design {design.digest}"):
        sequential.check(replace(design, **changed), record)


def test_a_stores_record_is_small_and_its_looks_are_taken_again_on_the_same_runs() -> None:
    """The store keeps each look's p-values (an MLflow experiment tag holds 20,000
    characters); reading it back takes the looks again and refuses runs that changed."""
    design = Design(futility=0.0)
    paired = Simulator(study_truth(replicates=40)).paired(np.random.default_rng(5))
    run = sequential.take_looks(paired, design, FAMILY)
    record = run.to_record()
    assert len(json.dumps(record)) < 4000 and len(record["looks"]) == len(run.looks)
    back = Rounds.from_record(design, FAMILY, record, paired)
    assert back.verdicts() == run.verdicts()
    other = Simulator(study_truth(replicates=40)).paired(np.random.default_rng(6))
    with pytest.raises(LooksChanged, match="look 1 .* was taken on other runs"):
        Rounds.from_record(design, FAMILY, record, other)
    with pytest.raises(LooksChanged, match="the store now has the runs of 10"):
        Rounds.from_record(design, FAMILY, record, paired.first(10))
    with pytest.raises(DesignMismatch):
        Rounds.from_record(Design(), FAMILY, record, paired)


def test_the_rounds_section_shows_every_look() -> None:
    design = Design(first=5, round=5, max_seeds=15, futility=0.0)
    paired = Simulator(study_truth(replicates=15)).paired(np.random.default_rng(2))
    run = sequential.take_looks(paired, design, FAMILY)
    text = run.markdown()
    assert "pocock spending function" in text and design.digest in text
    for look in run.looks:
        assert f"{look.replicates} replicates (share {look.share:.4f})" in text
    for name in run.names:
        at = run.decided_at(name)
        assert f"| {name} |" in text and (f"after {at} replicates" in text if at else True)


SIMS = 150


def test_optional_stopping_keeps_the_family_error_at_the_boundary() -> None:
    truth = boundary_truth(uneven_truth(rho=0.6), FAMILY)
    c = calibrate_sequential(truth, FAMILY, Design(), SIMS)
    assert Proportion(c.family_false, SIMS, 0.98).low <= 0.05, c.false
