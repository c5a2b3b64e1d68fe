"""Each hypothesis decided on synthetic result tables, every verdict reached, and properties of
the statistics checked with the hypothesis library."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normcheck import hypotheses
from normcheck.stats import holm, stratified_bootstrap

LRS, FCS, SEEDS = (0.01, 0.003, 0.001), (32, 64), (0, 1, 2, 3, 4)
VERDICT_RANK = {"refuted": 0, "inconclusive": 1, "non-inferior": 2, "superior": 3}


def table(acc, seeds=SEEDS, unstable=None, beta=None) -> pd.DataFrame:
    """A run table; ``acc(lr, fc, norm, seed)`` gives each run's best validation accuracy."""
    unstable = unstable or (lambda lr, fc, norm, seed: False)
    beta = beta or (lambda lr, fc, norm, seed: 10.0 if norm == "none" else 3.0)
    rows = []
    for lr in LRS:
        for fc in FCS:
            for norm in ("none", "batchnorm"):
                for seed in seeds:
                    a = acc(lr, fc, norm, seed)
                    rows.append({"lr": lr, "fc_units": fc, "norm": norm, "seed": seed,
                                 "best_val_acc": a, "final_val_acc": a, "final_train_acc": a,
                                 "unstable": unstable(lr, fc, norm, seed), "n_val": 480,
                                 "num_classes": 3, "beta_smoothness": beta(lr, fc, norm, seed),
                                 "loss_range": 0.1, "grad_change": 0.5})
    return pd.DataFrame(rows)


def noise(seed: int, scale: float = 0.01) -> float:
    return float(np.random.default_rng(seed).normal(0, scale))


def study_like(lr, fc, norm, seed) -> float:
    """BatchNorm flat at 0.65; no-norm good at low lr, poor and noisy at lr=0.01."""
    if norm == "batchnorm":
        return 0.65 + noise(seed)
    return {0.01: 0.45, 0.003: 0.58, 0.001: 0.62}[lr] + noise(seed + 7, 0.03 if lr == 0.01 else 0.01)


def test_all_hold_on_study_like_results() -> None:
    verdicts = hypotheses.evaluate(table(study_like))
    assert [v.name for v in verdicts] == ["H1", "H2", "H3", "H4", "H5"]
    assert [v.verdict for v in verdicts] == ["superior", "holds", "holds", "holds", "holds"], \
        "\n".join(v.message for v in verdicts)


@pytest.mark.parametrize("gap, verdict", [(0.05, "superior"), (0.0, "non-inferior"),
                                          (-0.05, "refuted")])
def test_h1_verdicts(gap: float, verdict: str) -> None:
    v = hypotheses.check_h1(table(lambda lr, fc, norm, seed: 0.6 + noise(seed * 10 + fc, 0.002) +
                                  (gap if norm == "batchnorm" else 0)))
    assert v.verdict == verdict, v.message
    assert "margin 0.02" in v.message and "95% CI" in v.message and "Holm" in v.message


def test_h1_inconclusive_when_the_interval_straddles_the_margin() -> None:
    v = hypotheses.check_h1(table(lambda lr, fc, norm, seed: 0.6 + (
        noise(seed * 31 + fc + int(lr * 1000), 0.08) - 0.02 if norm == "batchnorm" else 0)))
    assert v.estimate.low < -0.02 < v.estimate.high and v.verdict == "inconclusive", v.message


def test_too_few_replicates_is_inconclusive() -> None:
    v = hypotheses.check_h1(table(study_like, seeds=(0, 1)))
    assert v.verdict == "inconclusive" and "needs at least 3 replicates" in v.message


def test_h2_refuted_by_one_unstable_batchnorm_run() -> None:
    v = hypotheses.check_h2(table(study_like, unstable=lambda lr, fc, norm, seed:
                                  norm == "batchnorm" and lr == 0.01 and seed == 3))
    assert v.verdict == "refuted" and "batchnorm 2/10" in v.message


def test_h2_refuted_when_no_norm_is_best_at_high_lr() -> None:
    v = hypotheses.check_h2(table(lambda lr, fc, norm, seed: 0.6 + lr + noise(seed, 0.001)))
    assert v.verdict in {"refuted", "inconclusive"} and not v.passed


def test_h3_refuted_when_batchnorm_is_more_lr_sensitive() -> None:
    v = hypotheses.check_h3(table(lambda lr, fc, norm, seed: 0.6 + noise(seed, 0.002) + (
        -10 * lr if norm == "batchnorm" else 0)))
    assert v.verdict == "refuted", v.message


def test_h5_refuted_when_batchnorm_is_rougher() -> None:
    v = hypotheses.check_h5(table(study_like, beta=lambda lr, fc, norm, seed:
                                  30.0 + seed if norm == "batchnorm" else 10.0 + seed))
    assert v.verdict == "refuted"


def test_incomplete_pairs_are_rejected() -> None:
    t = table(study_like)
    with pytest.raises(ValueError, match="needs one run with each norm"):
        hypotheses.check_h1(t.iloc[1:])


# --- properties of the statistics ----------------------------------------------------------

accuracies = st.lists(st.floats(0.3, 0.8), min_size=4, max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-1, 1), min_size=3, max_size=3), min_size=1, max_size=5))
def test_bootstrap_ci_contains_the_sample_mean(cells: list[list[float]]) -> None:
    data = np.array(cells)
    est = stratified_bootstrap(data, lambda d: d.mean(axis=(1, 2)), strata_dims=1,
                               n_resamples=500)
    assert est.low - 1e-9 <= data.mean() <= est.high + 1e-9
    assert est.value == pytest.approx(data.mean())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_verdicts_do_not_depend_on_row_order(seed: int) -> None:
    t = table(study_like)
    shuffled = t.sample(frac=1, random_state=seed % 2**32).reset_index(drop=True)
    assert [(v.verdict, v.estimate) for v in hypotheses.evaluate(t)] == \
        [(v.verdict, v.estimate) for v in hypotheses.evaluate(shuffled)]


@settings(max_examples=15, deadline=None)
@given(st.floats(0.0, 0.2), st.integers(0, 1000))
def test_shifting_batchnorm_up_never_lowers_the_h1_verdict(delta: float, salt: int) -> None:
    def base(lr, fc, norm, seed):
        return 0.6 + noise(salt + seed * 13 + fc + int(lr * 1e4) + (norm == "none"), 0.03)

    before = hypotheses.check_h1(table(base))
    after = hypotheses.check_h1(table(lambda lr, fc, norm, seed: base(lr, fc, norm, seed) + (
        delta if norm == "batchnorm" else 0)))
    assert VERDICT_RANK[after.verdict] >= VERDICT_RANK[before.verdict]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000))
def test_identical_arms_are_never_superior(salt: int) -> None:
    v = hypotheses.check_h1(table(lambda lr, fc, norm, seed: 0.6 + noise(salt + seed + fc, 0.05)))
    assert v.verdict != "superior" and v.estimate.value == 0


def test_holm_is_monotone_and_bounded() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


# --- recorded verdicts and how tests report them ---------------------------------------------

def verdict(v: str) -> hypotheses.Verdict:
    return hypotheses.Verdict("H2", "s", v, "stat", None, 0.0, "numbers")


def test_judge_without_a_record() -> None:
    assert hypotheses.judge(verdict("holds"), None)[0] == "pass"
    outcome, message = hypotheses.judge(verdict("refuted"), None)
    assert outcome == "fail" and "H2 REFUTED" in message and "numbers" in message
    assert hypotheses.judge(verdict("inconclusive"), None)[0] == "fail"
    assert hypotheses.judge(verdict("inconclusive"), None, inconclusive="warn")[0] == "warn"
    assert hypotheses.judge(verdict("refuted"), None, inconclusive="warn")[0] == "fail"


def test_judge_against_records() -> None:
    assert hypotheses.judge(verdict("holds"), "holds", "r.toml")[0] == "pass"
    assert hypotheses.judge(verdict("refuted"), "refuted", "r.toml")[0] == "xfail"
    assert hypotheses.judge(verdict("inconclusive"), "inconclusive", "r.toml")[0] == "xfail"
    for got, recorded in (("holds", "refuted"), ("refuted", "holds"), ("inconclusive", "holds")):
        outcome, message = hypotheses.judge(verdict(got), recorded, "r.toml")
        assert outcome == "fail" and f"H2 changed: recorded as {recorded} in r.toml" in message


def test_recorded_verdicts_file(tmp_path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "superior"\n'
                    'H2 = "refuted"\nnote = "x"\n')
    records = hypotheses.load_recorded_verdicts(str(path))
    assert hypotheses.recorded_for(records, "quick", "abc") == {"H1": "superior", "H2": "refuted"}
    assert hypotheses.recorded_for(records, "quick", "other data") == {}
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "yes"\n')
    with pytest.raises(ValueError, match=r"verdicts must be one of .*got \{'H1': 'yes'\}"):
        hypotheses.load_recorded_verdicts(str(path))
    with pytest.raises(ValueError, match=r"cannot read recorded verdicts"):
        hypotheses.load_recorded_verdicts(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("lrs, norms, problem", [
    ((0.003, 0.001), ("none", "batchnorm"), "H2 needs lr=0.01 and a lower lr"),
    ((0.01,), ("none", "batchnorm"), "H3 needs two or more learning rates"),
    ((0.01, 0.001), ("batchnorm",), "compares norm='none' with norm='batchnorm'"),
])
def test_grid_problems(lrs: tuple, norms: tuple, problem: str) -> None:
    assert any(problem in p for p in hypotheses.grid_problems(lrs, norms))


def test_declared_values_are_versioned_data() -> None:
    spec = hypotheses.declared()
    for name in ("H1", "H2", "H3", "H4", "H5"):
        assert {"statement", "statistic", "margin", "alpha", "min_replicates"} <= set(spec[name])
    assert spec["H1"]["margin"] == 0.02 and spec["H2"]["high_lr"] == 0.01
