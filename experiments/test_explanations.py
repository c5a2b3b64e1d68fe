"""The original study's explanations, each written as its contrasts and its claim.

The original explains its observations: BatchNorm "reduces internal covariate shift ...,
which leads to more stable gradients", and "too-small models underfit, while larger models
give no proportional gain within this limited epoch budget". These hypotheses test those
sentences on the same runs. They form a family of their own (``family = "explanatory"`` in
normcheck/hypotheses.toml, version 7), with its own error rate, so that H1-H5, the
original's observations, keep their power. Internal covariate shift and gradient change are
measured by the probe (normcheck/shift.py, normcheck/stability.py); pairs where either run
collapsed or diverged are left out, as in H5.
"""

from normcheck.assertions import above, all_of, at_least
from normcheck.contrasts import Paired, applies, estimate
from normcheck.family import describes, hypothesis
from normcheck.norms import CONTROL as NONE
from normcheck.norms import get


@hypothesis("E1")
def test_e1_norm_reduces_covariate_shift(runs: Paired, arm: str, h):
    """Santurkar's gradient-based shift is smaller with the arm: a layer's gradient changes
    direction less when the earlier layers take their step (a higher cosine)."""
    cosine, alive = runs.metric("ics_cosine"), ~runs.dead(arm)
    return above((cosine[arm] - cosine[NONE]).where(alive).mean(),
                 label=f"median over replicates of the mean paired difference of the "
                       f"gradient cosine across the earlier layers' step, {arm} - none")


@hypothesis("E2")
def test_e2_norm_gives_more_stable_gradients(runs: Paired, arm: str, h):
    """Along the optimizer's own step, the arm's gradient changes less than no-norm's
    (Santurkar's gradient predictiveness)."""
    change = runs.metric("grad_change")
    return above((change[NONE] / change[arm]).log().where(~runs.dead(arm)).mean(),
                 label=f"median over replicates of the mean paired log ratio of the "
                       f"gradient's change along the step, log(none / {arm})")


@hypothesis("E3")
def test_e3_small_models_underfit(runs: Paired, arm: str, h):
    """With and without the arm, training accuracy rises from the narrowest to the widest
    classifier by more than the margin."""
    train = runs.metric("final_train_acc")
    return all_of(*(at_least(train[norm].capacity(), h.margin,
                             label=f"median over replicates of {norm}'s final training "
                                   f"accuracy, widest minus narrowest classifier")
                    for norm in (NONE, arm)))


def diminishing_returns(runs: Paired, norm: str, metric: str):
    """Each replicate's accuracy gain from the narrowest to the middle width minus the gain
    from the middle to the widest (positive: the second step gains less)."""
    applies(len(runs.fcs) >= 3 and len(runs.fcs) % 2 == 1,
            f"needs an odd number of fc_units, three or more (narrowest, middle, widest); "
            f"the grid has fc_units={list(runs.fcs)}")
    acc = runs.metric(metric)[norm]
    small, middle, wide = (acc.at_width(fc).mean()
                           for fc in (runs.fcs[0], runs.fcs[len(runs.fcs) // 2], runs.fcs[-1]))
    return (middle - small) - (wide - middle)


@hypothesis("E4")
def test_e4_larger_models_gain_less(runs: Paired, arm: str, h):
    """With and without the arm, widening from the middle width gains no more validation
    accuracy than widening to it did, beyond the margin."""
    return all_of(*(at_least(diminishing_returns(runs, norm, h.metric), -h.margin,
                             label=f"median over replicates of {norm}'s gain in "
                                   f"{h.metric_label}, narrowest to middle width minus "
                                   f"middle to widest")
                    for norm in (NONE, arm)))


# -- what the report says of each, beyond its claim (reported, not asserted) -----------------

@describes(test_e1_norm_reduces_covariate_shift)
def _e1(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    label, alive = get(arm).label, ~runs.dead(arm)
    each = {norm: estimate(runs.metric("ics_cosine")[norm].where(alive).mean().values)
            for norm in (NONE, arm)}
    lines = [f"  gradient cosine across the earlier layers' step (1: no shift), median [95% "
             f"CI]: none {each[NONE].format(3)}, {arm} {each[arm].format(3)}"]
    plain = (f"Internal covariate shift in Santurkar's gradient sense: the cosine between a "
             f"layer's gradient before and after the earlier layers' step was "
             f"{each[arm].format(3)} with {label} and {each[NONE].format(3)} without normalization "
             f"(95% CIs; higher: less shift); {label} minus none {{0}}")
    return lines, plain


@describes(test_e2_norm_gives_more_stable_gradients)
def _e2(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    label = get(arm).label
    plain = (f"Along the optimizer's step the gradient changed less with {label} than without "
             f"normalization by a log ratio of {{0}} (above 0: more stable with {label})")
    return [], plain


@describes(test_e3_small_models_underfit)
def _e3(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    plain = (f"From fc={runs.fcs[0]} to fc={runs.fcs[-1]} final training accuracy rose by "
             f"{{0}} without normalization and by {{1}} with {get(arm).label} (margin "
             f"{h.margin:g})")
    return [], plain


@describes(test_e4_larger_models_gain_less)
def _e4(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    plain = (f"Widening from fc={runs.fcs[0]} to fc={runs.fcs[len(runs.fcs) // 2]} gained more "
             f"{h.metric_label} than widening on to fc={runs.fcs[-1]} by {{0}} without "
             f"normalization and {{1}} with {get(arm).label} (margin -{h.margin:g})")
    return [], plain
