"""The study's hypotheses, decided as one family from a table of recorded runs.

``evaluate`` takes the metrics table (one row per run, as in ``metrics.csv``) and returns one
``Verdict`` per hypothesis and normalisation compared with none (``H1`` when the grid has one
such arm, ``H1-layernorm`` etc. when it has several). Each hypothesis reduces every replicate
to one or two contrasts (``gather``), each contrast is estimated with an exact test over the
replicates (``normcheck.stats``), and one graphical closed test over every claim of every
hypothesis (``normcheck.multiplicity``) decides which claims are made, and at what level their
intervals are read. Statements, margins and the family's error rate live in
``hypotheses.toml``.
"""

import math
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.multiplicity import HOLDS, REFUTED, SUPERIOR, Decisions, Graph, node
from normcheck.norms import CONTROL
from normcheck.stats import (
    Estimated,
    Median,
    Proportion,
    Reduction,
    from_dict,
    holm,
    needs,
    signed,
)

PASSING = {"holds", "superior", "non-inferior"}
VERDICTS = PASSING | {"inconclusive", "refuted"}
EXCLUDED_FROM_SMOOTHNESS = ("collapsed", "diverged")
Contrasts = dict[str, np.ndarray]  # "H1", "H2.1", ... -> one value per replicate


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
    estimate: Estimated
    claim: str  # how the interval must lie for the hypothesis to hold, e.g. "> -0.02"


@dataclass(frozen=True)
class Verdict:
    name: str  # "H1", or "H1-layernorm" when the grid compares several normalisations
    statement: str
    outcome: str  # holds | superior | non-inferior | inconclusive | refuted
    parts: tuple[Part, ...]  # intervals at the level the family's procedure judged them
    p_value: float  # adjusted p-value of the verdict's strongest claim (holds or refuted)
    details: str  # the numbers behind it, one line each
    plain: str = ""  # a sentence in plain words with the numbers, no full stop
    hypothesis: str = ""  # "H1"
    arm: str = ""  # the normalisation compared with none

    @property
    def passed(self) -> bool:
        return self.outcome in PASSING

    @property
    def estimate(self) -> Estimated | None:
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
        return "\n  ".join(lines) + f"\n  adjusted p = {self.p_value:.4f}"

    @property
    def message(self) -> str:
        return f"{self.name} {self.outcome.upper()}: {self.statement}\n  {self.summary}\n" \
               f"{self.details}"

    def to_dict(self) -> dict:
        return {**asdict(self), "parts": [{"label": p.label, "estimate": p.estimate.to_dict(),
                                           "claim": p.claim} for p in self.parts]}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        parts = tuple(Part(p["label"], from_dict(p["estimate"]), p["claim"])
                      for p in d["parts"])
        return cls(**{**d, "parts": parts})


@dataclass(frozen=True)
class Evidence:
    """A hypothesis's contrasts and the one-sided p-value of each claim it can make, before
    the family's procedure judges them."""

    name: str  # "H1"
    arm: str
    parts: tuple[Part, ...]
    p: dict[str, float]  # claim (holds, refuted, superior) -> one-sided p-value
    lines: list[str] = field(default_factory=list)
    plain: str = ""  # no full stop; {0}, {1}: the parts' estimates at the judged level
    holds_word: str = "holds"
    replicates: int = 0  # replicates the contrasts use

    def verdict(self, decisions: Decisions, adjusted: dict[str, float], key: str,
                statement: str, share: float, alpha: float) -> Verdict:
        """The verdict from the family's ``decisions`` (its claims under ``key``), with the
        intervals at the level this look's ``share`` of ``alpha`` gives the claim "holds"."""
        claim = decisions.claim(key)
        word = {SUPERIOR: "superior", HOLDS: self.holds_word, REFUTED: "refuted",
                None: "inconclusive"}[claim]
        one_sided = decisions.levels[node(key, HOLDS)] / alpha * share
        parts = tuple(Part(p.label, p.estimate.at(1 - 2 * one_sided), p.claim)
                      for p in self.parts)
        lines = list(self.lines)
        if claim is None and 0 < self.replicates < needs(one_sided):
            lines.insert(0, f"  a sign test over {self.replicates} replicates cannot reach "
                            f"one-sided level {one_sided:.3g} (its smallest p-value is "
                            f"2^-{self.replicates}): deciding needs at least "
                            f"{needs(one_sided)} replicates")
        p_value = min(adjusted[node(key, c)] for c in (HOLDS, REFUTED))
        plain = self.plain.format(*(_ci(p.estimate) for p in parts))
        return Verdict(key, statement, word, parts, p_value, "\n".join(lines), plain,
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
        slots = table.set_index(keys).reindex(index)
        self._arrays = lambda metric: slots[metric].to_numpy(dtype=float).reshape(self.shape)

    @classmethod
    def of_arrays(cls, arrays: dict[str, np.ndarray], lrs: list[float], fcs: list[int],
                  names: list[str]) -> "Paired":
        """Arrays already shaped (lr, fc_units, dropout, replicate, norm), lr high first:
        simulated studies, without building a table."""
        paired = cls.__new__(cls)
        paired.lrs, paired.fcs, paired.norms = list(lrs), list(fcs), list(names)
        shape = next(iter(arrays.values())).shape
        paired.dropouts, paired.seeds = [0.0] * shape[2], list(range(shape[3]))
        paired._arrays = lambda metric: np.asarray(arrays[metric], dtype=float)
        return paired

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.lrs), len(self.fcs), len(self.dropouts), len(self.seeds),
                len(self.norms))

    def first(self, n: int) -> "Paired":
        """The first ``n`` replicates only (a look at a study in rounds)."""
        paired = Paired.__new__(Paired)
        paired.__dict__.update(self.__dict__)
        paired.seeds = self.seeds[:n]
        paired._arrays = lambda metric: self(metric)[:, :, :, :n]
        return paired

    @property
    def arms(self) -> list[str]:
        """The normalisations compared with none (norm axis 1, 2, ...)."""
        return self.norms[1:]

    def __call__(self, metric: str) -> np.ndarray:
        return self._arrays(metric)


def _nanmean(a: np.ndarray, axis) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate with no valid cell
        return np.nanmean(a, axis=axis)


def per_replicate(per_cell: np.ndarray) -> np.ndarray:
    """(lr, fc, dropout, replicate, ...) -> (replicate, ...): each replicate's mean over its
    cells, so that every replicate is one value."""
    return _nanmean(per_cell, axis=(0, 1, 2))


def _slope_weights(values: list[float], transform) -> np.ndarray:
    """Least-squares slope weights over transformed axis values."""
    x = np.array([transform(v) for v in values], dtype=float)
    centered = x - x.mean()
    return centered / np.sum(centered ** 2)


def _span_weights(values: list[float], transform) -> np.ndarray:
    """Slope weights scaled to the axis's span: the change from its lowest to highest value."""
    x = [transform(v) for v in values]
    return _slope_weights(values, transform) * (max(x) - min(x))


def lr_slope(acc: np.ndarray, lrs: list[float]) -> np.ndarray:
    """(lr, fc, dropout, replicate, norm) -> (replicate, norm): accuracy change per tenfold
    increase of lr (least squares over log10 lr), averaged over the replicate's other cells."""
    per = np.tensordot(_slope_weights(lrs, math.log10), acc, axes=([0], [0]))
    return _nanmean(per, axis=(0, 1))


def interaction(acc: np.ndarray, lrs: list[float], fcs: list[int]) -> np.ndarray:
    """(lr, fc, dropout, replicate, norm) -> (replicate, norm): the linear x linear lr x
    fc_units interaction over the grid's span (log10 lr, log2 fc_units). On a 2 x 2 grid it is
    (acc[hi lr, hi fc] - acc[lo lr, hi fc]) - (acc[hi lr, lo fc] - acc[lo lr, lo fc])."""
    w = np.outer(_span_weights(lrs, math.log10), _span_weights(fcs, math.log2))
    return _nanmean(np.tensordot(w, acc, axes=([0, 1], [0, 1])), axis=0)


def capacity(acc: np.ndarray, fcs: list[int]) -> np.ndarray:
    """(lr, fc, dropout, replicate, norm) -> (replicate, norm): accuracy change from the
    narrowest to the widest classifier (least squares over log2 fc_units)."""
    per = np.tensordot(_span_weights(fcs, math.log2), acc, axes=([0], [1]))
    return _nanmean(per, axis=(0, 1))


def _ci(e: Estimated) -> str:
    return f"{signed(e.value, 3)} [{signed(e.low, 3)}, {signed(e.high, 3)}]"


def _median(values: np.ndarray) -> Median:
    return Median.of(values)


def contrasts(paired: Paired, spec: dict, arm: str) -> Contrasts:
    """Each replicate's contrasts for the hypotheses of ``arm`` against none, one value per
    replicate (NaN where a replicate has none): ``H1`` the mean paired difference of the
    metric; ``H2.1`` how many more unstable runs none had than ``arm`` at the high lr;
    ``H2.2`` none's metric at the lowest lr minus at the high lr; ``H3`` the difference of the
    lr slopes; ``H4.1``, ``H4.2`` the lr x fc_units interaction of none and of ``arm``; ``H5``
    the mean log ratio of beta-smoothness over pairs where neither run collapsed."""
    k = paired.norms.index(arm)
    acc = paired(spec["family"]["metric"])
    high, low = paired.lrs.index(spec["H2"]["high_lr"]), len(paired.lrs) - 1
    counts = np.nansum(paired("unstable")[high], axis=(0, 1))  # (replicate, norm)
    slope = lr_slope(acc, paired.lrs)
    inter = interaction(acc, paired.lrs, paired.fcs)
    return {"H1": per_replicate(acc[..., k] - acc[..., 0]),
            "H2.1": counts[:, 0] - counts[:, k],
            "H2.2": _nanmean(acc[low, ..., 0] - acc[high, ..., 0], axis=(0, 1)),
            "H3": slope[:, k] - slope[:, 0],
            "H4.1": inter[:, 0], "H4.2": inter[:, k],
            "H5": per_replicate(smoothness_pairs(paired, arm)[0])}


def check_h1(paired: Paired, spec: dict, arm: str, c: Contrasts) -> Evidence:
    k, label, m = paired.norms.index(arm), norms.get(arm).label, spec["H1"]["margin"]
    acc = paired(spec["family"]["metric"])
    diff = acc[..., k] - acc[..., 0]  # (lr, fc, dropout, replicate)
    estimate = _median(c["H1"])
    part = Part(f"median over replicates of the mean paired difference of "
                f"{spec['family']['metric_label']}, {arm} - none", estimate,
                f"> {-m:g} (non-inferior), > 0 (superior)")
    cells = [(i, j, c) for i in range(len(paired.lrs)) for j in range(len(paired.fcs))
             for c in range(len(paired.dropouts))]
    per_cell = [_median(diff[i, j, c]) for i, j, c in cells]
    adjusted = holm(np.array([min(1.0, 2 * min(e.p_above(0), e.p_below(0)))
                              for e in per_cell]))
    pairs = int(np.isfinite(diff).sum())
    wins = f"{label} won {int((diff > 0).sum())} of {pairs} pairs"
    lines = [f"  {wins} (replicate x cell), tied {int((diff == 0).sum())}; mean over "
             f"replicates {estimate.mean:+.4f} (descriptive)",
             "  per cell (reported, not asserted): median difference [95% CI], Holm p over "
             "cells (two-sided sign tests)"]
    for (i, j, c), e, p in zip(cells, per_cell, adjusted, strict=True):
        drop = f" dropout={paired.dropouts[c]:g}" if len(paired.dropouts) > 1 else ""
        lines.append(f"    lr={paired.lrs[i]:g} fc={paired.fcs[j]}{drop}: {_ci(e)}  "
                     f"holm p={p:.3f}")
    plain = (f"{label}'s {spec['family']['metric_label']} was higher than no "
             f"normalization's by {{0}} in the median replicate (averaged over its cells); "
             f"{wins}")
    return Evidence("H1", arm, (part,), {HOLDS: estimate.p_above(-m),
                                         REFUTED: estimate.p_below(-m),
                                         SUPERIOR: estimate.p_above(0)},
                    lines, plain, "non-inferior", estimate.n)


def check_h2(paired: Paired, spec: dict, arm: str, c: Contrasts) -> Evidence:
    h, k, label = spec["H2"], paired.norms.index(arm), norms.get(arm).label
    high, low = paired.lrs.index(h["high_lr"]), len(paired.lrs) - 1
    unstable, acc = paired("unstable"), paired(spec["family"]["metric"])
    more = c["H2.1"]
    rate = Proportion(int((more > 0).sum()), int((more != 0).sum()))
    drop = _median(c["H2.2"])
    hi, lo = f"{h['high_lr']:g}", f"{paired.lrs[low]:g}"
    parts = (Part(f"share of replicates with more unstable runs at lr={hi} without "
                  f"normalization than with {arm}, of those where the two differ", rate,
                  "> 0.5"),
             Part(f"median over replicates of none's {spec['family']['metric_label']} at "
                  f"lr={lo} minus at lr={hi}", drop, "> 0"))
    n = unstable[high, ..., 0].size
    count = [int(np.nansum(unstable[high, ..., c])) for c in (0, k)]
    sds = [np.nanstd(acc[high, ..., c], ddof=1) for c in (0, k)]
    lines = [f"  unstable runs at lr={hi} (diverged, collapsed or loss up): none "
             f"{count[0]}/{n}, {arm} {count[1]}/{n}; replicates where none had more: "
             f"{rate.k}, fewer: {rate.n - rate.k}, as many: {len(more) - rate.n}",
             f"  sd of {spec['family']['metric_label']} across runs at lr={hi}: none "
             f"{sds[0]:.3f}, {arm} {sds[1]:.3f}"]
    for j, fc in enumerate(paired.fcs):
        lines.append(f"    fc={fc}: none mean {np.nanmean(acc[low, j, ..., 0]):.3f} at lr={lo} "
                     f"vs {np.nanmean(acc[high, j, ..., 0]):.3f} at lr={hi}; unstable none "
                     f"{int(np.nansum(unstable[high, j, ..., 0]))}, {arm} "
                     f"{int(np.nansum(unstable[high, j, ..., k]))}")
    plain = (f"At lr={hi}, {count[0]} of {n} runs without normalization were unstable against "
             f"{count[1]} of {n} with {label}; of the {rate.n} replicates where the two "
             f"differed, no-norm had more in a share {{0}}; no-norm's accuracy there was lower "
             f"than at lr={lo} by {{1}} in the median replicate")
    return Evidence("H2", arm, parts,
                    {HOLDS: max(rate.p_above(0.5), drop.p_above(0)),  # both parts: no cost
                     REFUTED: min(1.0, 2 * min(rate.p_below(0.5), drop.p_below(0)))},
                    lines, plain, replicates=drop.n)


def check_h3(paired: Paired, spec: dict, arm: str, c: Contrasts) -> Evidence:
    k, label = paired.norms.index(arm), norms.get(arm).label
    slope = lr_slope(paired(spec["family"]["metric"]), paired.lrs)  # (replicate, norm)
    estimate = _median(c["H3"])
    part = Part(f"median over replicates of the change of {spec['family']['metric_label']} "
                f"per tenfold lr, {arm} - none", estimate, "> 0")
    each = [_median(slope[:, c]) for c in (0, k)]
    lines = [f"  per tenfold lr (least squares over log10 lr), median [95% CI]: none "
             f"{_ci(each[0])}, {arm} {_ci(each[1])}"]
    means = np.nanmean(paired(spec["family"]["metric"]), axis=(2, 3))  # (lr, fc, norm)
    for j, fc in enumerate(paired.fcs):
        lines.append(f"    fc={fc}: " + "; ".join(
            f"{paired.norms[c]} " + ", ".join(f"lr={lr:g} {means[i, j, c]:.3f}"
                                              for i, lr in enumerate(paired.lrs))
            for c in (0, k)))
    plain = (f"Each tenfold increase of lr changed no-norm's accuracy by {_ci(each[0])} and "
             f"{label}'s by {_ci(each[1])} (medians over replicates, 95% CIs); {label} minus "
             f"no-norm {{0}}")
    return Evidence("H3", arm, (part,), {HOLDS: estimate.p_above(0),
                                         REFUTED: estimate.p_below(0)},
                    lines, plain, replicates=estimate.n)


def check_h4(paired: Paired, spec: dict, arm: str, c: Contrasts) -> Evidence:
    k, label, m = paired.norms.index(arm), norms.get(arm).label, spec["H4"]["margin"]
    acc = paired(spec["family"]["metric"])
    none, other = _median(c["H4.1"]), _median(c["H4.2"])
    reduction = Reduction(none, other)
    name = "lr x fc_units interaction over the grid's span"
    parts = (Part(f"size of the {name}: |none| - |{arm}| (medians over replicates)",
                  reduction, f"> {m:g}"),)
    cap = capacity(acc, paired.fcs)
    train_cap = capacity(paired("final_train_acc"), paired.fcs)
    lines = [f"  the interaction, median over replicates [95% CI]: none {_ci(none)}, {arm} "
             f"{_ci(other)}",
             f"  capacity's own effect (reported, not asserted): change from fc="
             f"{paired.fcs[0]} to fc={paired.fcs[-1]}, median [95% CI]"]
    for c, norm in ((0, "none"), (k, arm)):
        lines.append(f"    {norm}: {spec['family']['metric_label']} {_ci(_median(cap[:, c]))};"
                     f" final train accuracy {_ci(_median(train_cap[:, c]))}")
    plain = (f"How much the lr effect differs between fc={paired.fcs[0]} and "
             f"fc={paired.fcs[-1]} (the lr x capacity interaction) was {_ci(none)} without "
             f"normalization and {_ci(other)} with {label} (medians, 95% CIs); its size "
             f"shrank by {{0}} (margin {m:g}); capacity itself moved accuracy by "
             f"{_ci(_median(cap[:, 0]))} without normalization and {_ci(_median(cap[:, k]))} "
             f"with {label}")
    return Evidence("H4", arm, parts, {HOLDS: reduction.p_above(m),
                                       REFUTED: reduction.p_below(m)},
                    lines, plain, replicates=none.n)


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


def check_h5(paired: Paired, spec: dict, arm: str, c: Contrasts) -> Evidence:
    k, label = paired.norms.index(arm), norms.get(arm).label
    log_ratio, left_out = smoothness_pairs(paired, arm)
    estimate = _median(c["H5"])
    part = Part(f"median over replicates of the mean paired log ratio of beta-smoothness, "
                f"log(none / {arm})", estimate, "> 0")
    beta = paired("beta_smoothness")
    lines = [f"  pairs left out because a run collapsed or diverged: {left_out} of "
             f"{log_ratio.size}; replicates with no pair left: {estimate.missing}",
             f"  per lr (reported): median log ratio [95% CI]; median beta-smoothness none vs "
             f"{arm}"]
    for i, lr in enumerate(paired.lrs):
        kept = ~np.isnan(log_ratio[i])
        medians = [np.median(beta[i, ..., c][kept]) if kept.any() else math.nan
                   for c in (0, k)]
        e = _median(per_replicate(log_ratio[i:i + 1]))
        lines.append(f"    lr={lr:g}: {_ci(e)}; beta {medians[0]:.3g} vs {medians[1]:.3g} "
                     f"({int(kept.sum())} pairs)")
    plain = ("Along Adam's own update, the log ratio of no-norm's beta-smoothness to "
             f"{label}'s was {{0}} in the median replicate (above 0: {label} smoother; "
             f"{left_out} of {log_ratio.size} pairs left out because a run collapsed or "
             "diverged)")
    return Evidence("H5", arm, (part,), {HOLDS: estimate.p_above(0),
                                         REFUTED: estimate.p_below(0)},
                    lines, plain, replicates=estimate.n)


def headline(table: pd.DataFrame) -> dict[str, dict[str, Median]]:
    """Per norm, each replicate's mean final validation and test accuracy over every cell,
    as a median with its 95% interval: the study's metric with nothing selected on the
    validation set."""
    paired = Paired(table)
    arrays = {metric: per_replicate(paired(metric)) for metric in ("final_val_acc", "test_acc")}
    return {norm: {metric: _median(a[:, n]) for metric, a in arrays.items()}
            for n, norm in enumerate(paired.norms)}


CHECKS = {"H1": check_h1, "H2": check_h2, "H3": check_h3, "H4": check_h4, "H5": check_h5}
STRONGER = ("H1",)  # hypotheses with a "superior" claim after "holds" (non-inferior)


def statement(spec: dict, hypothesis: str, arm: str) -> str:
    """The registered statement, said of ``arm`` (its ``{norm}`` placeholder filled in)."""
    return spec[hypothesis]["statement"].format(norm=norms.get(arm).label)


@dataclass(frozen=True)
class Family:
    """A grid's hypotheses, their evidence on one table, and the graph that judges them."""

    evidence: tuple[Evidence, ...]
    names: tuple[str, ...]  # verdict names, H1 or H1-layernorm, in the evidence's order

    @property
    def graph(self) -> Graph:
        return Graph.family(list(self.names), tuple(n for n, e in zip(
            self.names, self.evidence, strict=True) if e.name in STRONGER))

    @property
    def p(self) -> dict[str, float]:
        """Every claim's one-sided p-value, keyed ``H1:holds`` etc."""
        return {node(n, c): p for n, e in zip(self.names, self.evidence, strict=True)
                for c, p in e.p.items()}

    def judge(self, p: dict[str, float], alpha: float, share: float,
              spec: dict) -> tuple[list[Verdict], Decisions]:
        """The verdicts when the family's claims have p-values ``p`` (this table's, or over
        looks), the family's error rate is ``alpha`` and this table's intervals are read at
        its ``share`` of it; and the graph's decisions they come from."""
        graph = self.graph
        decisions, adjusted = graph.test(p, alpha), graph.adjusted(p)
        return [e.verdict(decisions, adjusted, n, statement(spec, e.name, e.arm), share, alpha)
                for n, e in zip(self.names, self.evidence, strict=True)], decisions

    def verdicts(self, p: dict[str, float], alpha: float, share: float,
                 spec: dict) -> list[Verdict]:
        """``judge``'s verdicts alone."""
        return self.judge(p, alpha, share, spec)[0]


def gather(table: pd.DataFrame, spec: dict | None = None) -> Family:
    """Every hypothesis's evidence for every normalisation compared with none, on a complete
    table."""
    return gather_paired(Paired(table), spec)


def gather_paired(paired: Paired, spec: dict | None = None) -> Family:
    """``gather`` on the table's arrays."""
    spec = spec or declared()
    problems = grid_problems(tuple(paired.lrs), tuple(paired.fcs), tuple(paired.norms))
    if problems:
        raise ValueError("; ".join(problems))
    evidence = []
    for arm in paired.arms:
        c = contrasts(paired, spec, arm)
        evidence += [check(paired, spec, arm, c) for check in CHECKS.values()]
    return Family(tuple(evidence), tuple(verdict_name(e.name, e.arm, paired.arms)
                                         for e in evidence))


def evaluate(table: pd.DataFrame, spec: dict | None = None,
             alpha: float | None = None) -> list[Verdict]:
    """Every hypothesis's verdict for every normalisation compared with none, on a complete
    table, judged as one family at error rate ``alpha`` (default: the registered one)."""
    spec = spec or declared()
    family = gather(table, spec)
    alpha = spec["family"]["alpha"] if alpha is None else alpha
    return family.verdicts(family.p, alpha, alpha, spec)
