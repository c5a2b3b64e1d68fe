"""The study's hypotheses, registered in normcheck/hypotheses.toml, asserted on the grid's
recorded runs as one family (Holm), with intervals over whole replicates.

Each check needs the whole grid; runs not yet trained in this session are trained first
(never twice). A hypothesis that does not hold fails with its contrasts, intervals, margins
and verdict; an inconclusive one fails too, unless ``--inconclusive warn``.
"""

import pytest

pytestmark = pytest.mark.hypothesis_check


def test_h1_batchnorm_at_least_as_accurate(normcheck_verdicts, assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H1"])


def test_h2_no_norm_unstable_at_high_lr(normcheck_verdicts, assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H2"])


def test_h3_high_lr_costs_no_norm_more(normcheck_verdicts, assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H3"])


def test_h4_batchnorm_dampens_the_lr_capacity_interaction(normcheck_verdicts,
                                                          assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H4"])


def test_h5_batchnorm_smooths_the_landscape(normcheck_verdicts, assert_verdict) -> None:
    assert_verdict(normcheck_verdicts["H5"])
