"""The family: every hypothesis a session collects, decided once, as a graphical closed test
over all their claims (one per registered family: the primary H1-H5's, and any other such as
the explanatory E1-E4's, each with its own alpha).

A hypothesis is a function of the results (``normcheck.contrasts.Paired``), the arm compared
with none and its registration, that returns its ``Claim`` (``normcheck.assertions``)::

    @hypothesis("H3")
    def test_h3_high_lr_costs_no_norm_more(runs, arm, h):
        acc = runs.metric(h.metric)
        return above(acc[arm].lr_slope() - acc["none"].lr_slope(), "...")

``hypothesis`` registers it and turns it into a pytest test of its verdict (the plugin gives
the test its arm and the verdict the session decided). ``load`` imports hypotheses from test
files the way a session or ``python -m normcheck report`` finds them; the ``Family`` they form
judges every claim of every hypothesis of every arm at once. A hypothesis a grid cannot pose
(``contrasts.applies``) is left out on that grid.
"""

import importlib.util
import inspect
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.assertions import Claim
from normcheck.contrasts import GridMismatch, NotApplicable, Paired
from normcheck.multiplicity import SUPERIOR, Decisions, Graph, node
from normcheck.norms import CONTROL
from normcheck.registration import Registered, declared, entry
from normcheck.verdicts import Evidence, Verdict

PRIMARY = "primary"  # the family of the original study's observations, H1-H5
NAME = re.compile(r"^[A-Z][A-Za-z0-9_.]*$")  # H1, H6, Dropout1: verdict names add -<arm>
Check = Callable[[Paired, str, Registered], Claim]
Describe = Callable[[Paired, str, Registered, Claim], tuple[list[str], str]]


@dataclass(eq=False)
class Hypothesis:
    """A registered hypothesis: its name, the claim it makes of the results, and how the
    report describes it (``describes``)."""

    name: str
    check: Check
    source: Path
    describe: Describe | None = None


def hypothesis(name: str) -> Callable[[Check], Callable[..., None]]:
    """Register the decorated function as hypothesis ``name``; it becomes a test that asserts
    the verdict the session's family decided for it (on each arm)."""
    if not NAME.match(name):
        raise ValueError(f"hypothesis name {name!r}: start with a capital letter, then "
                         "letters, digits, _ or . (a verdict adds -<arm>)")

    def register(check: Check) -> Callable[..., None]:
        found = Hypothesis(name, check, Path(inspect.getsourcefile(check) or "."))

        def test(normcheck_arm: str, normcheck_verdict: Callable[[str, str], None]) -> None:
            normcheck_verdict(name, normcheck_arm)

        for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(test, attribute, getattr(check, attribute))
        test.normcheck_hypothesis = found
        return test

    return register


def describes(test: Callable[..., None]) -> Callable[[Describe], Describe]:
    """Attach the decorated function as the report's description of ``test``'s hypothesis:
    the lines under its verdict and a sentence with ``{0}``, ``{1}`` for its parts' estimates."""
    def attach(describe: Describe) -> Describe:
        test.normcheck_hypothesis.describe = describe
        return describe

    return attach


def verdict_name(name: str, arm: str, arms: list[str]) -> str:
    """``H1`` when the grid compares one normalisation with none, ``H1-layernorm`` when more."""
    return name if len(arms) == 1 else f"{name}-{arm}"


def found_in(module: object) -> list[Hypothesis]:
    """The hypotheses a module defines, in the order it defines them."""
    return [value.normcheck_hypothesis for value in vars(module).values()
            if isinstance(getattr(value, "normcheck_hypothesis", None), Hypothesis)]


def test_files(paths: Iterable[str | Path]) -> list[Path]:
    """The test files a session collects from ``paths`` (folders, files, node ids)."""
    files: list[Path] = []
    for given in paths:
        path = Path(str(given).split("::", 1)[0])
        if path.is_dir():
            files += sorted(p for p in path.rglob("test_*.py") if "__pycache__" not in p.parts)
        elif path.suffix == ".py" and path.name.startswith("test_"):
            files.append(path)
    return list(dict.fromkeys(p.resolve() for p in files))


def load(paths: Iterable[str | Path]) -> "Family":
    """The family of every hypothesis in the test files under ``paths``."""
    hypotheses = []
    for path in test_files(paths):
        name = f"_normcheck_hypotheses.{path.parent.name}.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        hypotheses += found_in(module)
    return Family(tuple(hypotheses))


@dataclass(frozen=True, eq=False)
class Family:
    """The hypotheses a session collected, with their registrations."""

    hypotheses: tuple[Hypothesis, ...]
    spec: dict = field(default_factory=declared)
    _entries: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _problems: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [h.name for h in self.hypotheses]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"hypotheses defined twice: {', '.join(twice)}; rename one")
        for h in self.hypotheses:  # every hypothesis is registered, read once
            self._entries[h.name] = entry(h.name, h.source)
        primary_first = sorted(self.hypotheses, key=lambda h: self.group(h.name) != PRIMARY)
        object.__setattr__(self, "hypotheses", tuple(primary_first))

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hypotheses]

    @property
    def alpha(self) -> float:
        return self.spec["family"]["alpha"]

    def group(self, name: str) -> str:
        """The family hypothesis ``name`` is decided in: ``primary`` (H1-H5's), unless its
        registration names another (``family = "explanatory"``), whose error rate is then
        controlled on its own."""
        return self._entries[name][0].get("family", PRIMARY)

    def registered(self, h: Hypothesis) -> Registered:
        return Registered(self._entries[h.name][0], self.spec["family"])

    def statement(self, h: Hypothesis, arm: str) -> str:
        """The registered statement, said of ``arm`` (its ``{norm}`` placeholder filled)."""
        return self._entries[h.name][0]["statement"].format(norm=norms.get(arm).label)

    def registrations(self) -> list[tuple[str, dict, Path]]:
        """The hypotheses registered beside their code: name, entry and where."""
        found = [(h.name, *self._entries[h.name]) for h in self.hypotheses]
        return [(name, own, where) for name, own, where in found if where is not None]

    def problems(self, lrs: tuple[float, ...], fcs: tuple[int, ...],
                 names: tuple[str, ...]) -> list[str]:
        """Why a grid cannot test these hypotheses (empty when it can): each is tried on a
        stand-in of the grid's shape."""
        return self._tried(lrs, fcs, names)[0]

    def not_applicable(self, lrs: tuple[float, ...], fcs: tuple[int, ...],
                       names: tuple[str, ...]) -> dict[str, str]:
        """The hypotheses this grid cannot pose, each with why (``contrasts.applies``): left
        out of the family on it, their tests skipped."""
        return self._tried(lrs, fcs, names)[1]

    def _tried(self, lrs: tuple[float, ...], fcs: tuple[int, ...],
               names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
        key = (tuple(lrs), tuple(fcs), tuple(names))
        if key not in self._problems:
            self._problems[key] = self._try(*key)
        return self._problems[key]

    def _try(self, lrs: tuple[float, ...], fcs: tuple[int, ...],
             names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
        if CONTROL not in names or not norms.arms(names):
            return [f"every hypothesis compares a normalisation with norm={CONTROL!r}; the "
                    f"grid has norm={list(names)}"], {}
        stand_in = _stand_in(lrs, fcs, names)
        problems, skipped = [], {}
        for h in self.hypotheses:
            try:
                self._evidence(h, stand_in, stand_in.arms[0])
            except GridMismatch as exc:
                problems.append(f"{h.name} {exc}")
            except NotApplicable as exc:
                skipped[h.name] = str(exc)
        return problems, skipped

    def _evidence(self, h: Hypothesis, paired: Paired, arm: str,
                  describe: bool = True) -> Evidence:
        registered = self.registered(h)
        claim = h.check(paired, arm, registered)
        lines, plain = (h.describe(paired, arm, registered, claim)
                        if describe and h.describe else ([], ""))
        return Evidence(h.name, arm, claim, list(lines), plain)

    def gather(self, paired: Paired, describe: bool = True) -> "Gathered":
        """Every hypothesis's evidence for every normalisation compared with none
        (``describe=False``: the claims alone, for simulated studies)."""
        problems = self.problems(tuple(paired.lrs), tuple(paired.fcs), tuple(paired.norms))
        if problems:
            raise ValueError("; ".join(problems))
        skipped = self.not_applicable(tuple(paired.lrs), tuple(paired.fcs), tuple(paired.norms))
        asked = [h for h in self.hypotheses if h.name not in skipped]
        groups = dict.fromkeys(self.group(h.name) for h in asked)  # the primary family first
        evidence = tuple(self._evidence(h, paired, arm, describe) for g in groups
                         for arm in paired.arms for h in asked if self.group(h.name) == g)
        return Gathered(self, evidence, tuple(verdict_name(e.name, e.arm, paired.arms)
                                              for e in evidence))

    def evaluate(self, table: "pd.DataFrame | Paired",
                 alpha: float | None = None) -> list[Verdict]:
        """Every verdict on a complete table, judged as one family at error rate ``alpha``
        (default: the registered one)."""
        paired = table if isinstance(table, Paired) else Paired(table)
        gathered = self.gather(paired)
        alpha = self.alpha if alpha is None else alpha
        return gathered.verdicts(gathered.p, alpha, alpha)


def _stand_in(lrs: tuple[float, ...], fcs: tuple[int, ...], names: tuple[str, ...]) -> Paired:
    """Random results of a grid's shape, three replicates: enough to run a hypothesis."""
    lrs, fcs, names = sorted(lrs, reverse=True), sorted(fcs), norms.ordered(names)
    shape = (len(lrs), len(fcs), 1, 3, len(names))
    values = np.random.default_rng(0).uniform(0.1, 0.9, shape)
    arrays = defaultdict(lambda: values, final_val_acc=values)
    return Paired.of_arrays(arrays, lrs, fcs, names)


@dataclass(frozen=True)
class Gathered:
    """A family's evidence on one table, and the graph that judges it."""

    family: Family
    evidence: tuple[Evidence, ...]
    names: tuple[str, ...]  # verdict names, H1 or H1-layernorm, in the evidence's order

    @property
    def groups(self) -> dict[str, list[str]]:
        """Verdict names by the family that decides them, the primary family first."""
        out: dict[str, list[str]] = {PRIMARY: []}
        for n, e in zip(self.names, self.evidence, strict=True):
            out.setdefault(self.family.group(e.name), []).append(n)
        return {g: names for g, names in out.items() if names}

    @property
    def graph(self) -> Graph:
        stronger = tuple(n for n, e in zip(self.names, self.evidence, strict=True)
                         if SUPERIOR in e.p)
        graphs = [Graph.family(names, tuple(n for n in names if n in stronger))
                  for names in self.groups.values()]
        return graphs[0] if len(graphs) == 1 else Graph.separate(graphs)

    @property
    def p(self) -> dict[str, float]:
        """Every claim's one-sided p-value, keyed ``H1:holds`` etc."""
        return {node(n, c): p for n, e in zip(self.names, self.evidence, strict=True)
                for c, p in e.p.items()}

    def judge(self, p: dict[str, float], alpha: float,
              share: float) -> tuple[list[Verdict], Decisions]:
        """The verdicts when the family's claims have p-values ``p`` (this table's, or over
        looks), the family's error rate is ``alpha`` and this table's intervals are read at
        its ``share`` of it; and the graph's decisions they come from."""
        graph = self.graph
        decisions, adjusted = graph.test(p, alpha), graph.adjusted(p)
        by_name = {h.name: h for h in self.family.hypotheses}
        return [e.verdict(decisions, adjusted, n, self.family.statement(by_name[e.name], e.arm),
                          share, alpha)
                for n, e in zip(self.names, self.evidence, strict=True)], decisions

    def verdicts(self, p: dict[str, float], alpha: float, share: float) -> list[Verdict]:
        """``judge``'s verdicts alone."""
        return self.judge(p, alpha, share)[0]
