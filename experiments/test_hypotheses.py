"""The study's hypotheses, registered in normcheck/hypotheses.toml, asserted on the grid's
recorded runs as one family (one graphical closed test over every claim), with exact tests
over whole replicates.

Each hypothesis is checked for every normalisation the grid compares with none
(``normcheck_arm``: batchnorm on the full grid; batchnorm, layernorm and groupnorm on the
norms grid). Each check needs the whole grid; runs not yet trained in this session are trained
first (never twice). A hypothesis that does not hold fails with its contrasts, intervals,
margins and verdict; an inconclusive one fails too, unless ``--inconclusive warn``.
"""

import pytest

pytestmark = pytest.mark.hypothesis_check


def test_h1_at_least_as_accurate(normcheck_verdicts, normcheck_arm, assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H1", normcheck_arm])


def test_h2_no_norm_unstable_at_high_lr(normcheck_verdicts, normcheck_arm,
                                        assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H2", normcheck_arm])


def test_h3_high_lr_costs_no_norm_more(normcheck_verdicts, normcheck_arm,
                                       assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H3", normcheck_arm])


def test_h4_norm_dampens_the_lr_capacity_interaction(normcheck_verdicts, normcheck_arm,
                                                     assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H4", normcheck_arm])


def test_h5_norm_smooths_the_landscape(normcheck_verdicts, normcheck_arm,
                                       assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H5", normcheck_arm])
