"""How a session's replicates are planned: a fixed number, or rounds until decided.

Both plans answer the same questions (``Plan``): the test cases, why a case is skipped, which
configurations a report covers, the verdicts, and what the report says of the design. The
session asks them and holds no branch of its own; ``RoundsPlan`` owns its looks, kept in the
session's results folder (one look taken once, by whichever process gets there first) and in
the store (an MLflow experiment tag, with the design it was taken under).
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from normcheck import sequential
from normcheck.atomic import atomic_path, once
from normcheck.family import Family
from normcheck.grid import Grid
from normcheck.records import RunResult, TrainConfig
from normcheck.sequential import Design, DesignMismatch, LooksChanged, Rounds
from normcheck.settings import SessionError
from normcheck.tables import results_table
from normcheck.tracking import Tracker
from normcheck.verdicts import Verdict

VERDICTS_FILE = ".verdicts.json"  # a dot: not one of the results (*.json)
SEQUENCE_FILE = ".sequence.json"  # --seeds auto: the looks so far

Results = Callable[[list[TrainConfig]], list[RunResult]]  # train or read these configurations


class Plan(Protocol):
    def cases(self) -> list[TrainConfig]: ...
    def first(self) -> list[TrainConfig]: ...
    def companions(self, config: TrainConfig) -> list[TrainConfig]: ...
    def skip_reason(self, config: TrainConfig) -> str | None: ...
    def covered(self) -> list[TrainConfig]: ...
    def verdicts(self, table: pd.DataFrame | None = None) -> list[Verdict]: ...
    def markdown(self) -> str: ...
    def how(self) -> str: ...


def _dump(verdicts: list[Verdict]) -> str:
    return json.dumps([v.to_dict() for v in verdicts])


def _load(text: str) -> list[Verdict]:
    return [Verdict.from_dict(v) for v in json.loads(text)]


@dataclass
class FixedPlan:
    """Every replicate of the grid, decided once on the whole grid."""

    grid: Grid
    family: Family
    folder: Path  # the session's results folder
    results: Results

    def cases(self) -> list[TrainConfig]:
        return self.grid.configs()

    first = cases

    def companions(self, config: TrainConfig) -> list[TrainConfig]:
        """What is needed whenever ``config`` is, so may train with it (``--pack``): all."""
        return self.grid.configs()

    def skip_reason(self, config: TrainConfig) -> str | None:
        return None

    def covered(self) -> list[TrainConfig]:
        return self.grid.configs()

    def verdicts(self, table: pd.DataFrame | None = None) -> list[Verdict]:
        """Decided once per session: the first process to ask decides, every other reads."""
        def decide() -> list[Verdict]:
            whole = results_table(self.results(self.grid.configs())) if table is None else table
            return self.family.evaluate(whole)

        return once(self.folder / VERDICTS_FILE, decide, _dump, _load)

    def markdown(self) -> str:
        return ""

    def how(self) -> str:
        seeds = sorted({c.seed for c in self.grid.configs()})
        return f"{len(seeds)} replicates from seed {seeds[0]}"


def rounds_key(grid: Grid, fingerprint: str) -> str:
    """The experiment tag that keeps a study's design and looks: one per grid, data (the
    base split's ``fingerprint``) and first replicate seed."""
    ident = f"{grid.name}|{fingerprint}|{grid.base_seed}"
    return "normcheck.rounds." + hashlib.sha256(ident.encode()).hexdigest()[:16]


@dataclass
class RoundsPlan:
    """``--seeds auto``: replicates in rounds, each look judged once, until the design stops."""

    grid: Grid
    family: Family
    design: Design
    folder: Path | None  # the session's results folder; None: a rebuild
    results: Results
    tracker: Tracker
    fingerprint: str
    where: str  # the store and experiment, for messages
    missing: Callable[[list[TrainConfig]], list[TrainConfig]] = lambda configs: []
    submit: Callable[[list[TrainConfig]], None] = lambda configs: None  # the next round
    rounds: Rounds | None = None  # the looks taken, once the session ends

    @property
    def key(self) -> str:
        return rounds_key(self.grid, self.fingerprint)

    def replicates(self, n: int) -> list[TrainConfig]:
        return [c for c in self.grid.configs() if self.grid.replicate(c) < n]

    def cases(self) -> list[TrainConfig]:
        return sorted(self.grid.configs(), key=lambda c: c.seed)

    def first(self) -> list[TrainConfig]:
        return self.replicates(self.design.first)

    def companions(self, config: TrainConfig) -> list[TrainConfig]:
        """What is needed whenever ``config`` is, so may train with it (``--pack``): its
        round's configurations (a later round may never be asked for)."""
        d, replicate = self.design, self.grid.replicate(config)
        low = 0 if replicate < d.first else replicate - (replicate - d.first) % d.round
        high = d.first if replicate < d.first else low + d.round
        return [c for c in self.grid.configs() if low <= self.grid.replicate(c) < high]

    def stored(self, table: pd.DataFrame | None = None) -> Rounds:
        """The study's looks as the store recorded them (none yet: an empty study), taken
        again on ``table`` (default: the runs they need); refused if they were taken under
        another design, or on other runs."""
        record = self.tracker.record(self.key)
        if not record:
            return Rounds(self.design, self.family)
        study = (f"--seeds auto: the study of grid {self.grid.name!r} on data "
                 f"{self.fingerprint} with replicates from seed {self.grid.base_seed} in "
                 f"{self.where}")
        try:
            sequential.check(self.design, record)
        except DesignMismatch as exc:
            raise SessionError(
                f"{study}: {exc}. Its looks are spent under that design, and resuming or "
                "rebuilding it under another would bend it. Pass the options it was started "
                "with; or start a new study on fresh replicates (--base-seed with seeds no "
                "study has used) or in another --experiment; to change the registered design, "
                "register an amendment: a new version of normcheck/hypotheses.toml's "
                "[sequential] with its history (date, commit, what was seen before it and "
                "why), committed before any run under it") from None
        if not record["looks"]:
            return Rounds(self.design, self.family)
        if table is None:
            table = results_table(self.results(self.replicates(
                record["looks"][-1]["replicates"])))
        try:
            return Rounds.from_record(self.design, self.family, record, table)
        except LooksChanged as exc:
            raise SessionError(
                f"{study}: {exc}. A study's looks are spent on the runs they saw (were runs "
                "retrained or deleted?); start a new study on fresh replicates (--base-seed "
                "with seeds no study has used) or in another --experiment") from None

    def check(self) -> None:
        """Before anything trains: the store keeps the study's design; a study started under
        another one is refused."""
        rounds = self.stored()
        if not rounds.looks:
            self.tracker.keep_record(self.key, rounds.to_record())

    def sequence(self, before: int | None = None, train: bool = True) -> Rounds:
        """The looks, round by round, until the study is done (``before``: only those on
        fewer replicates), training each round's missing runs first (``train=False``: only
        as far as the runs already there allow). Each look is taken once."""
        from filelock import FileLock

        path = self.folder / SEQUENCE_FILE
        with FileLock(f"{path}.lock"):
            rounds = (Rounds.from_dict(self.design, self.family, json.loads(path.read_text()))
                      if path.exists() else self.stored())
            while not rounds.done and (before is None or rounds.next_replicates() <= before):
                configs = self.replicates(rounds.next_replicates())
                if not train and self.missing(configs):
                    break
                rounds.look(results_table(self.results(configs)))
                with atomic_path(path) as tmp:  # readers wait for the lock
                    tmp.write_text(json.dumps(rounds.to_dict()))
                self.tracker.keep_record(self.key, rounds.to_record())
                if not rounds.done:
                    self.submit(self.replicates(rounds.next_replicates()))
        return rounds

    def skip_reason(self, config: TrainConfig) -> str | None:
        """Why this configuration's round is not needed (decided before it), else None."""
        replicate = self.grid.replicate(config)
        if replicate < self.design.first:
            return None
        rounds = self.sequence(before=replicate)
        if rounds.done and rounds.looks[-1].replicates <= replicate:
            why = ("every hypothesis left was futile" if rounds.stopped_for_futility
                   else "every hypothesis was decided")
            return f"not needed: {why} after {rounds.looks[-1].replicates} replicates " \
                   "(--seeds auto)"
        return None

    def covered(self) -> list[TrainConfig]:
        """The replicates up to where the study stopped, or the next look."""
        self.rounds = self.sequence(train=False)
        used = self.rounds.next_replicates() or self.rounds.looks[-1].replicates
        return self.replicates(used)

    def verdicts(self, table: pd.DataFrame | None = None) -> list[Verdict]:
        return self.sequence().verdicts()

    def rebuild(self, table: pd.DataFrame) -> Rounds:
        """A rebuild: the stored looks, and any more the runs allow."""
        self.rounds = sequential.take_looks(table, self.design, self.family,
                                            start=self.stored(table))
        return self.rounds

    def markdown(self) -> str:
        return self.rounds.markdown() if self.rounds else ""

    def how(self) -> str:
        seeds = sorted({c.seed for c in self.grid.configs()})
        return (f"--seeds auto from seed {seeds[0]}, stopped after "
                f"{self.rounds.looks[-1].replicates} replicates")
