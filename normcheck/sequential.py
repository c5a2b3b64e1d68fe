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

from normcheck.hypotheses import Verdict, declared, evaluate

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

    @classmethod
    def declared(cls, spec: dict | None = None, **overrides: int | None) -> "Design":
        """The design registered in ``hypotheses.toml`` (``[sequential]``), with any of
        ``first``, ``round`` and ``max_seeds`` given (not None) instead."""
        spec = spec or declared()
        values = {k: spec["sequential"][k] for k in ("spending", "first", "round", "max_seeds")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(alpha=spec["family"]["alpha"], **values)

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
        return self._add(Look(n, alpha, verdicts))

    def _add(self, look: Look) -> Look:
        """Append a look; each hypothesis it decides for the first time keeps that decision."""
        self.looks.append(look)
        for v in look.verdicts:
            if v.name not in self.decided and v.outcome != "inconclusive":
                self.decided[v.name] = (v, look.replicates)
        return look

    def verdicts(self) -> list[Verdict]:
        """Each hypothesis's decision, or its verdict at the last look (inconclusive)."""
        return [self.decided.get(v.name, (v, 0))[0] for v in self.looks[-1].verdicts]

    def to_dict(self) -> list[dict]:
        return [{"replicates": look.replicates, "alpha": look.alpha,
                 "verdicts": [v.to_dict() for v in look.verdicts]} for look in self.looks]

    @classmethod
    def from_dict(cls, design: Design, looks: list[dict]) -> "Sequence":
        sequence = cls(design)
        for look in looks:
            sequence._add(Look(look["replicates"], look["alpha"],
                               [Verdict.from_dict(v) for v in look["verdicts"]]))
        return sequence

    def needed(self, look: int = 0) -> dict[str, int | None]:
        """About how many replicates each hypothesis undecided at ``look`` (default: the first,
        the pilot) needs, if its effect is what that look shows and its interval narrows as
        1/sqrt(n): its decision p-value read as a z score, scaled to the z the last look's
        share of alpha asks for. None: that look shows no effect to find."""
        from scipy.special import ndtri

        seen = self.looks[look]
        alphas = self.design.look_alphas()
        out: dict[str, int | None] = {}
        for v in seen.verdicts:
            if v.outcome != "inconclusive":
                out[v.name] = seen.replicates
                continue
            z0 = float(ndtri(1 - min(v.p_value, 0.999) / 2)) if v.parts else 0.0
            z = float(ndtri(1 - alphas[-1] / len(seen.verdicts) / 2))
            out[v.name] = None if z0 < 0.5 else math.ceil(seen.replicates * (z / z0) ** 2)
        return out

    def undecided_at_budget(self) -> dict[str, int | None]:
        """Once the budget is spent: each hypothesis still undecided, and the replicates it
        would likely need at the effect the last look shows."""
        if not self.looks or self.looks[-1].replicates < self.design.max_seeds:
            return {}
        return {k: n for k, n in self.needed(-1).items() if k not in self.decided}

    def markdown(self) -> str:
        """The design, each hypothesis's interval after each look, and where it was decided."""
        lines = [f"Design: {self.design.describe()}.", ""]
        if self.looks:
            needed = self.needed()
            lines += ["Replicates each hypothesis would need, estimated after the pilot look "
                      f"({self.looks[0].replicates} replicates) at the effects it showed: "
                      + ", ".join(f"{k} {'-' if n is None else n}" for k, n in needed.items())
                      + " (- : no effect seen to find).", ""]
            header = "| hypothesis | " + " | ".join(f"{look.replicates} replicates "
                                                   f"(alpha {look.alpha:.4f})"
                                                   for look in self.looks) + " | decided |"
            lines += [header, "|" + "---|" * (len(self.looks) + 2)]
            for name in self.names:
                cells = []
                for look in self.looks:
                    v = next(x for x in look.verdicts if x.name == name)
                    e = v.estimate
                    cells.append(f"{v.outcome}" + (f" {e.value:+.3f} [{e.low:+.3f}, "
                                                   f"{e.high:+.3f}]" if e else ""))
                at = self.decided.get(name)
                lines.append(f"| {name} | " + " | ".join(cells) + " | "
                             + (f"after {at[1]} replicates" if at else "no (inconclusive)")
                             + " |")
            left = self.undecided_at_budget()
            if left:
                lines += ["", "Undecided at the budget of "
                          f"{self.design.max_seeds} replicates, and the replicates each would "
                          "likely need at the effect the last look shows: " + ", ".join(
                              f"{k} {'no effect seen' if n is None else n}"
                              for k, n in left.items()) + "."]
        return "\n".join(lines)


def run(table: pd.DataFrame, design: Design, spec: dict | None = None) -> Sequence:
    """Every look ``table``'s replicates allow, stopping once the study is done."""
    sequence = Sequence(design)
    available = table["seed"].nunique()
    while not sequence.done and sequence.next_replicates() <= available:
        sequence.look(table, spec)
    return sequence
