"""The study's hypotheses, decided as one family from a table of recorded runs.

``evaluate`` takes the metrics table (one row per run, as in ``metrics.csv``) and returns one
``Verdict`` per hypothesis and normalisation compared with none (``H1`` when the grid has one
such arm, ``H1-layernorm`` etc. when it has several). Each hypothesis reduces the grid to one
or more contrasts whose standard errors come from resampling whole replicates
(``normcheck.stats``); Holm's procedure across the family (every hypothesis of every arm)
decides which are settled, and at what confidence level their intervals are read. Statements,
margins and the family's error rate live in ``hypotheses.toml``.
"""

import math
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.norms import CONTROL
from normcheck.stats import Estimate, holm, holm_levels, replicate_bootstrap, replicate_bootstraps

PASSING = {"holds", "superior", "non-inferior"}
VERDICTS = PASSING | {"inconclusive", "refuted"}
# axes of a Paired array: lr (high first), fc_units, dropout, replicate, norm (none first)
REP_AXIS = 3
EXCLUDED_FROM_SMOOTHNESS = ("collapsed", "diverged")


def declared() -> dict:
    """The registration: family, hypotheses and history, from ``hypotheses.toml``."""
    return tomllib.loads(resources.files("normcheck").joinpath("hypotheses.toml").read_text())


def verdict_name(hypothesis: str, arm: str, arms: list[str]) -> str:
    """``H1`` when the grid compares one normalisation with none, ``H1-layernorm`` when more."""
    return hypothesis if len(arms) == 1 else f"{hypothesis}-{arm}"


def grid_problems(lrs: tuple[float, ...], fcs: tuple[int, ...],
                  names: tuple[str, ...]) -> list[str]:
    """Why a grid cannot test the hypotheses (empty when it can)."""
    spec = declared()
    problems = []
    if CONTROL not in names or not norms.arms(names):
        problems.append(f"every hypothesis compares a normalisation with norm={CONTROL!r}; "
                        f"the grid has norm={list(names)}")
    high = spec["H2"]["high_lr"]
    if high not in lrs or min(lrs) >= high:
        problems.append(f"H2 needs lr={high:g} and a lower lr; the grid has lr={list(lrs)}")
    if len(lrs) < 2:
        problems.append(f"H3 needs two or more learning rates; the grid has lr={list(lrs)}")
    if len(fcs) < 2:
        problems.append(f"H4 needs two or more fc_units (it tests the lr x fc_units "
                        f"interaction); the grid has fc_units={list(fcs)}")
    return problems


@dataclass(frozen=True)
class Part:
    """One estimated contrast a verdict rests on, and the claim made of it."""

    label: str
    estimate: Estimate
    claim: str  # how the interval must lie for the hypothesis to hold, e.g. "> -0.02"


@dataclass(frozen=True)
class Verdict:
    name: str  # "H1", or "H1-layernorm" when the grid compares several normalisations
    statement: str
    outcome: str  # holds | superior | non-inferior | inconclusive | refuted
    parts: tuple[Part, ...]  # intervals at the level the family's procedure judged them
    p_value: float  # Holm-adjusted p-value of the verdict's claim (holds or refuted)
    details: str  # the numbers behind it, one line each
    plain: str = ""  # a sentence in plain words with the numbers, no full stop
    hypothesis: str = ""  # "H1"
    arm: str = ""  # the normalisation compared with none

    @property
    def passed(self) -> bool:
        return self.outcome in PASSING

    @property
    def estimate(self) -> Estimate | None:
        return self.parts[0].estimate if self.parts else None

    @property
    def level(self) -> float | None:
        return self.estimate.level if self.parts else None

    @property
    def summary(self) -> str:
        if not self.parts:
            return "not estimated"
        lines = [f"{p.label} = {p.estimate} ({p.estimate.level:.2%} CI; holds if {p.claim})"
                 for p in self.parts]
        return "\n  ".join(lines) + f"\n  Holm-adjusted p = {self.p_value:.4f}"

    @property
    def message(self) -> str:
        return f"{self.name} {self.outcome.upper()}: {self.statement}\n  {self.summary}\n" \
               f"{self.details}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        parts = tuple(Part(p["label"], Estimate(**p["estimate"]), p["claim"])
                      for p in d["parts"])
        return cls(**{**d, "parts": parts})


@dataclass(frozen=True)
class Evidence:
    """A hypothesis's contrasts before the family's procedure judges them."""

    name: str
    parts: tuple[Part, ...]
    p_holds: float  # smallest 1 - level at which every part's interval makes its claim
    p_refuted: float  # smallest 1 - level at which some part's interval contradicts it
    lines: list[str] = field(default_factory=list)
    plain: str = ""  # no full stop; {0}, {1}: the parts' estimates at the judged level
    holds_word: str = "holds"
    p_stronger: float = 1.0  # H1: superiority, read after non-inferiority (fixed sequence)
    arm: str = "batchnorm"

    @property
    def p_decision(self) -> float:
        return min(self.p_holds, self.p_refuted)

    def judged(self, alpha: float, adjusted_p: float, statement: str, name: str) -> Verdict:
        """The verdict at significance level ``alpha`` (Holm's level for this hypothesis)."""
        if self.p_holds <= alpha:
            word = "superior" if self.p_stronger <= alpha else self.holds_word
        elif self.p_refuted <= alpha:
            word = "refuted"
        else:
            word = "inconclusive"
        parts = tuple(Part(p.label, p.estimate.at(1 - alpha), p.claim) for p in self.parts)
        plain = self.plain.format(*(_ci(p.estimate) for p in parts))
        return Verdict(name, statement, word, parts, adjusted_p, "\n".join(self.lines), plain,
                       self.name, self.arm)


class Paired:
    """The table as arrays of shape (lr, fc_units, dropout, replicate, norm), ``none`` first
    on the norm axis and the other normalisations after it, in ``normcheck.norms``'s order.

    A replicate is one seed (and the split it draws); it is shared by every cell and norm.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        if "dropout" not in table:  # a table from before dropout was recorded
            table = table.assign(dropout=0.0)
        self.lrs = sorted(table["lr"].unique(), reverse=True)
        self.fcs = sorted(table["fc_units"].unique())
        self.dropouts = sorted(table["dropout"].unique())
        self.seeds = sorted(table["seed"].unique())
        self.norms = norms.ordered(table["norm"].unique())
        keys = ["lr", "fc_units", "dropout", "seed", "norm"]
        expected = (len(self.lrs) * len(self.fcs) * len(self.dropouts) * len(self.seeds) *
                    len(self.norms))
        if len(table.drop_duplicates(keys)) != expected or self.norms[0] != CONTROL:
            raise ValueError("every (lr, fc_units, dropout, seed) needs one run with each norm "
                             f"{self.norms}, {CONTROL!r} among them; the table has {len(table)} "
                             f"runs for {expected} slots")
        index = pd.MultiIndex.from_product([self.lrs, self.fcs, self.dropouts, self.seeds,
                                            self.norms])
        self._slots = table.set_index(keys).reindex(index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.lrs), len(self.fcs), len(self.dropouts), len(self.seeds),
                len(self.norms))

    @property
    def arms(self) -> list[str]:
        """The normalisations compared with none (norm axis 1, 2, ...)."""
        return self.norms[1:]

    def __call__(self, metric: str) -> np.ndarray:
        return self._slots[metric].to_numpy(dtype=float).reshape(self.shape)


def _nanmean(a: np.ndarray, axis) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate with no valid cell
        return np.nanmean(a, axis=axis)


def over_replicates(per_cell: np.ndarray) -> np.ndarray:
    """(batch, lr, fc, dropout, replicate) -> (batch,): mean over each replicate's cells, then
    over replicates, so every replicate weighs the same."""
    return _nanmean(_nanmean(per_cell, axis=(1, 2, 3)), axis=1)


def _estimate(data: np.ndarray, statistic) -> Estimate:
    return replicate_bootstrap(data, statistic, axis=REP_AXIS)


def _estimates(data: np.ndarray, statistic) -> list[Estimate]:
    """Several values of one statistic, ``(batch, k)``, from the same bootstrap samples."""
    return replicate_bootstraps(data, statistic, axis=REP_AXIS)


def _slope_weights(values: list[float], transform) -> np.ndarray:
    """Least-squares slope weights over transformed axis values."""
    x = np.array([transform(v) for v in values], dtype=float)
    centered = x - x.mean()
    return centered / np.sum(centered ** 2)


def _lr_slope(acc: np.ndarray, lrs: list[float]) -> np.ndarray:
    """(batch, lr, fc, dropout, replicate, norm) -> (batch, norm): accuracy change per tenfold
    increase of lr (least-squares over log10 lr), averaged over the other cells."""
    w = _slope_weights(lrs, math.log10)
    per = np.tensordot(acc, w, axes=([1], [0]))  # (batch, fc, dropout, replicate, norm)
    return _nanmean(_nanmean(per, axis=(1, 2)), axis=1)


def _span_weights(values: list[float], transform) -> np.ndarray:
    """Slope weights scaled to the axis's span: the change from its lowest to highest value."""
    x = [transform(v) for v in values]
    return _slope_weights(values, transform) * (max(x) - min(x))


def _interaction(acc: np.ndarray, lrs: list[float], fcs: list[int]) -> np.ndarray:
    """(batch, lr, fc, dropout, replicate, norm) -> (batch, norm): the linear x linear lr x
    fc_units interaction over the grid's span (log10 lr, log2 fc_units). On a 2 x 2 grid it is
    (acc[hi lr, hi fc] - acc[lo lr, hi fc]) - (acc[hi lr, lo fc] - acc[lo lr, lo fc])."""
    w = np.outer(_span_weights(lrs, math.log10), _span_weights(fcs, math.log2))
    per = np.tensordot(acc, w, axes=([1, 2], [0, 1]))  # (batch, dropout, replicate, norm)
    return _nanmean(_nanmean(per, axis=1), axis=1)


def _capacity(acc: np.ndarray, fcs: list[int]) -> np.ndarray:
    """(batch, lr, fc, dropout, replicate, norm) -> (batch, norm): accuracy change from the
    narrowest to the widest classifier (least squares over log2 fc_units)."""
    w = _span_weights(fcs, math.log2)
    per = np.tensordot(acc, w, axes=([2], [0]))  # (batch, lr, dropout, replicate, norm)
    return _nanmean(_nanmean(per, axis=(1, 2)), axis=1)


def _too_few(name: str, spec: dict, paired: Paired, arm: str) -> Evidence | None:
    need = spec["family"]["min_replicates"]
    if len(paired.seeds) >= need:
        return None
    return Evidence(name, (), 1.0, 1.0, [f"  needs at least {need} replicates (seeds) per "
                                        f"cell; the grid has {len(paired.seeds)}"], arm=arm)


def _ci(e: Estimate) -> str:
    return f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"


def check_h1(paired: Paired, spec: dict, arm: str) -> Evidence:
    h, k, label = spec["H1"], paired.norms.index(arm), norms.get(arm).label
    acc = paired(spec["family"]["metric"])
    diff = acc[..., k] - acc[..., 0]  # (lr, fc, dropout, replicate)
    estimate = _estimate(diff, over_replicates)
    m = h["margin"]
    part = Part(f"mean paired difference of {spec['family']['metric_label']}, {arm} - none",
                estimate, f"> {-m:g} (non-inferior), > 0 (superior)")
    cells = [(i, j, c) for i in range(len(paired.lrs)) for j in range(len(paired.fcs))
             for c in range(len(paired.dropouts))]
    per_cell = _estimates(diff, lambda d: _nanmean(d, axis=-1).reshape(len(d), -1))
    adjusted = holm(np.array([min(e.p_above(0), e.p_below(0)) for e in per_cell]))
    pairs = int(np.isfinite(diff).sum())
    wins = f"{label} won {int((diff > 0).sum())} of {pairs} pairs"
    lines = [f"  {wins} (replicate x cell), tied {int((diff == 0).sum())}",
             "  per cell (reported, not asserted): mean difference [95% CI], Holm p over cells"]
    for (i, j, c), e, p in zip(cells, per_cell, adjusted, strict=True):
        drop = f" dropout={paired.dropouts[c]:g}" if len(paired.dropouts) > 1 else ""
        lines.append(f"    lr={paired.lrs[i]:g} fc={paired.fcs[j]}{drop}: {_ci(e)}  "
                     f"holm p={p:.3f}")
    plain = (f"{label}'s {spec['family']['metric_label']} was higher than no "
             f"normalization's by {{0}} on average over every cell and replicate; {wins}")
    return Evidence("H1", (part,), estimate.p_above(-m), estimate.p_below(-m), lines, plain,
                    holds_word="non-inferior", p_stronger=estimate.p_above(0), arm=arm)


def check_h2(paired: Paired, spec: dict, arm: str) -> Evidence:
    h, k, label = spec["H2"], paired.norms.index(arm), norms.get(arm).label
    high, low = paired.lrs.index(h["high_lr"]), len(paired.lrs) - 1
    unstable, acc = paired("unstable"), paired(spec["family"]["metric"])
    rate_diff = _estimate(unstable[high:high + 1, ..., 0] - unstable[high:high + 1, ..., k],
                          over_replicates)
    drop = _estimate(acc[low:low + 1, ..., 0] - acc[high:high + 1, ..., 0], over_replicates)
    hi, lo = f"{h['high_lr']:g}", f"{paired.lrs[low]:g}"
    parts = (Part(f"unstable-run rate at lr={hi}, none - {arm}", rate_diff, "> 0"),
             Part(f"none's {spec['family']['metric_label']} at lr={lo} minus at lr={hi}",
                  drop, "> 0"))
    n = unstable[high, ..., 0].size
    count = [int(np.nansum(unstable[high, ..., c])) for c in (0, k)]
    sds = [np.nanstd(acc[high, ..., c], ddof=1) for c in (0, k)]
    lines = [f"  unstable runs at lr={hi} (diverged, collapsed or loss up): none "
             f"{count[0]}/{n}, {arm} {count[1]}/{n}",
             f"  sd of {spec['family']['metric_label']} across runs at lr={hi}: none "
             f"{sds[0]:.3f}, {arm} {sds[1]:.3f}"]
    for j, fc in enumerate(paired.fcs):
        lines.append(f"    fc={fc}: none mean {np.nanmean(acc[low, j, ..., 0]):.3f} at lr={lo} "
                     f"vs {np.nanmean(acc[high, j, ..., 0]):.3f} at lr={hi}; unstable none "
                     f"{int(np.nansum(unstable[high, j, ..., 0]))}, {arm} "
                     f"{int(np.nansum(unstable[high, j, ..., k]))}")
    plain = (f"At lr={hi}, {count[0]} of {n} runs without normalization were unstable against "
             f"{count[1]} of {n} with {label} (difference in rate {{0}}), and no-norm's "
             f"accuracy there was lower than at lr={lo} by {{1}}")
    return Evidence("H2", parts, max(rate_diff.p_above(0), drop.p_above(0)),
                    min(1.0, 2 * min(rate_diff.p_below(0), drop.p_below(0))), lines, plain,
                    arm=arm)


def check_h3(paired: Paired, spec: dict, arm: str) -> Evidence:
    k, label = paired.norms.index(arm), norms.get(arm).label
    acc = paired(spec["family"]["metric"])

    def statistic(d: np.ndarray) -> np.ndarray:  # (batch, 3): arm - none, none, arm
        slope = _lr_slope(d, paired.lrs)
        return np.column_stack([slope[:, k] - slope[:, 0], slope[:, 0], slope[:, k]])

    estimate, *slopes = _estimates(acc, statistic)
    part = Part(f"change of {spec['family']['metric_label']} per tenfold lr, {arm} - none",
                estimate, "> 0")
    lines = [f"  per tenfold lr (least squares over log10 lr), 95% CI: none {_ci(slopes[0])}, "
             f"{arm} {_ci(slopes[1])}"]
    means = np.nanmean(acc, axis=(2, 3))  # (lr, fc, norm)
    for j, fc in enumerate(paired.fcs):
        lines.append(f"    fc={fc}: " + "; ".join(
            f"{paired.norms[c]} " + ", ".join(f"lr={lr:g} {means[i, j, c]:.3f}"
                                              for i, lr in enumerate(paired.lrs))
            for c in (0, k)))
    plain = (f"Each tenfold increase of lr changed no-norm's accuracy by {_ci(slopes[0])} and "
             f"{label}'s by {_ci(slopes[1])} (95% CIs); {label} minus no-norm {{0}}")
    return Evidence("H3", (part,), estimate.p_above(0), estimate.p_below(0), lines, plain,
                    arm=arm)


def check_h4(paired: Paired, spec: dict, arm: str) -> Evidence:
    k, label = paired.norms.index(arm), norms.get(arm).label
    m = spec["H4"]["margin"]
    acc = paired(spec["family"]["metric"])

    def statistic(d: np.ndarray) -> np.ndarray:  # interaction none, arm; capacity none, arm
        inter, cap = _interaction(d, paired.lrs, paired.fcs), _capacity(d, paired.fcs)
        return np.column_stack([inter[:, 0], inter[:, k], cap[:, 0], cap[:, k]])

    none, other, *capacity = _estimates(acc, statistic)
    name = "lr x fc_units interaction over the grid's span"
    parts = (Part(f"{name}, none", none, f"beyond +-{m:g}"),
             Part(f"{name}, {arm}", other, f"within +-{m:g}"))
    train_capacity = _estimates(paired("final_train_acc"), lambda d: _capacity(
        d, paired.fcs)[:, [0, k]])
    lines = [f"  capacity's own effect (reported, not asserted): change from fc="
             f"{paired.fcs[0]} to fc={paired.fcs[-1]}, 95% CI"]
    for c, norm in enumerate(("none", arm)):
        lines.append(f"    {norm}: {spec['family']['metric_label']} {_ci(capacity[c])}; "
                     f"final train accuracy {_ci(train_capacity[c])}")
    p_holds = max(none.p_outside(m), other.p_within(m))
    p_refuted = min(1.0, 2 * min(none.p_within(m), other.p_outside(m)))
    plain = (f"How much the lr effect differs between fc={paired.fcs[0]} and "
             f"fc={paired.fcs[-1]} (the lr x capacity interaction) was {{0}} without "
             f"normalization and {{1}} with {label} (margin {m:g}); capacity itself moved "
             f"accuracy by {_ci(capacity[0])} without normalization and {_ci(capacity[1])} with "
             f"{label} (95% CIs)")
    return Evidence("H4", parts, p_holds, p_refuted, lines, plain, arm=arm)


def smoothness_pairs(paired: Paired, arm: str = "batchnorm") -> tuple[np.ndarray, int]:
    """log(beta none / beta arm) per pair, NaN where either run collapsed or diverged (a dead
    network is trivially smooth), and how many pairs that leaves out."""
    pair = [0, paired.norms.index(arm)]
    beta = paired("beta_smoothness")[..., pair]
    excluded = np.zeros(beta.shape, dtype=bool)
    for flag in EXCLUDED_FROM_SMOOTHNESS:
        excluded |= np.nan_to_num(paired(flag)[..., pair]) > 0
    pair_out = excluded.any(axis=-1)
    with np.errstate(all="ignore"):
        log_ratio = np.log(beta[..., 0] / beta[..., 1])
    valid = ~pair_out & np.isfinite(log_ratio)
    return np.where(valid, log_ratio, np.nan), int((~valid).sum())


def check_h5(paired: Paired, spec: dict, arm: str) -> Evidence:
    k, label = paired.norms.index(arm), norms.get(arm).label
    log_ratio, left_out = smoothness_pairs(paired, arm)
    estimate, *per_lr = _estimates(log_ratio, lambda d: np.column_stack(
        [over_replicates(d)] + [over_replicates(d[:, i:i + 1]) for i in range(len(d[0]))]))
    part = Part(f"mean paired log ratio of beta-smoothness, log(none / {arm})", estimate,
                "> 0")
    beta = paired("beta_smoothness")
    lines = [f"  pairs left out because a run collapsed or diverged: {left_out} of "
             f"{log_ratio.size}",
             f"  per lr (reported): log ratio [95% CI]; median beta-smoothness none vs {arm}"]
    for i, (lr, e) in enumerate(zip(paired.lrs, per_lr, strict=True)):
        kept = ~np.isnan(log_ratio[i])
        medians = [np.median(beta[i, ..., c][kept]) if kept.any() else math.nan
                   for c in (0, k)]
        lines.append(f"    lr={lr:g}: {_ci(e)}; beta {medians[0]:.3g} vs {medians[1]:.3g} "
                     f"({int(kept.sum())} pairs)")
    plain = ("Along Adam's own update, the mean log ratio of no-norm's beta-smoothness to "
             f"{label}'s was {{0}} (above 0: {label} smoother; {left_out} of "
             f"{log_ratio.size} pairs left out because a run collapsed or diverged)")
    return Evidence("H5", (part,), estimate.p_above(0), estimate.p_below(0), lines, plain,
                    arm=arm)


def headline(table: pd.DataFrame) -> dict[str, dict[str, Estimate]]:
    """Per norm, the mean final validation and test accuracy over every cell, with 95% CIs
    over replicates: the study's metric with nothing selected on the validation set."""
    paired = Paired(table)
    arrays = {metric: paired(metric) for metric in ("final_val_acc", "test_acc")}
    return {norm: {metric: _estimate(a[..., n], over_replicates)
                   for metric, a in arrays.items()} for n, norm in enumerate(paired.norms)}


CHECKS = {"H1": check_h1, "H2": check_h2, "H3": check_h3, "H4": check_h4, "H5": check_h5}


def statement(spec: dict, hypothesis: str, arm: str) -> str:
    """The registered statement, said of ``arm`` (its ``{norm}`` placeholder filled in)."""
    return spec[hypothesis]["statement"].format(norm=norms.get(arm).label)


def evaluate(table: pd.DataFrame, spec: dict | None = None,
             alpha: float | None = None) -> list[Verdict]:
    """Every hypothesis's verdict for every normalisation compared with none, on a complete
    table, judged as one family (Holm) at error rate ``alpha`` (default: the registered one;
    a sequential design passes each look's share)."""
    spec = spec or declared()
    paired = Paired(table)
    problems = grid_problems(tuple(paired.lrs), tuple(paired.fcs), tuple(paired.norms))
    if problems:
        raise ValueError("; ".join(problems))
    evidence = [_too_few(name, spec, paired, arm) or check(paired, spec, arm)
                for arm in paired.arms for name, check in CHECKS.items()]
    p = np.array([e.p_decision for e in evidence])
    alpha = spec["family"]["alpha"] if alpha is None else alpha
    levels, adjusted = holm_levels(p, alpha), holm(p)
    return [e.judged(level, adj, statement(spec, e.name, e.arm),
                     verdict_name(e.name, e.arm, paired.arms))
            for e, level, adj in zip(evidence, levels, adjusted, strict=True)]
