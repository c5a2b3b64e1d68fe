"""A researcher's own hypothesis, as docs/hypotheses.md writes it, joins the family: a fresh
experiments folder with one more test file and its registration, a tiny grid, and the new
hypothesis is decided with the others, shown in report.md and recorded."""

import re
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from helpers import FAMILY, OBSERVATIONS

from normcheck.assertions import above, at_least, within
from normcheck.contrasts import GridMismatch, Paired
from normcheck.family import Family, Hypothesis, hypothesis
from normcheck.registration import RegistrationError

pytest_plugins = ["pytester"]
DOC = Path(__file__).parents[1] / "docs" / "hypotheses.md"


def example() -> tuple[str, str]:
    """The worked example's test file and registration, as the document shows them."""
    blocks = re.findall(r"```(python|toml)\n(.*?)```", DOC.read_text(), re.S)
    return next(b for k, b in blocks if k == "python"), next(b for k, b in blocks if k == "toml")


def test_the_documented_hypothesis_joins_the_family(suite) -> None:
    code, registration = example()
    (suite.path / "test_generalisation.py").write_text(code)
    (suite.path / "hypotheses.toml").write_text(registration)
    result = suite.with_empty_store()("-n", "2", "--inconclusive", "warn",
                                      "--record-verdicts", "recorded.toml")
    # the grid, then H1-H5 and H6, and E1-E3 (E4 is not asked on two widths)
    result.assert_outcomes(passed=8 + 6 + 3, skipped=1)
    report = (suite.path / "out" / "report.md").read_text()
    family = re.search(r"(H\d(?:, H\d)+) are the primary family", report)
    assert family and sorted(family[1].split(", ")) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert "H6 is registered in" in report and "| H6 |" in report
    recorded = tomllib.loads((suite.path / "recorded.toml").read_text())["record"][0]
    assert recorded["H6"] in {"holds", "inconclusive", "refuted"}


def stand_in(names=("none", "batchnorm"), lrs=(0.01, 0.001), fcs=(32, 64),
             replicates: int = 12, seed: int = 0) -> Paired:
    rng = np.random.default_rng(seed)
    shape = (len(lrs), len(fcs), 1, replicates, len(names))
    values = rng.uniform(0.4, 0.6, shape)
    arrays = defaultdict(lambda: np.zeros(shape), final_val_acc=values, test_acc=values + 0.01,
                         beta_smoothness=values + 1)
    return Paired.of_arrays(arrays, list(lrs), list(fcs), list(names))


def test_an_unregistered_hypothesis_is_refused(tmp_path: Path) -> None:
    @hypothesis("H9")
    def test_h9(runs, arm, h):
        return above(runs.metric("test_acc")[arm].mean(), label="x")

    test_h9.normcheck_hypothesis.source = tmp_path / "test_h9.py"
    with pytest.raises(RegistrationError, match=r"H9 .* is not registered: add a \[H9\]"):
        Family((test_h9.normcheck_hypothesis,))


def test_a_hypothesis_joins_the_family_and_shares_its_alpha(tmp_path: Path) -> None:
    (tmp_path / "hypotheses.toml").write_text(
        '[H7]\nstatement = "{norm} is test-accurate"\nmargin = 0.5\n'
        'registered = "2026-12-01"\ncommit = "abc1234"\n')

    def check(runs, arm, h):
        return at_least(runs.metric("test_acc")[arm].mean(), h.margin, label="test acc")

    mine = Hypothesis("H7", check, tmp_path / "test_h7.py")
    family = Family((*OBSERVATIONS.hypotheses, mine))
    gathered = family.gather(stand_in())
    assert gathered.names[-1] == "H7" and len(gathered.graph.weights) == 2 * 6 + 1
    assert family.registrations()[0][0] == "H7"
    verdict = family.evaluate(stand_in())[-1]
    assert verdict.name == "H7" and verdict.statement == "BatchNorm is test-accurate"


def test_a_grid_a_hypothesis_cannot_use_is_named() -> None:
    assert any(p.startswith("H3 needs two or more learning rates")
               for p in FAMILY.problems((0.01,), (32, 64), ("none", "batchnorm")))
    with pytest.raises(GridMismatch, match=r"needs lr=0.003"):
        stand_in().metric("test_acc")["none"].at(0.003)


@pytest.mark.parametrize("value, margin, holds", [(0.0, 0.1, True), (0.3, 0.1, False)])
def test_within_and_beyond_are_two_sided(value: float, margin: float, holds: bool) -> None:
    from normcheck.assertions import beyond
    from normcheck.contrasts import Replicates

    x = Replicates(value + np.linspace(-0.01, 0.01, 12))
    inside, outside = within(x, margin, "x"), beyond(x, margin, "x")
    assert (inside.p["holds"] < 0.01) == holds and (outside.p["holds"] < 0.01) == (not holds)
