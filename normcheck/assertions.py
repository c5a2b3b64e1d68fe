"""Claims about contrasts: what a hypothesis asserts of its replicates' values, and the
one-sided p-value of each way the family can decide it.

A claim is made of one contrast (``Replicates``: its median; ``Share``: a share of replicates;
``shrinks``: the reduction of a size), and says how its interval must lie:

- ``at_least(x, margin)``: above ``margin`` (``superior=True``: and, as a stronger claim, above
  0; a non-inferiority test when the margin is negative);
- ``above(x)``: above 0 (a share: above one half);
- ``within(x, margin)``: between -margin and +margin (equivalence, two one-sided tests);
- ``beyond(x, margin)``: further from 0 than margin, on either side;
- ``all_of(a, b, ...)``: every one of them (it holds when each holds; it is refuted when any
  is, Bonferroni over the parts).

Each claim gives the family (``normcheck.family``) p-values for "holds" and "refuted" (and
"superior"), and says, given the true values of its contrasts, which of those would be false
(``is_false``: what ``normcheck.simulation`` counts).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from normcheck.contrasts import Replicates, Share
from normcheck.multiplicity import HOLDS, REFUTED, SUPERIOR
from normcheck.stats import Estimated, Proportion, Reduction

Contrast = Replicates | Share


@dataclass(frozen=True)
class Part:
    """One estimated contrast a verdict rests on, and the claim made of it."""

    label: str
    estimate: Estimated
    claim: str  # how the interval must lie for the hypothesis to hold, e.g. "> -0.02"


@dataclass(frozen=True, eq=False)
class Shrinks:
    """The size of a contrast without the arm (``of``) minus its size with it (``to``):
    |median of ``of``| - |median of ``to``|."""

    of: Replicates
    to: Replicates


def shrinks(of: Replicates, to: Replicates) -> Shrinks:
    """How much the size of a contrast shrinks from ``of`` to ``to`` (e.g. an interaction
    without and with normalization)."""
    return Shrinks(of, to)


def _estimate(x: "Contrast | Shrinks") -> Estimated:
    if isinstance(x, Share):
        more = x.of.values
        return Proportion(int((more > 0).sum()), int((more != 0).sum()))
    if isinstance(x, Shrinks):
        return Reduction(x.of.median(), x.to.median())
    return x.median()


def _center(x: "Contrast | Shrinks", center: Callable) -> float:
    """What the contrast estimates, from many replicates: the center of its values, a share,
    or the reduction of two centers' sizes."""
    if isinstance(x, Share):
        more = x.of.values
        differ = np.count_nonzero(more)
        return float((more > 0).sum() / differ) if differ else 0.5
    if isinstance(x, Shrinks):
        return abs(float(center(x.of.values))) - abs(float(center(x.to.values)))
    return float(center(x.values))


def _replicates(x: "Contrast | Shrinks") -> int:
    """The replicates a sign test of the contrast uses (what "deciding needs" counts)."""
    e = _estimate(x.of if isinstance(x, Shrinks) else x)
    return e.n


def _side(value: float, tolerance: float) -> int:
    """+1 above 0, -1 below, 0 within the tolerance (at the boundary)."""
    return 1 if value > tolerance else -1 if value < -tolerance else 0


@dataclass(frozen=True, eq=False)
class Claim:
    """What a hypothesis asserts: its contrasts, each part's claim, and the p-values (computed
    when first asked: a simulation of what a truth's contrasts are needs none)."""

    contrasts: tuple["Contrast | Shrinks", ...]
    parts: tuple[Part, ...]
    p_values: Callable[[], dict[str, float]]  # HOLDS, REFUTED (and SUPERIOR) -> one-sided p
    holds_word: str  # "holds", or "non-inferior" where "superior" is the stronger claim
    replicates: int
    truth: Callable[[str, list[float], list[float]], bool]  # claim, values, tolerances

    @cached_property
    def p(self) -> dict[str, float]:
        return self.p_values()

    def true_values(self, center: Callable = np.nanmedian) -> list[float]:
        """What each part estimates, computed from this claim's (many) replicates."""
        return [_center(x, center) for x in self.contrasts]

    def is_false(self, claim: str, values: list[float], tolerance: list[float]) -> bool:
        """Whether ``claim`` (holds, refuted, superior) is false when the parts' true values
        are ``values``; a value within its tolerance of a boundary counts as on it, where the
        claims on both sides are false."""
        return self.truth(claim, values, tolerance)


def at_least(x: "Contrast | Shrinks", margin: float, label: str,
             superior: bool = False) -> Claim:
    """``x`` is above ``margin``; with ``superior``, "superior" (above 0) is a stronger claim,
    and "holds" reads "non-inferior"."""
    e = _estimate(x)
    text = f"> {margin:g}" + (" (non-inferior), > 0 (superior)" if superior else "")
    def p() -> dict[str, float]:
        return {HOLDS: e.p_above(margin), REFUTED: e.p_below(margin),
                **({SUPERIOR: e.p_above(0)} if superior else {})}

    def truth(claim: str, values: list[float], tol: list[float]) -> bool:
        bound = 0.0 if claim == SUPERIOR else margin
        side = _side(values[0] - bound, tol[0])
        return not (side < 0 if claim == REFUTED else side > 0)

    return Claim((x,), (Part(label, e, text),), p, "non-inferior" if superior else "holds",
                 _replicates(x), truth)


def above(x: "Contrast | Shrinks", label: str) -> Claim:
    """``x`` is above 0; a share of replicates, above one half."""
    return at_least(x, 0.5 if isinstance(x, Share) else 0.0, label)


def within(x: Replicates, margin: float, label: str) -> Claim:
    """``x`` is between -margin and +margin (equivalence: both one-sided tests must hold)."""
    e = _estimate(x)

    def p() -> dict[str, float]:
        return {HOLDS: max(e.p_above(-margin), e.p_below(margin)),
                REFUTED: min(1.0, 2 * min(e.p_below(-margin), e.p_above(margin)))}

    def truth(claim: str, values: list[float], tol: list[float]) -> bool:
        lower, upper = _side(values[0] + margin, tol[0]), _side(values[0] - margin, tol[0])
        if claim == HOLDS:
            return not (lower > 0 and upper < 0)
        return not (lower < 0 or upper > 0)

    return Claim((x,), (Part(label, e, f"in (-{margin:g}, {margin:g})"),), p, "holds",
                 _replicates(x), truth)


def beyond(x: Replicates, margin: float, label: str) -> Claim:
    """``x`` is further from 0 than ``margin``, on either side."""
    e = _estimate(x)

    def p() -> dict[str, float]:
        return {HOLDS: min(1.0, 2 * min(e.p_above(margin), e.p_below(-margin))),
                REFUTED: max(e.p_below(margin), e.p_above(-margin))}

    def truth(claim: str, values: list[float], tol: list[float]) -> bool:
        lower, upper = _side(values[0] + margin, tol[0]), _side(values[0] - margin, tol[0])
        if claim == HOLDS:
            return not (lower < 0 or upper > 0)
        return not (lower > 0 and upper < 0)

    return Claim((x,), (Part(label, e, f"outside [-{margin:g}, {margin:g}]"),), p, "holds",
                 _replicates(x), truth)


def all_of(*claims: Claim) -> Claim:
    """Every claim at once: it holds when each holds (the largest p, at no cost), and it is
    refuted when any one is (the smallest p, Bonferroni over the parts)."""
    def p() -> dict[str, float]:
        return {HOLDS: max(c.p[HOLDS] for c in claims),
                REFUTED: min(1.0, len(claims) * min(c.p[REFUTED] for c in claims))}

    sizes = [len(c.contrasts) for c in claims]

    def truth(claim: str, values: list[float], tol: list[float]) -> bool:
        start, false = 0, []
        for c, size in zip(claims, sizes, strict=True):
            false.append(c.is_false(claim, values[start:start + size],
                                    tol[start:start + size]))
            start += size
        return any(false) if claim == HOLDS else all(false)

    return Claim(tuple(x for c in claims for x in c.contrasts),
                 tuple(part for c in claims for part in c.parts), p, "holds",
                 max(c.replicates for c in claims), truth)


def values_of(claim: Claim) -> list[np.ndarray]:
    """Each contrast's per-replicate values (a ``shrinks`` gives its two), in order."""
    out: list[np.ndarray] = []
    for x in claim.contrasts:
        if isinstance(x, Shrinks):
            out += [x.of.values, x.to.values]
        else:
            out.append((x.of if isinstance(x, Share) else x).values)
    return out

