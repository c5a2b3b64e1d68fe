"""Each hypothesis decided on synthetic result tables with independent noise in every run: every
verdict reached, pairs kept together, the replicate as the unit, one graphical procedure across
the family; and the registration's records. Calibration under known truths is in
test_calibration.py."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers import FAMILY, OBSERVATIONS
from hypothesis import given, settings
from hypothesis import strategies as st

from normcheck.contrasts import Paired
from normcheck.family import PRIMARY
from normcheck.multiplicity import Graph, node
from normcheck.registration import declared
from normcheck.verdicts import Verdict

LRS, FCS, SEEDS = (0.01, 0.003, 0.001), (32, 128), tuple(range(12))
VERDICT_RANK = {"refuted": 0, "inconclusive": 1, "non-inferior": 2, "superior": 3}


def noise(lr: float, fc: int, norm: str, seed: int, scale: float, salt: int = 0) -> float:
    """Independent noise for every run (and every salt)."""
    key = [round(lr * 1e4), fc, norm == "batchnorm", seed, salt]
    return float(np.random.default_rng(key).normal(0, scale))


def table(acc, seeds=SEEDS, unstable=None, beta=None, dropouts=(0.0,), fcs=FCS) -> pd.DataFrame:
    """A run table; ``acc(lr, fc, norm, seed)`` gives each run's final validation accuracy."""
    unstable = unstable or (lambda lr, fc, norm, seed: False)
    beta = beta or (lambda lr, fc, norm, seed: math.exp(
        (2.3 if norm == "none" else 1.1) + noise(lr, fc, norm, seed, 0.2, salt=1)))
    rows = []
    for lr in LRS:
        for fc in fcs:
            for dropout in dropouts:
                for norm in ("none", "batchnorm"):
                    for seed in seeds:
                        a, u = acc(lr, fc, norm, seed), unstable(lr, fc, norm, seed)
                        rows.append({"lr": lr, "fc_units": fc, "dropout": dropout, "norm": norm,
                                     "seed": seed, "split_seed": 42 + seed,
                                     "final_val_acc": a, "test_acc": a, "final_train_acc": a,
                                     "unstable": u, "collapsed": u, "diverged": False,
                                     "beta_smoothness": beta(lr, fc, norm, seed),
                                     "ics_cosine": 0.9 + noise(lr, fc, norm, seed, 0.02, salt=2),
                                     "grad_change": 1.0, "n_val": 480,
                                     "num_classes": 3, "epochs": 5})
    return pd.DataFrame(rows)


def study_like(lr, fc, norm, seed) -> float:
    """BatchNorm flat at 0.65; no-norm good at low lr, poor and noisy at lr=0.01, where a
    wider classifier does worse."""
    if norm == "batchnorm":
        return 0.65 + noise(lr, fc, norm, seed, 0.01)
    base = {0.01: 0.45 - (0.1 if fc == 128 else 0), 0.003: 0.58, 0.001: 0.62}[lr]
    return base + noise(lr, fc, norm, seed, 0.03 if lr == 0.01 else 0.01)


def unstable_like(lr, fc, norm, seed) -> bool:
    """No-norm at lr=0.01 is unstable in 9 of 10 runs; BatchNorm never is."""
    return norm == "none" and lr == 0.01 and (seed, fc) != (2, 32)


def verdicts(t: pd.DataFrame) -> dict[str, Verdict]:
    """H1-H5's verdicts (the explanatory family's are in test_explanations.py)."""
    return {v.name: v for v in OBSERVATIONS.evaluate(t)}


def test_study_like_results() -> None:
    v = verdicts(table(study_like, unstable=unstable_like))
    assert list(v) == ["H1", "H2", "H3", "H4", "H5"]
    assert {k: x.outcome for k, x in v.items()} == {
        "H1": "superior", "H2": "holds", "H3": "holds", "H4": "holds", "H5": "holds"}, \
        "\n".join(x.message for x in v.values())
    for x in v.values():
        assert x.parts and 0 <= x.p_value <= 1 and x.plain and "{" not in x.plain
        assert "adjusted p = " in x.message


@pytest.mark.parametrize("gap, verdict", [(0.05, "superior"), (0.0, "non-inferior"),
                                          (-0.05, "refuted")])
def test_h1_verdicts(gap: float, verdict: str) -> None:
    v = verdicts(table(lambda lr, fc, norm, seed: 0.6 + noise(lr, fc, norm, seed, 0.004) +
                       (gap if norm == "batchnorm" else 0)))["H1"]
    assert v.outcome == verdict, v.message
    assert v.estimate.high - v.estimate.low > 0
    assert "holds if > -0.02" in v.message and "Holm p over cells" in v.message


def test_h1_inconclusive_when_the_interval_straddles_the_margin() -> None:
    v = verdicts(table(lambda lr, fc, norm, seed: 0.6 - 0.02 * (norm == "batchnorm") +
                       noise(lr, fc, norm, seed, 0.08)))["H1"]
    assert v.estimate.low < -0.02 < v.estimate.high and v.outcome == "inconclusive", v.message


def test_too_few_replicates_is_inconclusive_and_says_how_many_it_needs() -> None:
    v = verdicts(table(study_like, seeds=(0, 1, 2, 3, 4)))["H1"]
    assert v.outcome == "inconclusive" and "deciding needs at least 8 replicates" in v.message
    assert "a sign test over 5 replicates cannot reach one-sided level 0.005" in v.message


def test_h2_needs_both_more_instability_and_lower_accuracy() -> None:
    v = verdicts(table(study_like, unstable=unstable_like))["H2"]
    assert v.outcome == "holds" and "none 23/24, batchnorm 0/24" in v.message, v.message
    assert "replicates where none had more: 12, fewer: 0, as many: 0" in v.message
    stable = verdicts(table(study_like))["H2"]  # lower accuracy, but no instability
    assert stable.outcome == "inconclusive" and stable.parts[0].estimate.n == 0


def test_h2_refuted_when_batchnorm_is_the_unstable_one() -> None:
    v = verdicts(table(study_like, unstable=lambda lr, fc, norm, seed:
                       norm == "batchnorm" and lr == 0.01 and (seed, fc) != (2, 32)))["H2"]
    assert v.outcome == "refuted", v.message


def test_h3_refuted_when_batchnorm_loses_more_at_high_lr() -> None:
    v = verdicts(table(lambda lr, fc, norm, seed: 0.6 + noise(lr, fc, norm, seed, 0.005) - (
        10 * lr if norm == "batchnorm" else 0)))["H3"]
    assert v.outcome == "refuted", v.message


def test_h4_holds_only_for_a_real_interaction_without_normalization() -> None:
    def acc(lr, fc, norm, seed, interaction):
        wide_high = lr == 0.01 and fc == 128
        drop = interaction if norm == "none" and wide_high else 0
        return 0.6 - drop + noise(lr, fc, norm, seed, 0.003)

    holds = verdicts(table(lambda *a: acc(*a, interaction=0.2)))["H4"]
    assert holds.outcome == "holds", holds.message
    assert holds.parts[0].estimate.value == pytest.approx(0.2, abs=0.01)  # 2 x 2 corners
    assert holds.parts[0].estimate.a.value == pytest.approx(-0.2, abs=0.01)
    both = verdicts(table(lambda lr, fc, norm, seed: 0.6 - (0.2 if lr == 0.01 and fc == 128
                                                           else 0) +
                          noise(lr, fc, norm, seed, 0.003)))["H4"]
    assert both.outcome == "refuted", both.message  # the same interaction with BatchNorm
    none = verdicts(table(lambda *a: acc(*a, interaction=0.0)))["H4"]
    assert none.outcome == "refuted", none.message  # nothing to dampen
    noisy = verdicts(table(lambda lr, fc, norm, seed: 0.6 + noise(lr, fc, norm, seed, 0.1)))
    assert noisy["H4"].outcome == "inconclusive"
    assert "capacity's own effect" in holds.message


def test_h5_leaves_collapsed_runs_out() -> None:
    """A collapsed no-norm run has a tiny beta (a dead network is smooth); it must not count."""
    def beta(lr, fc, norm, seed):
        if unstable_like(lr, fc, norm, seed):
            return 0.001
        return math.exp((2.3 if norm == "none" else 1.1) + noise(lr, fc, norm, seed, 0.2, 1))

    v = verdicts(table(study_like, unstable=unstable_like, beta=beta))["H5"]
    assert v.outcome == "holds", v.message
    assert "pairs left out because a run collapsed or diverged: 23 of 72" in v.message
    assert v.estimate.value == pytest.approx(1.2, abs=0.15)
    assert "lr=0.003:" in v.message and "(24 pairs)" in v.message  # per lr, too


def test_h5_refuted_when_batchnorm_is_rougher() -> None:
    v = verdicts(table(study_like, beta=lambda lr, fc, norm, seed: math.exp(
        (1.0 if norm == "none" else 2.0) + noise(lr, fc, norm, seed, 0.2, 1))))["H5"]
    assert v.outcome == "refuted"


def test_the_replicate_is_the_unit() -> None:
    """A replicate shifts every cell's difference alike: the contrast has one value per
    replicate (its cells averaged), not one per cell."""
    shift = dict(zip(SEEDS, np.linspace(-0.02, 0.09, len(SEEDS)), strict=True))
    t = table(lambda lr, fc, norm, seed: 0.6 + (shift[seed] if norm == "batchnorm" else 0))
    e = verdicts(t)["H1"].estimate
    assert e.values == pytest.approx(list(shift.values()))
    assert e.value == pytest.approx(np.median(list(shift.values())))


def test_pairs_stay_together() -> None:
    """BatchNorm = no-norm + about 0.03 in every pair, with large differences between runs:
    the difference's interval is narrow. Pairs split apart would make it wide."""
    t = table(lambda lr, fc, norm, seed: 0.5 + noise(lr, fc, "none", seed, 0.1) + (
        0.03 + noise(lr, fc, norm, seed, 0.001, salt=2) if norm == "batchnorm" else 0))
    e = verdicts(t.sample(frac=1, random_state=0))["H1"].estimate
    assert e.value == pytest.approx(0.03, abs=0.002) and e.high - e.low < 0.004


def test_one_graph_judges_the_family() -> None:
    family = FAMILY.gather(Paired(table(study_like, unstable=unstable_like)))
    v = verdicts(table(study_like, unstable=unstable_like))
    decisions = Graph.family(list(v), ("H1",)).test(family.p, 0.05)
    for name, x in v.items():
        assert x.level == pytest.approx(1 - 2 * decisions.levels[node(name, "holds")])
        assert (x.outcome != "inconclusive") == (decisions.claim(name) is not None)
    assert v["H1"].level == pytest.approx(0.99)  # each claim starts at alpha / 10


def test_the_explanatory_family_leaves_the_primary_its_alpha() -> None:
    """H1-H5 are decided at the same levels, with the same verdicts, whether or not the
    explanatory hypotheses are collected: a second family has its own alpha."""
    t = table(study_like, unstable=unstable_like)
    alone = {v.name: (v.outcome, v.level) for v in OBSERVATIONS.evaluate(t)}
    both = {v.name: (v.outcome, v.level) for v in FAMILY.evaluate(t)}
    assert {n: both[n] for n in alone} == alone and set(both) - set(alone) == {"E1", "E2", "E3"}
    gathered = FAMILY.gather(Paired(t))
    for names in gathered.groups.values():
        members = {j for j in gathered.graph.weights if j.split(":")[0] in names}
        assert sum(gathered.graph.weights[j] for j in members) == pytest.approx(1.0)
        assert all(set(gathered.graph.edges[j]) <= members for j in members)


def test_identical_replicates_give_no_zero_width_interval_and_no_zero_p() -> None:
    """Every replicate the same run for run (one unstable no-norm run each at lr=0.01):
    version 4 reported +0.3333 [+0.3333, +0.3333] with p = 0 for H2's rate."""
    same = table(lambda lr, fc, norm, seed: 0.6 + noise(lr, fc, norm, 0, 0.02) +
                 (0.05 if norm == "batchnorm" else 0),
                 unstable=lambda lr, fc, norm, seed: norm == "none" and lr == 0.01 and fc == 32,
                 beta=lambda lr, fc, norm, seed: 3.0 if norm == "none" else 1.0)
    assert all(p > 0 for p in FAMILY.gather(Paired(same)).p.values())  # every claim's p-value
    for v in FAMILY.evaluate(same):
        assert v.p_value > 0 and all(p.estimate.high > p.estimate.low for p in v.parts), \
            v.message


def test_a_dropout_axis_is_more_cells() -> None:
    t = table(study_like, unstable=unstable_like, dropouts=(0.0, 0.2))
    v = verdicts(t)
    assert v["H1"].outcome == "superior" and "dropout=0.2" in v["H1"].message


def test_incomplete_pairs_are_rejected() -> None:
    with pytest.raises(ValueError, match="needs one run with each norm"):
        FAMILY.evaluate(table(study_like).iloc[1:])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_verdicts_do_not_depend_on_row_order(seed: int) -> None:
    t = table(study_like, unstable=unstable_like)
    shuffled = t.sample(frac=1, random_state=seed % 2**32).reset_index(drop=True)
    assert [(v.outcome, v.estimate) for v in FAMILY.evaluate(t)] == \
        [(v.outcome, v.estimate) for v in FAMILY.evaluate(shuffled)]


@settings(max_examples=10, deadline=None)
@given(st.floats(0.0, 0.2), st.integers(0, 1000))
def test_shifting_batchnorm_up_never_lowers_the_h1_verdict(delta: float, salt: int) -> None:
    def base(lr, fc, norm, seed):
        return 0.6 + noise(lr, fc, norm, seed, 0.03, salt)

    before = verdicts(table(base))["H1"]
    after = verdicts(table(lambda lr, fc, norm, seed: base(lr, fc, norm, seed) + (
        delta if norm == "batchnorm" else 0)))["H1"]
    assert VERDICT_RANK[after.outcome] >= VERDICT_RANK[before.outcome]


# --- the registration, recorded verdicts and how tests report them --------------------------

def test_the_registration_is_versioned_data_with_its_history() -> None:
    spec = declared()
    assert spec["family"]["members"] == list(OBSERVATIONS.names)
    assert {spec[n].get("family", PRIMARY) for n in FAMILY.names} == {PRIMARY, "explanatory"}
    assert spec["family"]["control"] == "graphical" and spec["family"]["alpha"] == 0.05
    for name in FAMILY.names:
        assert spec[name]["statement"]
    history = spec["history"]
    assert [h["version"] for h in history] == list(range(spec["version"] + 1))
    for h in history:
        assert h["date"] and h["registered"] and h["seen_before"] and h["commit"]
    assert spec["H1"]["margin"] == 0.02 and spec["H2"]["high_lr"] == 0.01


@pytest.mark.parametrize("lrs, fcs, norms, problem", [
    ((0.003, 0.001), (32, 64), ("none", "batchnorm"), "H2 needs lr=0.01 and a lower lr"),
    ((0.01,), (32, 64), ("none", "batchnorm"), "H3 needs two or more learning rates"),
    ((0.01, 0.001), (64,), ("none", "batchnorm"), "H4 needs two or more fc_units"),
    ((0.01, 0.001), (32, 64), ("batchnorm",), "compares a normalisation with norm='none'"),
])
def test_grid_problems(lrs: tuple, fcs: tuple, norms: tuple, problem: str) -> None:
    assert any(problem in p for p in FAMILY.problems(lrs, fcs, norms))
