"""The variance shares (normcheck.variance): known shares recovered, the noise correction
removes the bias of raw sums of squares, and the jackknife-t intervals over replicates cover
the truth at the study's replicate counts at least 90% of the time (nominal 95%; measured
90% to 98%), with a binomial interval on the simulated rate. Broken on purpose (no noise
correction; a normal quantile instead of t; the jackknife of the clipped shares), these
checks fail."""

import numpy as np
import pytest
from scipy.stats import binomtest

from normcheck.contrasts import Paired
from normcheck.variance import FACTORS, decompose, shares

LR = np.array([0.04, 0.0, -0.04])
FC = np.array([-0.02, 0.0, 0.02])


NO_INTERACTION = np.zeros((3, 3))


def study(rng, lr=LR, fc=FC, both=NO_INTERACTION, replicates=10, shared=0.02, noise=0.03):
    """(lr, fc_units, replicate) values: effects, a replicate's shift shared by every cell,
    and each run's own noise."""
    return (lr[:, None, None] + fc[None, :, None] + both[..., None] +
            rng.normal(0, shared, replicates)[None, None, :] +
            rng.normal(0, noise, (3, 3, replicates)))


def truth(lr=LR, fc=FC, both=NO_INTERACTION, shared=0.02, noise=0.03) -> np.ndarray:
    parts = np.array([np.mean(lr ** 2), np.mean(fc ** 2), np.mean(both ** 2),
                      shared ** 2 + noise ** 2])
    return parts / parts.sum()


def test_known_shares_are_recovered() -> None:
    rng = np.random.default_rng(0)
    estimate = shares(study(rng, replicates=400))
    np.testing.assert_allclose(estimate, truth(), atol=0.01)
    assert estimate.sum() == pytest.approx(1.0)


def test_noise_is_not_read_as_an_interaction() -> None:
    """No interaction and no width effect: raw sums of squares of noisy cell means give them
    shares; the corrected ones are near 0 on average."""
    rng = np.random.default_rng(1)
    runs = [study(rng, fc=np.zeros(3), replicates=5, noise=0.06) for _ in range(300)]
    corrected = np.mean([shares(v) for v in runs], axis=0)
    raw = np.mean([5 * np.sum((v.mean(2) - v.mean(2).mean(0) - v.mean(2).mean(1)[:, None]
                               + v.mean()) ** 2) / np.sum((v - v.mean()) ** 2) for v in runs])
    assert raw > 0.05  # what noise alone looks like as an "interaction"
    assert corrected[1] < 0.01 and corrected[2] < raw / 4


CLAIMED = 0.90  # what normcheck/variance.py says of its nominal 95% intervals at R = 5, 10
SMALL = {"lr": LR / 4, "fc": FC / 4}  # shares of a few percent, as BatchNorm's on the full grid


@pytest.mark.parametrize("effects", [{}, SMALL], ids=["study-like", "small effects"])
@pytest.mark.parametrize("replicates", [5, 10])
def test_the_intervals_cover_at_the_studys_replicate_counts(replicates: int,
                                                           effects: dict) -> None:
    rng = np.random.default_rng(replicates)
    sims, covered = 200, np.zeros(len(FACTORS))
    want = truth(**effects)
    for _ in range(sims):
        arrays = np.stack([study(rng, replicates=replicates, **effects) for _ in range(2)],
                          axis=-1)
        paired = Paired.of_arrays({"final_val_acc": arrays[:, :, None]}, [0.01, 0.003, 0.001],
                                  [32, 64, 128], ["none", "batchnorm"])
        d = decompose(paired, "final_val_acc")
        covered += (d.low[0] <= want + 1e-12) & (want <= d.high[0] + 1e-12)
    for factor, hits in zip(FACTORS, covered, strict=True):
        if factor == "lr x fc_units":
            continue  # truly 0: its interval reaches 0 whenever the estimate is clipped
        upper = binomtest(int(hits), sims).proportion_ci(0.95).high
        assert upper >= CLAIMED, f"{factor}: covered {hits / sims:.1%} [.., {upper:.1%}]"


def test_arms_are_compared_on_the_same_replicates() -> None:
    rng = np.random.default_rng(3)
    none = study(rng, replicates=8)
    norm = 0.5 * none  # the same runs, half the spread: the same shares
    arrays = np.stack([none, norm], axis=-1)[:, :, None]
    paired = Paired.of_arrays({"final_val_acc": arrays}, [0.01, 0.003, 0.001], [32, 64, 128],
                              ["none", "batchnorm"])
    d = decompose(paired, "final_val_acc")
    assert (d.low <= d.point).all() and (d.point <= d.high).all()
    np.testing.assert_allclose(d.point[0], d.point[1])
    np.testing.assert_allclose(d.diff_low, 0, atol=1e-12)
    np.testing.assert_allclose(d.diff_high, 0, atol=1e-12)
    table = d.markdown()
    assert "| batchnorm - none |" in table and "jackknife-t" in table


def test_a_grid_too_small_says_why() -> None:
    arrays = np.zeros((1, 3, 1, 5, 2))
    paired = Paired.of_arrays({"final_val_acc": arrays}, [0.01], [32, 64, 128],
                              ["none", "batchnorm"])
    with pytest.raises(ValueError, match=r"two or more lrs.*lr=\[0.01\]"):
        decompose(paired, "final_val_acc")


def test_every_interval_holds_the_share_shown() -> None:
    """Three replicates of a tiny grid (a session's runs): the clipped shares shown lie outside
    the unclipped estimate's interval, which is widened to hold them, so that the figure's
    error bars are never negative."""
    values = np.array([[[[0.675, 1.0], [0.667, 0.667], [0.667, 1.0]],
                        [[0.967, 1.0], [1.0, 1.0], [1.0, 1.0]]],
                       [[[0.333, 0.667], [0.667, 0.667], [0.667, 1.0]],
                        [[0.333, 0.667], [0.667, 1.0], [0.333, 1.0]]]])[:, :, None]
    d = decompose(Paired.of_arrays({"final_val_acc": values}, [0.01, 0.001], [4, 8],
                                   ["none", "batchnorm"]), "final_val_acc")
    assert (d.low <= d.point).all() and (d.point <= d.high).all()
    assert (d.diff_low <= d.diff_point).all() and (d.diff_point <= d.diff_high).all()
