"""The explanatory hypotheses (experiments/test_explanations.py, E1-E4) on simulated studies
with known truths: each reaches the verdict its truth implies, dead pairs are left out, E4 is
not asked on a grid of two widths, and the family is separate from H1-H5's. Their error rates
at their boundaries are in test_calibration.py."""

from dataclasses import replace

import numpy as np
import pytest
from helpers import FAMILY

from normcheck.simulation import Simulator, null_truth


def verdicts(truth, seed: int = 0) -> dict[str, str]:
    paired = Simulator(truth).paired(np.random.default_rng(seed))
    return {v.name: v.outcome for v in FAMILY.evaluate(paired)}


def per_norm(none: float, arm: float) -> np.ndarray:
    return np.stack([np.full((3, 3), none), np.full((3, 3), arm)], axis=-1)


@pytest.mark.parametrize("arm, verdict", [(0.95, "holds"), (0.80, "refuted")])
def test_e1_follows_the_gradient_cosine(arm: float, verdict: str) -> None:
    truth = replace(null_truth(20), ics=per_norm(0.88, arm))
    assert verdicts(truth)["E1"] == verdict


def test_e1_leaves_out_pairs_where_a_run_collapsed() -> None:
    """No-norm collapses at lr=0.01 half the time, and its collapsed runs' cosine would be
    far lower; with those pairs left out, equal shift stays undecided."""
    unstable = np.zeros((3, 3, 2))
    unstable[0, :, 0] = 0.5
    truth = replace(null_truth(20), unstable=unstable)
    paired = Simulator(truth).paired(np.random.default_rng(0))
    cosine = paired("ics_cosine")
    cosine[..., 0] = np.where(paired("collapsed")[..., 0] > 0, 0.0, cosine[..., 0])
    assert {v.name: v.outcome for v in FAMILY.evaluate(paired)}["E1"] == "inconclusive"


@pytest.mark.parametrize("ratio, verdict", [(2.0, "holds"), (0.5, "refuted")])
def test_e2_follows_the_gradients_change(ratio: float, verdict: str) -> None:
    base = null_truth(20)
    log_grad = base.log_beta.copy()
    log_grad[..., 0] += np.log(ratio)  # none's change ``ratio`` times the arm's
    assert verdicts(replace(base, log_grad=log_grad))["E2"] == verdict


@pytest.mark.parametrize("gain, verdict", [(0.08, "holds"), (0.0, "refuted")])
def test_e3_needs_both_arms_to_gain_training_accuracy_with_width(gain: float,
                                                                verdict: str) -> None:
    base = null_truth(20)
    train = base.acc + 0.05 + gain * np.array([-0.5, 0.0, 0.5])[None, :, None]
    assert verdicts(replace(base, train_acc=train))["E3"] == verdict


@pytest.mark.parametrize("second, verdict", [(0.0, "holds"), (0.10, "refuted")])
def test_e4_compares_the_second_doublings_gain_with_the_first(second: float,
                                                             verdict: str) -> None:
    base = null_truth(20)
    acc = base.acc + np.array([0.0, 0.05, 0.05 + second])[None, :, None]
    assert verdicts(replace(base, acc=acc, acc_sd=base.acc_sd / 2))["E4"] == verdict


def test_e4_is_not_asked_on_two_widths() -> None:
    truth = replace(null_truth(20), fcs=(32, 128), acc=np.full((3, 2, 2), 0.6),
                    acc_sd=np.full((3, 2, 2), 0.02), unstable=np.zeros((3, 2, 2)),
                    log_beta=np.full((3, 2, 2), 3.0), log_beta_sd=np.full((3, 2, 2), 0.3))
    assert "E4" not in verdicts(truth) and {"E1", "E2", "E3"} <= set(verdicts(truth))
    why = FAMILY.not_applicable((0.01, 0.003, 0.001), (32, 128), ("none", "batchnorm"))
    assert why == {"E4": "needs an odd number of fc_units, three or more (narrowest, middle, "
                         "widest); the grid has fc_units=[32, 128]"}
    assert FAMILY.problems((0.01, 0.003, 0.001), (32, 128), ("none", "batchnorm")) == []
