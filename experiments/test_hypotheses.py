"""The study's hypotheses, asserted on the grid's recorded results (see normcheck/hypotheses.toml).

Each check needs the whole grid; configurations not yet trained in this session are trained
first (never twice). A refuted hypothesis fails with the numbers behind it.
"""

import pandas as pd
import pytest

from normcheck import hypotheses


@pytest.mark.hypothesis_check
def test_h1_batchnorm_at_least_as_accurate(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h1(normcheck_table))


@pytest.mark.hypothesis_check
def test_h2_no_norm_unstable_at_high_lr(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h2(normcheck_table))


@pytest.mark.hypothesis_check
def test_h3_batchnorm_less_lr_sensitive(normcheck_table: pd.DataFrame, assert_verdict) -> None:
    assert_verdict(hypotheses.check_h3(normcheck_table))
