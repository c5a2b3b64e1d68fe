"""A hypothesis's verdict: what the family decided of its claim, with the numbers behind it.

``Evidence`` is one hypothesis of one arm before the family judges it (its ``Claim`` and the
lines that describe it); ``Evidence.verdict`` turns the family's decisions into a ``Verdict``,
with every interval at the level the family judged the claim at. Verdicts are plain data:
written to the session's results folder and read back by every process.
"""

from dataclasses import asdict, dataclass, field

from normcheck.assertions import Claim, Part
from normcheck.multiplicity import HOLDS, REFUTED, SUPERIOR, Decisions, node
from normcheck.stats import from_dict, needs

PASSING = {"holds", "superior", "non-inferior"}
VERDICTS = PASSING | {"inconclusive", "refuted"}


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
    def estimate(self):
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
    """A hypothesis's claim on one arm, and how the report describes it, before the family
    judges it."""

    name: str  # "H1"
    arm: str
    claim: Claim
    lines: list[str] = field(default_factory=list)
    plain: str = ""  # no full stop; {0}, {1}: the parts' estimates at the judged level

    @property
    def p(self) -> dict[str, float]:
        return self.claim.p

    def verdict(self, decisions: Decisions, adjusted: dict[str, float], key: str,
                statement: str, share: float, alpha: float) -> Verdict:
        """The verdict from the family's ``decisions`` (its claims under ``key``), with the
        intervals at the level this look's ``share`` of ``alpha`` gives the claim "holds"."""
        made = decisions.claim(key)
        word = {SUPERIOR: "superior", HOLDS: self.claim.holds_word, REFUTED: "refuted",
                None: "inconclusive"}[made]
        one_sided = decisions.levels[node(key, HOLDS)] / alpha * share
        parts = tuple(Part(p.label, p.estimate.at(1 - 2 * one_sided), p.claim)
                      for p in self.claim.parts)
        lines = list(self.lines)
        replicates = self.claim.replicates
        if made is None and 0 < replicates < needs(one_sided):
            lines.insert(0, f"  a sign test over {replicates} replicates cannot reach "
                            f"one-sided level {one_sided:.3g} (its smallest p-value is "
                            f"2^-{replicates}): deciding needs at least "
                            f"{needs(one_sided)} replicates")
        p_value = min(adjusted[node(key, c)] for c in (HOLDS, REFUTED))
        plain = self.plain.format(*(p.estimate.format(3) for p in parts))
        return Verdict(key, statement, word, parts, p_value, "\n".join(lines), plain,
                       self.name, self.arm)
