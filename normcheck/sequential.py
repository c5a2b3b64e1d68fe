"""Replicates in rounds until every hypothesis is decided: a group-sequential design.

A study looks at its results after each round of replicates (``n_1 < n_2 < ... < n_K``, the
last the budget). Look k may spend the share ``alpha_k = f(n_k / n_K) - f(n_(k-1) / n_K)`` of
the family's alpha that a Lan-DeMets spending function ``f`` allots it (``f(1) = alpha``). The
family is judged by one graphical closed test over every claim (``normcheck.multiplicity``):
at look k a claim is made when its p-value at this or any earlier look is at most its weight
times that look's share, and a claim made passes its weight on, also to claims tested at
earlier looks (Maurer and Bretz 2013). The shares add up to alpha, so the chance of any false
claim over all looks is at most alpha whatever the dependence between looks and claims (a
union bound: conservative, but it needs no joint law of the sign tests across looks, which
exact group-sequential boundaries would).

A claim once made stays made (its weight and its p-values only grow and shrink), so a
hypothesis keeps its decision; H1's "non-inferior" can become "superior" at a later look, a
rule fixed in advance and inside the same alpha. The study stops at the first look where
every hypothesis is decided, at the budget, or, by a non-binding futility rule, when every
hypothesis still undecided would likely stay so: the conditional power of each of its claims
at the last look, at the trend seen and the level it has now, is below ``futility``. Stopping
for futility only leaves hypotheses inconclusive, so it costs no alpha; a study that went on
would keep its error control too.

The design is part of the registration; ``Design.digest`` names it, and a study's looks are
stored with it, so that a study is never resumed or rebuilt under another design.
"""

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from normcheck.contrasts import Paired
from normcheck.family import Family
from normcheck.multiplicity import HOLDS, REFUTED, node, over_looks
from normcheck.registration import declared
from normcheck.verdicts import Verdict

SPENDING = ("pocock", "obrien-fleming")


class DesignMismatch(ValueError):
    """A study's stored looks were taken under another design."""


class LooksChanged(ValueError):
    """A study's stored looks were taken on other runs than those in the store now."""


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
    ``max_seeds``), from which seed its replicates start, how it spends the family's
    ``alpha`` over the looks, and the conditional power below which a hypothesis is futile."""

    alpha: float = 0.05
    spending: str = "pocock"
    first: int = 10
    round: int = 5
    max_seeds: int = 40
    base_seed: int = 100000
    futility: float = 0.1
    version: int = 0  # the registration's version
    naive: bool = False  # every look at alpha: NOT valid, for the calibration's comparison

    def __post_init__(self) -> None:
        if self.spending not in SPENDING:
            raise ValueError(f"spending {self.spending!r}: use one of {', '.join(SPENDING)}")
        if not 1 <= self.first <= self.max_seeds or self.round < 1:
            raise ValueError(f"a design needs 1 <= first ({self.first}) <= max_seeds "
                             f"({self.max_seeds}) and round >= 1 ({self.round}); pass --first, "
                             "--round and --max-seeds that do")
        if not 0 <= self.futility < 1:
            raise ValueError(f"futility {self.futility!r}: use a conditional power in [0, 1)")

    @classmethod
    def declared(cls, spec: dict | None = None, **overrides: int | None) -> "Design":
        """The design registered in ``hypotheses.toml`` (``[sequential]``), with any of
        ``first``, ``round``, ``max_seeds`` and ``base_seed`` given (not None) instead."""
        spec = spec or declared()
        names = ("spending", "first", "round", "max_seeds", "base_seed", "futility")
        values = {k: spec["sequential"][k] for k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(alpha=spec["family"]["alpha"], version=spec["version"], **values)

    def looks(self) -> list[int]:
        """The replicates at each look, the last the budget."""
        return list(range(self.first, self.max_seeds, self.round)) + [self.max_seeds]

    def look_alphas(self) -> list[float]:
        """The share of alpha each look may spend; they add up to ``alpha``."""
        if self.naive:
            return [self.alpha] * len(self.looks())
        cumulative = [spent(self.spending, self.alpha, n / self.max_seeds)
                      for n in self.looks()]
        return [c - p for c, p in zip(cumulative, [0.0] + cumulative[:-1], strict=True)]

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        """A short hash of everything the design fixes."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        return (f"group-sequential design {self.digest} (registration version "
                f"{self.version}): replicates from seed {self.base_seed}, looks after "
                f"{', '.join(map(str, self.looks()))}, family alpha {self.alpha:g} spent by a "
                f"{self.spending} spending function "
                f"({', '.join(f'{a:.4f}' for a in self.look_alphas())}); a claim once made "
                f"stays made, non-inferior may become superior; stop when every hypothesis is "
                f"decided, or (non-binding) when each one left has conditional power below "
                f"{self.futility:g}")


@dataclass(frozen=True)
class Look:
    """The family judged on the first ``replicates`` replicates: the share of alpha this
    look spends, every claim's p-value here, and the verdicts over the looks so far."""

    replicates: int
    share: float
    p: dict[str, float]
    verdicts: list[Verdict]
    weights: dict[str, float]  # each claim's weight after this look's decisions
    futile: tuple[str, ...] = ()  # hypotheses undecided here that would likely stay so


@dataclass
class Rounds:
    """A study's looks so far."""

    design: Design
    family: Family
    looks: list[Look] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.looks[0].verdicts] if self.looks else []

    @property
    def undecided(self) -> list[str]:
        return [v.name for v in self.looks[-1].verdicts if v.outcome == "inconclusive"] \
            if self.looks else []

    @property
    def all_decided(self) -> bool:
        return bool(self.looks) and not self.undecided

    @property
    def stopped_for_futility(self) -> bool:
        """Stopped before the budget because every hypothesis left was futile."""
        return bool(self.looks) and not self.all_decided and \
            self.looks[-1].replicates < self.design.max_seeds and \
            set(self.undecided) <= set(self.looks[-1].futile)

    @property
    def done(self) -> bool:
        """Every hypothesis decided, the budget spent, or every one left futile."""
        return bool(self.looks) and (self.all_decided or self.stopped_for_futility or
                                     self.looks[-1].replicates >= self.design.max_seeds)

    @property
    def saved(self) -> int:
        """Replicates of the budget a futility stop did not run."""
        return self.design.max_seeds - self.looks[-1].replicates \
            if self.stopped_for_futility else 0

    def next_replicates(self) -> int | None:
        """How many replicates the next look needs; None once the study is done."""
        if self.done:
            return None
        return self.design.looks()[len(self.looks)]

    def look(self, results: "pd.DataFrame | Paired") -> Look:
        """Judge the family on the next look's replicates of ``results`` (a metrics table or
        its ``Paired`` arrays, which must have them)."""
        n = self.next_replicates()
        if n is None:
            raise ValueError("the study is already decided")
        paired = results if isinstance(results, Paired) else Paired(results)
        if len(paired.seeds) < n:
            raise ValueError(f"look {len(self.looks) + 1} needs {n} replicates; the table "
                             f"has {len(paired.seeds)}")
        family = self.family.gather(paired.first(n))
        shares = self.design.look_alphas()
        k = len(self.looks)
        alpha = self.design.alpha
        p = over_looks([look.p for look in self.looks] + [family.p], shares, alpha)
        verdicts, decisions = family.judge(p, alpha, shares[k])
        weights = {j: level / alpha for j, level in decisions.levels.items()}
        look = Look(n, shares[k], family.p, verdicts, weights)
        if n < self.design.max_seeds:
            look = Look(n, shares[k], family.p, verdicts, weights, self._futile(look))
        self.looks.append(look)
        return look

    def _final_level(self, look: Look, claim: str) -> float:
        """The one-sided level ``claim`` would have at the last look with the weight it has
        after ``look``."""
        return look.weights[claim] * self.design.look_alphas()[-1]

    def _futile(self, look: Look) -> tuple[str, ...]:
        """The undecided hypotheses whose every claim has conditional power below the
        design's threshold at the last look (rough: the trend seen, the weight each claim
        has now)."""
        t = look.replicates / self.design.max_seeds
        return tuple(v.name for v in look.verdicts if v.outcome == "inconclusive" and max(
            conditional_power(look.p[node(v.name, c)], t,
                              self._final_level(look, node(v.name, c)))
            for c in (HOLDS, REFUTED)) < self.design.futility)

    def decided_at(self, name: str) -> int | None:
        """The replicates of the look where ``name`` reached its final decision."""
        final = self._final(name)
        if final.outcome == "inconclusive":
            return None
        return next(look.replicates for look in self.looks
                    if self._at(look, name).outcome == final.outcome)

    def _at(self, look: Look, name: str) -> Verdict:
        return next(v for v in look.verdicts if v.name == name)

    def _final(self, name: str) -> Verdict:
        return self._at(self.looks[-1], name)

    def verdicts(self) -> list[Verdict]:
        """Each hypothesis's decision, shown at the look where it was reached (inconclusive:
        at the last look)."""
        out = []
        for name in self.names:
            at = self.decided_at(name)
            look = next((x for x in self.looks if x.replicates == at), self.looks[-1])
            out.append(self._at(look, name))
        return out

    def to_dict(self) -> dict:
        return {"design": self.design.to_dict(), "digest": self.design.digest,
                "looks": [{"replicates": look.replicates, "share": look.share, "p": look.p,
                           "verdicts": [v.to_dict() for v in look.verdicts],
                           "weights": look.weights, "futile": list(look.futile)}
                          for look in self.looks]}

    @classmethod
    def from_dict(cls, design: Design, family: Family, data: dict) -> "Rounds":
        """Looks written by ``to_dict``; refused if they were taken under another design."""
        check(design, data)
        rounds = cls(design, family)
        for look in data["looks"]:
            rounds.looks.append(Look(look["replicates"], look["share"], look["p"],
                                     [Verdict.from_dict(v) for v in look["verdicts"]],
                                     look["weights"], tuple(look["futile"])))
        return rounds

    def to_record(self) -> dict:
        """What a store keeps of the study: the design, its digest and each look's p-values
        (small enough for an MLflow experiment tag; the verdicts are taken again from the
        runs, and must give the same p-values)."""
        return {"design": self.design.to_dict(), "digest": self.design.digest,
                "looks": [{"replicates": look.replicates, "share": look.share,
                           "p": {k: float(f"{v:.12g}") for k, v in look.p.items()}}
                          for look in self.looks]}

    @classmethod
    def from_record(cls, design: Design, family: Family, record: dict,
                    results: "pd.DataFrame | Paired") -> "Rounds":
        """The looks a store recorded (``to_record``), taken again on ``results``: refused
        if they were taken under another design, or on other runs (their p-values differ)."""
        check(design, record)
        paired = results if isinstance(results, Paired) else Paired(results)
        rounds = cls(design, family)
        for k, stored in enumerate(record["looks"], start=1):
            if rounds.next_replicates() != stored["replicates"] or \
                    len(paired.seeds) < stored["replicates"]:
                raise LooksChanged(f"look {k} was taken on {stored['replicates']} replicates, "
                                   f"and the store now has the runs of {len(paired.seeds)}")
            taken = rounds.look(paired)
            changed = [c for c, p in stored["p"].items()
                       if abs(taken.p.get(c, math.nan) - p) > 1e-9 * max(1.0, abs(p))]
            if changed or set(taken.p) != set(stored["p"]):
                raise LooksChanged(f"look {k} ({stored['replicates']} replicates) was taken on "
                                   f"other runs than the store's now: {', '.join(changed)} "
                                   "gave other p-values")
        return rounds

    def needed(self, look: int = -1) -> dict[str, int | None]:
        """Rough: about how many replicates each hypothesis undecided at ``look`` would need
        if its trend holds and its claims keep the weight they have now, judged at the last
        look's share (multiplicity counted once, in the weight). None: no trend to find."""
        seen = self.looks[look]
        out: dict[str, int | None] = {}
        for v in seen.verdicts:
            if v.outcome != "inconclusive":
                out[v.name] = seen.replicates
                continue
            claims = [node(v.name, c) for c in (HOLDS, REFUTED)]
            out[v.name] = min((n for n in (needed_for(seen.p[c], seen.replicates,
                                                      self._final_level(seen, c))
                                           for c in claims) if n is not None), default=None)
        return out

    def markdown(self) -> str:
        """The design, each hypothesis's interval after each look, and where it was decided."""
        lines = [f"Design: {self.design.describe()}.", ""]
        if not self.looks:
            return "\n".join(lines)
        header = "| hypothesis | " + " | ".join(f"{look.replicates} replicates "
                                               f"(share {look.share:.4f})"
                                               for look in self.looks) + " | decided |"
        lines += [header, "|" + "---|" * (len(self.looks) + 2)]
        for name in self.names:
            cells = []
            for look in self.looks:
                v = self._at(look, name)
                e = v.estimate
                cells.append(f"{v.outcome}" + (f" {e}" if e else "")
                             + (" (futile)" if name in look.futile else ""))
            at = self.decided_at(name)
            lines.append(f"| {name} | " + " | ".join(cells) + " | "
                         + (f"after {at} replicates" if at else "no (inconclusive)") + " |")
        needed = self.needed()
        rough = ", ".join(f"{k} {'-' if n is None else n}" for k, n in needed.items()
                          if k in self.undecided)
        if self.stopped_for_futility:
            lines += ["", f"Stopped for futility after {self.looks[-1].replicates} "
                      f"replicates: every hypothesis left ({', '.join(self.undecided)}) had "
                      f"conditional power below {self.design.futility:g}; this saved "
                      f"{self.saved} replicates of the budget of {self.design.max_seeds}. "
                      f"Replicates each would need (rough, at the trend seen): {rough}."]
        elif self.undecided and self.looks[-1].replicates >= self.design.max_seeds:
            lines += ["", f"Undecided at the budget of {self.design.max_seeds} replicates, "
                      f"and the replicates each would need (rough, at the trend seen): "
                      f"{rough}."]
        return "\n".join(lines)


def check(design: Design, stored: dict) -> None:
    """Raise ``DesignMismatch`` unless ``stored`` looks were taken under ``design``."""
    if stored.get("digest") != design.digest:
        raise DesignMismatch(
            f"its looks were taken under design {stored.get('digest')} "
            f"({_short(stored.get('design', {}))}), not {design.digest} "
            f"({_short(design.to_dict())})")


def _short(design: dict) -> str:
    return (f"first {design.get('first')}, round {design.get('round')}, budget "
            f"{design.get('max_seeds')}, seeds from {design.get('base_seed')}, "
            f"{design.get('spending')}, version {design.get('version')}")


def _z(p: float) -> float:
    """The normal quantile a one-sided p-value corresponds to (p kept off 0 and 1)."""
    from scipy.special import ndtri

    return float(ndtri(1 - min(max(p, 1e-15), 1 - 1e-15)))


def conditional_power(p: float, t: float, level: float) -> float:
    """Rough chance that a one-sided claim with p-value ``p`` at information fraction ``t``
    reaches one-sided ``level`` at the end if the trend it shows holds (B-value method)."""
    from scipy.special import ndtr

    if t >= 1:
        return float(p <= level)
    return float(1 - ndtr((_z(level) - _z(p) / math.sqrt(t)) / math.sqrt(1 - t)))


def needed_for(p: float, n: int, level: float) -> int | None:
    """Rough replicates for a one-sided claim with p-value ``p`` at ``n`` replicates to reach
    ``level``, its z growing as sqrt(n); None where it shows no trend to find."""
    z = _z(p)
    if z < 0.5:
        return None
    return math.ceil(n * (_z(level) / z) ** 2)


def take_looks(results: "pd.DataFrame | Paired", design: Design, family: Family,
               start: Rounds | None = None) -> Rounds:
    """Every look the results' replicates allow, after ``start``'s looks (looks already
    taken), stopping once the study is done."""
    paired = results if isinstance(results, Paired) else Paired(results)
    rounds = start or Rounds(design, family)
    while not rounds.done and rounds.next_replicates() <= len(paired.seeds):
        rounds.look(paired)
    return rounds
