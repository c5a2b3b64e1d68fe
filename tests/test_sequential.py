"""The group-sequential design (normcheck.sequential): what it spends, when it stops, and that
optional stopping does not inflate the family's error under known truths. Broken on purpose
(every look at the full alpha), the null check fails."""

import numpy as np
import pytest

from normcheck import sequential
from normcheck.sequential import Design, spent
from normcheck.simulation import Simulator, calibrate_sequential, null_truth, study_truth


@pytest.mark.parametrize("spending", sequential.SPENDING)
@pytest.mark.parametrize("first, round_, max_seeds", [(5, 5, 30), (3, 2, 12), (10, 10, 10)])
def test_the_looks_spend_alpha_and_no_more(spending, first, round_, max_seeds) -> None:
    design = Design(0.05, spending, first, round_, max_seeds)
    alphas = design.look_alphas()
    assert design.looks()[-1] == max_seeds and len(alphas) == len(design.looks())
    assert sum(alphas) == pytest.approx(0.05, abs=1e-12)
    assert all(a > 0 for a in alphas)


def test_pocock_spends_early_and_obrien_fleming_late() -> None:
    assert spent("pocock", 0.05, 1 / 6) > 0.01 > spent("obrien-fleming", 0.05, 1 / 6)
    assert spent("pocock", 0.05, 1.0) == pytest.approx(0.05)
    assert spent("obrien-fleming", 0.05, 1.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="spending 'linear'"):
        Design(spending="linear")


def test_a_clear_effect_is_decided_at_the_first_look_and_kept() -> None:
    design = Design(first=5, round=5, max_seeds=20)
    table = Simulator(study_truth(replicates=20)).table(np.random.default_rng(1))
    run = sequential.run(table, design)
    assert run.looks[0].replicates == 5 and run.looks[0].alpha == design.look_alphas()[0]
    # every decision is the first one reached, at the look it was reached
    for name, (verdict, n) in run.decided.items():
        first = next(look for look in run.looks if look.replicates == n)
        assert verdict in first.verdicts and verdict.outcome != "inconclusive"
        assert all(v.outcome == "inconclusive" for look in run.looks if look.replicates < n
                   for v in look.verdicts if v.name == name)
    assert run.done and (len(run.decided) == len(run.names) or
                         run.looks[-1].replicates == 20)
    assert run.next_replicates() is None


def test_a_look_needs_its_replicates() -> None:
    table = Simulator(null_truth(replicates=4)).table(np.random.default_rng(0))
    run = sequential.Sequence(Design(first=5, round=5, max_seeds=10))
    with pytest.raises(ValueError, match="look 1 needs 5 replicates; the table has 4"):
        run.look(table)
    assert sequential.run(table, Design(first=5, round=5, max_seeds=10)).looks == []


SIMS = 150


def test_optional_stopping_keeps_the_family_error_under_noise() -> None:
    """No effect anywhere, six looks (5, 10, ..., 30 replicates), stopping when everything is
    decided: the same bounds as the fixed design's (test_calibration.py). Re-testing at 0.05 at
    every look breaks them (benchmarks/README.md: about 0.16 of studies with a false decision)."""
    c = calibrate_sequential(null_truth(), Design(first=5, round=5, max_seeds=30), SIMS)
    assert c.family_false <= 0.08, c.false
    assert max(c.false.values()) <= 0.05, c.false


def test_a_sequence_is_the_same_read_back_from_its_file() -> None:
    design = Design(first=5, round=5, max_seeds=15)
    table = Simulator(study_truth(replicates=15)).table(np.random.default_rng(2))
    run = sequential.run(table, design)
    back = sequential.Sequence.from_dict(design, run.to_dict())
    assert back.decided == run.decided and back.verdicts() == run.verdicts()
    assert [look.replicates for look in back.looks] == [look.replicates for look in run.looks]


def test_the_rounds_section_shows_every_look_and_the_pilots_estimate() -> None:
    design = Design(first=5, round=5, max_seeds=15)
    table = Simulator(study_truth(replicates=15)).table(np.random.default_rng(2))
    run = sequential.run(table, design)
    text = run.markdown()
    assert "pocock spending function" in text and "estimated after the pilot look" in text
    for look in run.looks:
        assert f"{look.replicates} replicates (alpha {look.alpha:.4f})" in text
    for name, (_, n) in run.decided.items():
        assert f"| {name} |" in text and f"after {n} replicates" in text
    needed = run.needed()
    assert set(needed) == set(run.names)
    assert all(needed[name] == 5 for name, (_, n) in run.decided.items() if n == 5)


def test_a_hypothesis_undecided_at_the_budget_says_what_it_would_need() -> None:
    design = Design(first=5, round=5, max_seeds=10)
    table = Simulator(null_truth(replicates=10)).table(np.random.default_rng(3))
    run = sequential.run(table, design)
    left = run.undecided_at_budget()
    assert run.looks[-1].replicates == 10 and left
    assert set(left) == set(run.names) - set(run.decided)
    assert all(n is None or n > 10 for n in left.values())
    assert "Undecided at the budget of 10 replicates" in run.markdown()
