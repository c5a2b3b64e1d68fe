"""Replicates in rounds until every hypothesis is decided: a group-sequential design.

A study looks at its results after each round of replicates (``n_1 < n_2 < ... < n_K``, the
last the budget). At look k the whole family is judged as in a fixed design (Holm over every
hypothesis, ``hypotheses.evaluate``), but at the error rate an alpha-spending function allots
to that look: ``alpha_k = f(n_k / n_K) - f(n_(k-1) / n_K)``, with ``f(1) = alpha``. A
hypothesis keeps the first decision it reaches (holds, superior, non-inferior or refuted); the
study stops at the first look where every hypothesis is decided, or at the budget, where the
undecided ones are inconclusive.

The looks' rates add up to alpha, so the chance of any false decision over all looks is at
most alpha whatever the dependence between looks (a union bound: conservative, but it needs no
joint law of the bootstrap intervals, which exact group-sequential boundaries would).
Re-testing at alpha at every look would not keep it: ``benchmarks/calibration.py --sequential``
shows both.
"""

import math
from dataclasses import dataclass, field

import pandas as pd

from normcheck.hypotheses import Verdict, evaluate

SPENDING = ("pocock", "obrien-fleming")


def spent(spending: str, alpha: float, fraction: float) -> float:
    """Alpha spent by information fraction ``fraction`` (0..1) under a Lan-DeMets spending
    function: Pocock's type spends early, O'Brien-Fleming's keeps most for the last look."""
    if fraction <= 0:
        return 0.0
    fraction = min(fraction, 1.0)
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * fraction)
    if spending == "obrien-fleming":
        from scipy.special import ndtr, ndtri

        return float(2 - 2 * ndtr(ndtri(1 - alpha / 2) / math.sqrt(fraction)))
    raise ValueError(f"spending {spending!r}: use one of {', '.join(SPENDING)}")


@dataclass(frozen=True)
class Design:
    """When the study looks (``first`` replicates, then every ``round`` more, up to
    ``max_seeds``) and how it spends the family's ``alpha`` over the looks."""

    alpha: float = 0.05
    spending: str = "pocock"
    first: int = 5
    round: int = 5
    max_seeds: int = 30
    naive: bool = False  # every look at alpha: NOT valid, for the calibration's comparison

    def __post_init__(self) -> None:
        if self.spending not in SPENDING:
            raise ValueError(f"spending {self.spending!r}: use one of {', '.join(SPENDING)}")
        if not 1 <= self.first <= self.max_seeds or self.round < 1:
            raise ValueError(f"a design needs 1 <= first ({self.first}) <= max_seeds "
                             f"({self.max_seeds}) and round >= 1 ({self.round})")

    def looks(self) -> list[int]:
        """The replicates at each look, the last the budget."""
        looks = list(range(self.first, self.max_seeds, self.round))
        return looks + [self.max_seeds]

    def look_alphas(self) -> list[float]:
        """The family error rate each look is judged at; they add up to ``alpha``."""
        if self.naive:
            return [self.alpha] * len(self.looks())
        fractions = [n / self.max_seeds for n in self.looks()]
        cumulative = [spent(self.spending, self.alpha, f) for f in fractions]
        return [c - p for c, p in zip(cumulative, [0.0] + cumulative[:-1], strict=True)]

    def describe(self) -> str:
        looks = self.looks()
        return (f"group-sequential: looks after {', '.join(map(str, looks))} replicates, "
                f"family alpha {self.alpha:g} spent by a {self.spending} spending function "
                f"({', '.join(f'{a:.4f}' for a in self.look_alphas())}); a hypothesis keeps "
                "its first decision; stop when all are decided")


@dataclass(frozen=True)
class Look:
    """The family judged on the first ``replicates`` replicates at error rate ``alpha``."""

    replicates: int
    alpha: float
    verdicts: list[Verdict]


@dataclass
class Sequence:
    """A study's looks so far and each hypothesis's decision."""

    design: Design
    looks: list[Look] = field(default_factory=list)
    decided: dict[str, tuple[Verdict, int]] = field(default_factory=dict)  # name -> at n

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.looks[0].verdicts] if self.looks else []

    @property
    def done(self) -> bool:
        """Every hypothesis decided, or the budget spent."""
        return bool(self.looks) and (len(self.decided) == len(self.names) or
                                     self.looks[-1].replicates >= self.design.max_seeds)

    def next_replicates(self) -> int | None:
        """How many replicates the next look needs; None once the study is done."""
        if self.done:
            return None
        looks = self.design.looks()
        return looks[len(self.looks)]

    def look(self, table: pd.DataFrame, spec: dict | None = None) -> Look:
        """Judge the family on the next look's replicates of ``table`` (which must have them)."""
        n = self.next_replicates()
        if n is None:
            raise ValueError("the study is already decided")
        seeds = sorted(table["seed"].unique())
        if len(seeds) < n:
            raise ValueError(f"look {len(self.looks) + 1} needs {n} replicates; the table "
                             f"has {len(seeds)}")
        alpha = self.design.look_alphas()[len(self.looks)]
        verdicts = evaluate(table[table["seed"].isin(seeds[:n])], spec, alpha=alpha)
        self.looks.append(Look(n, alpha, verdicts))
        for v in verdicts:
            if v.name not in self.decided and v.outcome != "inconclusive":
                self.decided[v.name] = (v, n)
        return self.looks[-1]

    def verdicts(self) -> list[Verdict]:
        """Each hypothesis's decision, or its verdict at the last look (inconclusive)."""
        return [self.decided.get(v.name, (v, 0))[0] for v in self.looks[-1].verdicts]


def run(table: pd.DataFrame, design: Design, spec: dict | None = None) -> Sequence:
    """Every look ``table``'s replicates allow, stopping once the study is done."""
    sequence = Sequence(design)
    available = table["seed"].nunique()
    while not sequence.done and sequence.next_replicates() <= available:
        sequence.look(table, spec)
    return sequence
