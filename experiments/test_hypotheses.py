"""The study's hypotheses, pre-registered in normcheck/hypotheses.toml, asserted on the grid's
recorded runs with bootstrap confidence intervals over seeds.

Each check needs the whole grid; runs not yet trained in this session are trained first
(never twice). A hypothesis that does not hold fails with its statistic, interval, margin and
verdict; an inconclusive one fails too, unless ``--inconclusive warn``.
"""

import pandas as pd
import pytest

from normcheck import hypotheses

pytestmark = pytest.mark.hypothesis_check


def test_h1_batchnorm_at_least_as_accurate(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h1(normcheck_table))


def test_h2_no_norm_unstable_at_high_lr(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h2(normcheck_table))


def test_h3_batchnorm_less_lr_sensitive(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h3(normcheck_table))


def test_h4_batchnorm_flattens_the_surface(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h4(normcheck_table))


def test_h5_batchnorm_smooths_the_landscape(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h5(normcheck_table))
