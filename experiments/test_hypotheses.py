"""The study's hypotheses, each written as its contrasts and its claim.

Statements, margins and the family's error rate are registered in normcheck/hypotheses.toml.
Every hypothesis here is checked for every normalisation the grid compares with none (``arm``:
batchnorm on the full grid; batchnorm, layernorm and groupnorm on the norms grid), on whole
replicates (``runs.metric(...)[arm]`` are one arm's cells; ``.mean()``, ``.lr_slope()`` ...
reduce each replicate to one value), and all of them are decided as one family, with every
other hypothesis the session collects. Each test needs the whole grid: runs not yet trained
in the session are trained first (never twice). A hypothesis that does not hold fails with
its contrasts, intervals, margins and verdict; an inconclusive one fails too, unless
``--inconclusive warn``. How to add one: docs/hypotheses.md.
"""

import numpy as np

from normcheck.assertions import above, all_of, at_least, shrinks
from normcheck.contrasts import Paired, estimate, nanmean, require
from normcheck.family import describes, hypothesis
from normcheck.norms import CONTROL as NONE
from normcheck.norms import get
from normcheck.stats import holm


@hypothesis("H1")
def test_h1_at_least_as_accurate(runs: Paired, arm: str, h):
    """The arm's accuracy, paired over each replicate's cells, is no worse than no-norm's by
    more than the margin (non-inferior), or better (superior)."""
    acc = runs.metric(h.metric)
    return at_least((acc[arm] - acc[NONE]).mean(), -h.margin, superior=True,
                    label=f"median over replicates of the mean paired difference of "
                          f"{h.metric_label}, {arm} - none")


@hypothesis("H2")
def test_h2_no_norm_unstable_at_high_lr(runs: Paired, arm: str, h):
    """At the high lr no-norm has more unstable runs than the arm in most replicates where
    they differ, and its accuracy there is below its accuracy at the lowest lr."""
    require(h.high_lr in runs.lrs and min(runs.lrs) < h.high_lr,
            f"needs lr={h.high_lr:g} and a lower lr; the grid has lr={list(runs.lrs)}")
    unstable, acc = runs.metric("unstable"), runs.metric(h.metric)
    more = unstable[NONE].at(h.high_lr).total() - unstable[arm].at(h.high_lr).total()
    low = min(runs.lrs)
    return all_of(
        above(more.more_often(),
              label=f"share of replicates with more unstable runs at lr={h.high_lr:g} without "
                    f"normalization than with {arm}, of those where the two differ"),
        above((acc[NONE].at(low) - acc[NONE].at(h.high_lr)).mean(),
              label=f"median over replicates of none's {h.metric_label} at lr={low:g} minus "
                    f"at lr={h.high_lr:g}"))


@hypothesis("H3")
def test_h3_high_lr_costs_no_norm_more(runs: Paired, arm: str, h):
    """Per tenfold increase of lr, no-norm loses more accuracy than the arm."""
    acc = runs.metric(h.metric)
    return above(acc[arm].lr_slope() - acc[NONE].lr_slope(),
                 label=f"median over replicates of the change of {h.metric_label} per tenfold "
                       f"lr, {arm} - none")


@hypothesis("H4")
def test_h4_norm_dampens_the_lr_capacity_interaction(runs: Paired, arm: str, h):
    """The lr x fc_units interaction is smaller with the arm, by more than the margin."""
    acc = runs.metric(h.metric)
    return at_least(shrinks(acc[NONE].interaction(), acc[arm].interaction()), h.margin,
                    label=f"size of the lr x fc_units interaction over the grid's span: "
                          f"|none| - |{arm}| (medians over replicates)")


def smoothness_log_ratio(runs: Paired, arm: str):
    """log(beta none / beta arm) per pair of runs, left out where either run collapsed or
    diverged (a dead network is trivially smooth)."""
    beta = runs.metric("beta_smoothness")
    return (beta[NONE] / beta[arm]).log().where(~runs.dead(arm))


@hypothesis("H5")
def test_h5_norm_smooths_the_landscape(runs: Paired, arm: str, h):
    """Along Adam's own update, no-norm's beta-smoothness is above the arm's."""
    return above(smoothness_log_ratio(runs, arm).mean(),
                 label=f"median over replicates of the mean paired log ratio of "
                       f"beta-smoothness, log(none / {arm})")


# -- what the report says of each, beyond its claim (reported, not asserted) -----------------

def _ci(e) -> str:
    return e.format(3)


@describes(test_h1_at_least_as_accurate)
def _h1(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    acc = runs.metric(h.metric)
    diff = (acc[arm] - acc[NONE]).values  # (lr, fc, dropout, replicate)
    median = claim.parts[0].estimate
    cells = [(i, j, c) for i in range(len(runs.lrs)) for j in range(len(runs.fcs))
             for c in range(len(runs.dropouts))]
    per_cell = [estimate(diff[i, j, c]) for i, j, c in cells]
    adjusted = holm(np.array([min(1.0, 2 * min(e.p_above(0), e.p_below(0)))
                              for e in per_cell]))
    label = get(arm).label
    wins = f"{label} won {int((diff > 0).sum())} of {int(np.isfinite(diff).sum())} pairs"
    lines = [f"  {wins} (replicate x cell), tied {int((diff == 0).sum())}; mean over "
             f"replicates {median.mean:+.4f} (descriptive)",
             "  per cell (reported, not asserted): median difference [95% CI], Holm p over "
             "cells (two-sided sign tests)"]
    for (i, j, c), e, p in zip(cells, per_cell, adjusted, strict=True):
        drop = f" dropout={runs.dropouts[c]:g}" if len(runs.dropouts) > 1 else ""
        lines.append(f"    lr={runs.lrs[i]:g} fc={runs.fcs[j]}{drop}: {_ci(e)}  "
                     f"holm p={p:.3f}")
    plain = (f"{label}'s {h.metric_label} was higher than no normalization's by {{0}} in the "
             f"median replicate (averaged over its cells); {wins}")
    return lines, plain




@describes(test_h2_no_norm_unstable_at_high_lr)
def _h2(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    k, label = runs.norms.index(arm), get(arm).label
    high, low = runs.lrs.index(h.high_lr), len(runs.lrs) - 1
    unstable, acc = runs("unstable"), runs(h.metric)
    rate = claim.parts[0].estimate
    more = claim.contrasts[0].of.values
    hi, lo = f"{h.high_lr:g}", f"{runs.lrs[low]:g}"
    n = unstable[high, ..., 0].size
    count = [int(np.nansum(unstable[high, ..., c])) for c in (0, k)]
    sds = [np.nanstd(acc[high, ..., c], ddof=1) for c in (0, k)]
    lines = [f"  unstable runs at lr={hi} (diverged, collapsed or loss up): none "
             f"{count[0]}/{n}, {arm} {count[1]}/{n}; replicates where none had more: "
             f"{rate.k}, fewer: {rate.n - rate.k}, as many: {len(more) - rate.n}",
             f"  sd of {h.metric_label} across runs at lr={hi}: none "
             f"{sds[0]:.3f}, {arm} {sds[1]:.3f}"]
    for j, fc in enumerate(runs.fcs):
        lines.append(f"    fc={fc}: none mean {np.nanmean(acc[low, j, ..., 0]):.3f} at lr={lo} "
                     f"vs {np.nanmean(acc[high, j, ..., 0]):.3f} at lr={hi}; unstable none "
                     f"{int(np.nansum(unstable[high, j, ..., 0]))}, {arm} "
                     f"{int(np.nansum(unstable[high, j, ..., k]))}")
    plain = (f"At lr={hi}, {count[0]} of {n} runs without normalization were unstable against "
             f"{count[1]} of {n} with {label}; of the {rate.n} replicates where the two "
             f"differed, no-norm had more in a share {{0}}; no-norm's accuracy there was lower "
             f"than at lr={lo} by {{1}} in the median replicate")
    return lines, plain


@describes(test_h3_high_lr_costs_no_norm_more)
def _h3(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    k, label = runs.norms.index(arm), get(arm).label
    acc = runs.metric(h.metric)
    each = [estimate(acc[norm].lr_slope().values) for norm in (NONE, arm)]
    lines = [f"  per tenfold lr (least squares over log10 lr), median [95% CI]: none "
             f"{_ci(each[0])}, {arm} {_ci(each[1])}"]
    means = np.nanmean(runs(h.metric), axis=(2, 3))  # (lr, fc, norm)
    for j, fc in enumerate(runs.fcs):
        lines.append(f"    fc={fc}: " + "; ".join(
            f"{runs.norms[c]} " + ", ".join(f"lr={lr:g} {means[i, j, c]:.3f}"
                                            for i, lr in enumerate(runs.lrs))
            for c in (0, k)))
    plain = (f"Each tenfold increase of lr changed no-norm's accuracy by {_ci(each[0])} and "
             f"{label}'s by {_ci(each[1])} (medians over replicates, 95% CIs); {label} minus "
             f"no-norm {{0}}")
    return lines, plain


@describes(test_h4_norm_dampens_the_lr_capacity_interaction)
def _h4(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    label = get(arm).label
    none, other = (estimate(x.values) for x in (claim.contrasts[0].of, claim.contrasts[0].to))
    acc, train = runs.metric(h.metric), runs.metric("final_train_acc")
    cap = {norm: estimate(acc[norm].capacity().values) for norm in (NONE, arm)}
    lines = [f"  the interaction, median over replicates [95% CI]: none {_ci(none)}, {arm} "
             f"{_ci(other)}",
             f"  capacity's own effect (reported, not asserted): change from fc="
             f"{runs.fcs[0]} to fc={runs.fcs[-1]}, median [95% CI]"]
    for norm in (NONE, arm):
        lines.append(f"    {norm}: {h.metric_label} {_ci(cap[norm])}; final train accuracy "
                     f"{_ci(estimate(train[norm].capacity().values))}")
    plain = (f"How much the lr effect differs between fc={runs.fcs[0]} and "
             f"fc={runs.fcs[-1]} (the lr x capacity interaction) was {_ci(none)} without "
             f"normalization and {_ci(other)} with {label} (medians, 95% CIs); its size "
             f"shrank by {{0}} (margin {h.margin:g}); capacity itself moved accuracy by "
             f"{_ci(cap[NONE])} without normalization and {_ci(cap[arm])} with {label}")
    return lines, plain


@describes(test_h5_norm_smooths_the_landscape)
def _h5(runs: Paired, arm: str, h, claim) -> tuple[list[str], str]:
    k, label = runs.norms.index(arm), get(arm).label
    log_ratio = smoothness_log_ratio(runs, arm).values
    left_out = int(np.isnan(log_ratio).sum())
    beta = runs("beta_smoothness")
    lines = [f"  pairs left out because a run collapsed or diverged: {left_out} of "
             f"{log_ratio.size}; replicates with no pair left: "
             f"{claim.parts[0].estimate.missing}",
             f"  per lr (reported): median log ratio [95% CI]; median beta-smoothness none vs "
             f"{arm}"]
    for i, lr in enumerate(runs.lrs):
        kept = ~np.isnan(log_ratio[i])
        medians = [np.median(beta[i, ..., c][kept]) if kept.any() else np.nan
                   for c in (0, k)]
        e = estimate(nanmean(log_ratio[i:i + 1], axis=(0, 1, 2)))
        lines.append(f"    lr={lr:g}: {_ci(e)}; beta {medians[0]:.3g} vs {medians[1]:.3g} "
                     f"({int(kept.sum())} pairs)")
    plain = ("Along Adam's own update, the log ratio of no-norm's beta-smoothness to "
             f"{label}'s was {{0}} in the median replicate (above 0: {label} smoother; "
             f"{left_out} of {log_ratio.size} pairs left out because a run collapsed or "
             "diverged)")
    return lines, plain
