"""Exact, distribution-free inference over replicates.

The unit that varies is the replicate: its seed (weights, batch order, dropout) and its
train/validation split are shared by every cell and arm, so its results are correlated
across them. Every hypothesis therefore first reduces a replicate to one number, its contrast
(averaged over that replicate's cells, both arms of a pair kept together), and infers from the
R independent contrasts alone.

Why not a t interval: a replicate's contrast is skewed where runs sometimes collapse (most
replicates see no collapse, a few see one), and for a mean no test is valid for every such
distribution at small R (Bahadur and Savage 1956); under a collapse mixture a t interval for
the mean covered 77% at 95% (docs/statistics.md). The median has an exact test whatever the
distribution, the sign test. So:

- ``Median``: the median of the replicates' contrasts, the sign test's p-values and the
  order-statistic interval that inverts it. Exact for any distribution and any R; at one-sided
  level a it decides nothing with fewer than log2(1/a) replicates (``needs``).
- ``Proportion``: k of n replicates favour a claim (which arm had more unstable runs, say),
  with the exact binomial test and the Clopper-Pearson interval that inverts it.
- ``Reduction``: |a| - |b| for two medians a and b, from the rectangle of their intervals.

Every p-value is one-sided: the chance, were the claim false, of evidence at least as strong.
Intervals are two-sided at ``level``, each side at (1 - level) / 2, so a claim holds at
one-sided level a exactly when the interval at level 1 - 2a lies beyond its margin. No p-value
is 0 and no interval has zero width: where the replicates' values tie so that an interval
would shrink to a point, it widens to the next distinct values (unbounded where there are
none: replicates that are all alike carry no information about their spread).
"""

import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property, lru_cache

import numpy as np

CONFIDENCE = 0.95


@lru_cache(maxsize=8192)
def sign_tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k), exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2 ** n


def needs(a: float) -> int:
    """The fewest replicates with which a sign test can reach one-sided level ``a``."""
    return max(1, math.ceil(math.log2(1 / a) - 1e-12))


def t_half_width(se, df, level: float = CONFIDENCE):
    """Half the width of a two-sided t interval at ``level`` (scalars or arrays): for the
    descriptive per-cell and headline means, not for verdicts."""
    from scipy.special import stdtrit  # what scipy.stats.t.ppf calls; imports far faster

    return stdtrit(df, 0.5 + level / 2) * se


def signed(x: float, digits: int = 4) -> str:
    """A signed number for the reports; unbounded sides as -inf/+inf, no value as n/a."""
    if math.isnan(x):
        return "n/a"
    return f"{x:+.{digits}f}" if math.isfinite(x) else ("-inf" if x < 0 else "+inf")


class Estimated:
    """What every estimate offers: a value, an interval at ``level``, one-sided p-values."""

    level: float
    value: float

    def bounds(self, a: float) -> tuple[float, float]:
        """The interval whose each side errs with probability at most ``a``."""
        raise NotImplementedError

    @property
    def low(self) -> float:
        return self.bounds((1 - self.level) / 2)[0]

    @property
    def high(self) -> float:
        return self.bounds((1 - self.level) / 2)[1]

    def at(self, level: float) -> "Estimated":
        """The same estimate with its interval at another two-sided confidence level."""
        return replace(self, level=level)

    def to_dict(self) -> dict:
        return {"kind": type(self).__name__, **asdict(self)}

    def format(self, digits: int = 4, sign: bool = True) -> str:
        """``value [low, high]``: every renderer's one way to show an estimate."""
        show = (lambda x: signed(x, digits)) if sign else (lambda x: f"{x:.{digits}f}")
        return f"{show(self.value)} [{show(self.low)}, {show(self.high)}]"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class Median(Estimated):
    """The median of the replicates' values, with the sign test and its interval.

    ``values`` are the replicates that have one; ``missing`` counts those that do not (every
    pair of the replicate left out, say), which the test does not use.
    """

    values: tuple[float, ...]
    level: float = CONFIDENCE
    missing: int = 0

    @classmethod
    def of(cls, values, level: float = CONFIDENCE) -> "Median":
        array = np.asarray(values, dtype=float).ravel()
        kept = array[np.isfinite(array)]
        return cls(tuple(float(v) for v in kept), level, int(len(array) - len(kept)))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def value(self) -> float:
        return float(np.median(self.values)) if self.values else math.nan

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @cached_property
    def _ordered(self) -> list[float]:
        """The values sorted, once (every p-value and interval reads order statistics)."""
        return sorted(self.values)

    def _count_needed(self, a: float) -> int:
        """The fewest replicates beyond a margin that make a one-sided claim at level a."""
        k = self.n // 2 + 1
        while k <= self.n and sign_tail(self.n, k) > a:
            k += 1
        return k

    def _bounds_at_count(self, k: int) -> tuple[float, float]:
        if k > self.n:
            return -math.inf, math.inf
        ordered = self._ordered
        low, high = ordered[self.n - k], ordered[k - 1]
        if low >= high:  # ties: widen to the next distinct values
            low = max((v for v in ordered if v < low), default=-math.inf)
            high = min((v for v in ordered if v > high), default=math.inf)
        return low, high

    def bounds(self, a: float) -> tuple[float, float]:
        return self._bounds_at_count(self._count_needed(a))

    def p_above(self, margin: float) -> float:
        """One-sided p of the claim "the median exceeds ``margin``" (ties count against)."""
        return self._p(lambda k: self._bounds_at_count(k)[0] > margin)

    def p_below(self, margin: float) -> float:
        """One-sided p of the claim "the median is below ``margin``"."""
        return self._p(lambda k: self._bounds_at_count(k)[1] < margin)

    def _p(self, made) -> float:
        """The smallest sign-test level whose interval makes the claim (1 if none)."""
        for k in range(self.n, self.n // 2, -1):
            if made(k):
                return sign_tail(self.n, k)
        return 1.0


@dataclass(frozen=True)
class Proportion(Estimated):
    """``k`` of ``n`` replicates favour a claim: the share, its Clopper-Pearson interval, and
    the exact binomial test of it against a share (1/2: either way equally often)."""

    k: int
    n: int
    level: float = CONFIDENCE

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    def bounds(self, a: float) -> tuple[float, float]:
        from scipy.special import betaincinv

        if self.n == 0:
            return 0.0, 1.0
        low = float(betaincinv(self.k, self.n - self.k + 1, a)) if self.k else 0.0
        high = float(betaincinv(self.k + 1, self.n - self.k, 1 - a)) if self.k < self.n \
            else 1.0
        return low, high

    def p_above(self, share: float) -> float:
        """One-sided p of "the share exceeds ``share``": P(Binomial(n, share) >= k)."""
        from scipy.special import betainc

        if self.n == 0 or self.k == 0:
            return 1.0
        return float(betainc(self.k, self.n - self.k + 1, share))

    def p_below(self, share: float) -> float:
        """One-sided p of "the share is below ``share``": P(Binomial(n, share) <= k)."""
        return replace(self, k=self.n - self.k).p_above(1 - share)


@dataclass(frozen=True)
class Reduction(Estimated):
    """How much smaller ``b`` is than ``a`` in size: |a| - |b|, for two estimates of the same
    replicates. Its interval projects the rectangle of theirs: a lower bound on |a| errs on
    one side of a's interval, an upper bound on |b| on either side of b's, so each side of
    each interval is taken at a third of the level, and no joint law is needed."""

    a: Estimated
    b: Estimated
    level: float = CONFIDENCE

    @property
    def value(self) -> float:
        return abs(self.a.value) - abs(self.b.value)

    @staticmethod
    def _sizes(low: float, high: float) -> tuple[float, float]:
        """The smallest and largest |x| over [low, high]."""
        smallest = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
        return smallest, max(abs(low), abs(high))

    def bounds(self, a: float) -> tuple[float, float]:
        a_small, a_large = self._sizes(*self.a.bounds(a / 3))
        b_small, b_large = self._sizes(*self.b.bounds(a / 3))
        return a_small - b_large, a_large - b_small

    def p_above(self, margin: float) -> float:
        return self._p(lambda a: self.bounds(a)[0] > margin)

    def p_below(self, margin: float) -> float:
        return self._p(lambda a: self.bounds(a)[1] < margin)

    @staticmethod
    def _p(made) -> float:
        """The smallest one-sided level at which the claim is made, by bisection on a log
        scale (the components' intervals only narrow as the level grows); 1 if none."""
        if not made(1.0):
            return 1.0
        low, high = math.log(1e-300), 0.0  # made at exp(high), not made at exp(low)
        if made(math.exp(low)):
            return math.exp(low)
        for _ in range(80):
            middle = (low + high) / 2
            low, high = (low, middle) if made(math.exp(middle)) else (middle, high)
        return min(1.0, math.exp(high))

    def to_dict(self) -> dict:
        return {"kind": "Reduction", "a": self.a.to_dict(), "b": self.b.to_dict(),
                "level": self.level}


def from_dict(d: dict) -> Estimated:
    """An estimate written by ``to_dict``."""
    fields = {k: v for k, v in d.items() if k != "kind"}
    if d["kind"] == "Median":
        return Median(tuple(fields.pop("values")), **fields)
    if d["kind"] == "Proportion":
        return Proportion(**fields)
    if d["kind"] == "Reduction":
        return Reduction(from_dict(d["a"]), from_dict(d["b"]), d["level"])
    raise ValueError(f"unknown estimate kind {d['kind']!r}")


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), for reported per-cell
    comparisons."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
