"""A normcheck session: prepare it, let processes train into it, finish it, summarise it.

The pytest plugin's hooks and ``python -m normcheck report`` both drive this object:

- ``prepare`` (the controller, before any worker starts) loads and checks the data, opens the
  MLflow store, creates the session's results folder and takes every configuration the store
  already has as a result, in one query; ``join`` (an xdist worker) attaches to all of that
  from the controller's ``handoff`` without loading data or MLflow until it has to train.
- ``verdicts`` decides the hypotheses once per session: the first process to ask writes them
  to the results folder, the others (and the report) read them.
- ``finish`` writes the reports (and, with ``--record-verdicts``, the record); ``summary``
  says what happened in lines for the terminal.
"""

import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from filelock import FileLock

from normcheck import __version__, hypotheses, provenance, regression, sequential
from normcheck.atomic import atomic_path
from normcheck.claims import ClaimsError, open_claims
from normcheck.cluster import EngineError, RayOptions
from normcheck.grid import Grid
from normcheck.hypotheses import Verdict
from normcheck.options import claims_db, data_dir
from normcheck.records import RunResult, TrainConfig
from normcheck.report import (
    ReportError,
    check_writable,
    format_table,
    format_verdict_table,
    results_table,
    summary_table,
    write_reports,
)
from normcheck.sequential import Design, DesignMismatch, LooksChanged, Rounds
from normcheck.tracking import Tracker, TrackingError, default_tracking_uri, load_results
from normcheck.uris import redact

if TYPE_CHECKING:
    from normcheck.study import Study  # imports torch: loaded when a session is prepared

VERDICTS_FILE = ".verdicts.json"  # a dot: not one of the results (*.json)
SEQUENCE_FILE = ".sequence.json"  # --seeds auto: the looks so far


class SessionError(ValueError):
    """The session cannot start: bad options, data, store or report folder. The message names
    the input and what to do."""


class NothingToReport(SessionError):
    """A rebuild found no finished normcheck run to report on."""


ALARMS = ("REPORT NOT WRITTEN", "VERDICTS NOT RECORDED")  # summary lines shown in red


def _check_record_file(path: str | None) -> None:
    """``--record-verdicts``: a file that can be read (if it exists) and written, checked
    before anything trains."""
    if path is None:
        return
    target = Path(path)
    try:
        if target.exists():
            regression.load(target)
    except ValueError as exc:
        raise SessionError(f"--record-verdicts: {exc}") from exc
    folder = target.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or \
            (target.exists() and not os.access(target, os.W_OK)):
        raise SessionError(f"--record-verdicts {path}: cannot write there; pass a writable "
                           "path for the record")


def _ray_options(options: Namespace, uri: str, workers: int) -> RayOptions | None:
    """``--engine ray`` and its options, checked: None for the local engine."""
    if getattr(options, "engine", "local") != "ray":
        return None
    if workers:
        raise SessionError(f"--engine ray with -n {workers}: with Ray the pytest process is "
                           "the driver and the cluster trains in parallel; drop -n")
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address and uri.startswith("sqlite:"):
        raise SessionError(f"--engine ray --ray-address {address} with --mlflow-uri {uri}: a "
                           "cluster's nodes cannot write this machine's SQLite file; pass an "
                           "MLflow server (http://...) or a postgresql:// store")
    return RayOptions(address, options.cpus_per_run, options.gpus_per_run)


def peak_mib() -> float:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class StudySession:
    """One session of a grid on one data source, MLflow experiment and report folder."""

    grid: Grid | None  # None: every run of the experiment (a rebuild of its reports)
    data_dir: str | None
    report_dir: Path
    uri: str
    experiment: str
    log_model: bool = False
    retrain: bool = False
    expect_verdicts: str | None = None
    record_verdicts: str | None = None
    inconclusive: str = "fail"
    workers: int = 0
    ray: RayOptions | None = None  # --engine ray; None: local
    claims_db: str | None = None  # PostgreSQL claims; None: file locks
    design: Design | None = None  # --seeds auto: rounds of replicates; None: a fixed number
    rounds: Rounds | None = None  # --seeds auto: the looks taken, once finished
    recorded: list[dict] = field(default_factory=list)
    study: "Study | None" = None
    results_dir: Path | None = None
    peak: dict[str, float] = field(default_factory=dict)  # process -> peak resident MiB
    table: pd.DataFrame | None = None
    written: list[Path] = field(default_factory=list)
    missing: int = 0
    origins: dict[str, int] = field(default_factory=dict)  # "trained"/"reused" -> runs
    decided: list[Verdict] = field(default_factory=list)  # the verdicts, once finished
    notes: list[str] = field(default_factory=list)  # e.g. the record written
    errors: list[str] = field(default_factory=list)  # what failed at the end, each a line

    @classmethod
    def from_options(cls, options: Namespace, workers: int = 0) -> "StudySession":
        """A session from parsed options (pytest's or the command line's: the same names)."""
        design = None
        if options.seeds == "auto":
            try:
                design = Design.declared(first=getattr(options, "first", None),
                                         round=getattr(options, "round", None),
                                         max_seeds=getattr(options, "max_seeds", None),
                                         base_seed=options.base_seed)
            except ValueError as exc:
                raise SessionError(f"--seeds auto: {exc}") from None
        grid = options.grid and options.grid.with_replicates(
            design.max_seeds if design else options.seeds,
            design.base_seed if design else options.base_seed, options.resample_split)
        problems = grid and hypotheses.grid_problems(grid.lr, grid.fc_units, grid.norm)
        if problems:
            raise SessionError(f"--grid {grid.name}: " + "; ".join(problems))
        expect = getattr(options, "expect_verdicts", None)
        try:
            recorded = regression.load(expect) if expect else []
        except ValueError as exc:
            raise SessionError(f"--expect-verdicts: {exc}") from exc
        _check_record_file(options.record_verdicts)
        uri = options.mlflow_uri or default_tracking_uri()
        ray = _ray_options(options, uri, workers)
        return cls(grid=grid, data_dir=data_dir(getattr(options, "data_dir", None)),
                   report_dir=Path(options.report_dir).resolve(), uri=uri, ray=ray,
                   design=design,
                   claims_db=claims_db(getattr(options, "claims_db", None), uri),
                   experiment=options.experiment,
                   log_model=getattr(options, "log_model", False),
                   retrain=getattr(options, "retrain", False), expect_verdicts=expect,
                   record_verdicts=options.record_verdicts,
                   inconclusive=getattr(options, "inconclusive", "fail"), workers=workers,
                   recorded=recorded)

    # -- start ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """The controller's start: data, report folder and store checked, results folder made,
        and the store's finished runs of this grid taken as results."""
        from normcheck.data import DataError

        try:
            check_writable(self.report_dir)
            tracker = Tracker.open(self.uri, self.experiment)
        except (ReportError, TrackingError) as exc:
            raise SessionError(str(exc)) from exc
        self.results_dir = Path(tempfile.mkdtemp(prefix="normcheck-session-"))
        try:
            self.study = self._study(tracker, {}, (0, 1))  # trains only without workers
            for split_seed in sorted({c.split_seed for c in self.grid.configs()}):
                self.study.fingerprint(split_seed)  # data errors surface now, before training
            self.study.adopt_finished(self.grid.configs())
            if self.design:
                self._check_design()
            if self.ray is not None:
                from normcheck.cluster import RayRunner

                self.study.remote = RayRunner(self.study, self.ray)
                self.study.remote.start(self._replicates(self.design.first) if self.design
                                        else self.grid.configs())
        except (DataError, EngineError, ClaimsError) as exc:
            self.close()
            raise SessionError(f"data: {exc}" if isinstance(exc, DataError) else str(exc)) \
                from None

    def handoff(self) -> dict:
        """What a worker needs to join: JSON-able."""
        return {"results_dir": str(self.results_dir),
                "experiment_id": self.study.tracker.experiment_id,
                "fingerprints": {str(k): v for k, v in self.study.fingerprints.items()}}

    def join(self, handoff: dict, worker: int, workers: int) -> None:
        """A worker's start, from the controller's ``handoff``: no data, torch or MLflow is
        loaded until the worker has something to train."""
        self.results_dir = Path(handoff["results_dir"])
        try:
            self.study = self._study(Tracker(self.uri, handoff["experiment_id"]),
                                     {int(k): v for k, v in handoff["fingerprints"].items()},
                                     (worker, workers))
        except ClaimsError as exc:
            raise SessionError(str(exc)) from None

    def _study(self, tracker: Tracker, fingerprints: dict[int, str],
               worker: tuple[int, int]) -> "Study":
        from normcheck.study import Study

        claims = open_claims(self.claims_db, tracker.experiment_id, tracker.lock_folder())
        return Study(self.data_dir, self.grid.data, self.results_dir, tracker, worker=worker,
                     log_model=self.log_model, retrain=self.retrain, fingerprints=fingerprints,
                     claims=claims)

    # -- results and verdicts --------------------------------------------------------------

    def cases(self) -> list[TrainConfig]:
        """The grid's configurations as test cases: with ``--seeds auto``, round by round."""
        configs = self.grid.configs()
        return sorted(configs, key=lambda c: c.seed) if self.design else configs

    def _replicates(self, n: int) -> list[TrainConfig]:
        return [c for c in self.grid.configs() if self.grid.replicate(c) < n]

    def complete_table(self) -> pd.DataFrame:
        """The whole grid's metrics table, training whatever configuration is still missing
        (with ``--seeds auto``: the replicates up to where the study stopped)."""
        if self.design:
            return results_table(self.study.run(c) for c in self._replicates(
                self.sequence().looks[-1].replicates))
        return results_table(self.study.run(c) for c in self.grid.configs())

    def rounds_key(self, fingerprint: str) -> str:
        """The experiment tag that keeps this study's design and looks: one per grid, data
        (the base split's ``fingerprint``) and first replicate seed."""
        ident = f"{self.grid.name}|{fingerprint}|{self.grid.base_seed}"
        return "normcheck.rounds." + hashlib.sha256(ident.encode()).hexdigest()[:16]

    def _stored_rounds(self, tracker: Tracker | None = None, fingerprint: str | None = None,
                       results: pd.DataFrame | None = None) -> Rounds:
        """The study's looks as the store recorded them (none yet: an empty study), taken
        again on ``results`` (default: the runs they need, which the store has); refused if
        they were taken under another design, or on other runs."""
        tracker = tracker or self.study.tracker
        fingerprint = fingerprint or self.fingerprint
        record = tracker.record(self.rounds_key(fingerprint))
        if not record:
            return Rounds(self.design)
        study = (f"--seeds auto: the study of grid {self.grid.name!r} on data {fingerprint} "
                 f"with replicates from seed {self.grid.base_seed} in {redact(self.uri)}, "
                 f"experiment {self.experiment!r}")
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
            return Rounds(self.design)
        if results is None:
            results = results_table(self.study.run(c) for c in self._replicates(
                record["looks"][-1]["replicates"]))
        try:
            return Rounds.from_record(self.design, record, results)
        except LooksChanged as exc:
            raise SessionError(
                f"{study}: {exc}. A study's looks are spent on the runs they saw (were runs "
                "retrained or deleted?); start a new study on fresh replicates (--base-seed "
                "with seeds no study has used) or in another --experiment") from None

    def _check_design(self) -> None:
        """``--seeds auto``, before anything trains: the store keeps the study's design; a
        study started under another one is refused."""
        rounds = self._stored_rounds()
        if not rounds.looks:
            self.study.tracker.keep_record(self.rounds_key(self.fingerprint),
                                           rounds.to_record())

    def sequence(self, before: int | None = None, train: bool = True) -> Rounds:
        """``--seeds auto``: the looks at the data, round by round, until the study is done
        (``before``: only the looks that use fewer replicates than that), training each
        round's missing runs first (``train=False``: only as far as the runs already there
        allow). Each look is taken once: the store keeps the looks taken, with the design."""
        path = self.results_dir / SEQUENCE_FILE
        with FileLock(f"{path}.lock"):
            rounds = (Rounds.from_dict(self.design, json.loads(path.read_text()))
                      if path.exists() else self._stored_rounds())
            while not rounds.done and (before is None or rounds.next_replicates() <= before):
                configs = self._replicates(rounds.next_replicates())
                if not train and self.study.missing(configs):
                    break
                rounds.look(results_table(self.study.run(c) for c in configs))
                with atomic_path(path) as tmp:
                    tmp.write_text(json.dumps(rounds.to_dict()))
                self.study.tracker.keep_record(self.rounds_key(self.fingerprint),
                                               rounds.to_record())
                if self.study.remote is not None and not rounds.done:  # the next round
                    self.study.remote.add(self._replicates(rounds.next_replicates()))
        return rounds

    def skip_reason(self, config: TrainConfig) -> str | None:
        """``--seeds auto``: why this configuration's round is not needed (the study was
        decided before it), else None."""
        if self.design is None:
            return None
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

    def verdicts(self, table: pd.DataFrame | None = None) -> list[Verdict]:
        """Every hypothesis's verdict, decided once per session (one family): the
        first process to ask decides and writes them down, every other reads them. With
        ``--seeds auto``, each hypothesis's decision over the rounds."""
        if self.design:
            return self.sequence().verdicts()
        path = self.results_dir / VERDICTS_FILE
        with FileLock(f"{path}.lock"):
            if path.exists():
                return [Verdict.from_dict(v) for v in json.loads(path.read_text())]
            verdicts = hypotheses.evaluate(self.complete_table() if table is None else table)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps([v.to_dict() for v in verdicts]))
        return verdicts

    def expected(self) -> dict[str, str]:
        """Verdicts recorded for this grid and data (``--expect-verdicts``); empty otherwise."""
        return regression.recorded_for(self.recorded, self.grid.name, self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """The data fingerprint of the grid's base split: what records are kept under."""
        return self.study.fingerprint(self.grid.data.split_seed)

    def judge(self, verdict: Verdict) -> tuple[str, str]:
        """How a hypothesis test reports ``verdict`` (see ``regression.judge``)."""
        return regression.judge(verdict, self.expected().get(verdict.name),
                                self.expect_verdicts, self.inconclusive)

    # -- finish ----------------------------------------------------------------------------

    def end(self, workeroutput: dict | None) -> bool:
        """The end of this process's part: a worker reports its peak memory into
        ``workeroutput``; the controller (``None``) finishes the session. False if the reports or
        the record could not be written."""
        if self.study is None:  # the session never started
            return True
        if workeroutput is not None:
            workeroutput["normcheck_peak_mib"] = peak_mib()
            return True
        self.peak = self.peak or {"main": peak_mib()}  # no workers: this process trained
        return self.finish()

    def finish(self) -> bool:
        """The controller's end, also after failures and Ctrl-C: decide the hypotheses if the
        grid is complete, write the reports of whatever finished. False if the reports or the
        record could not be written (``errors`` says why; the runs are safe in MLflow)."""
        try:
            outcomes = self.study.outcomes()
            results = [result for result, _ in outcomes]
            for _, origin in outcomes:
                self.origins[origin] = self.origins.get(origin, 0) + 1
            configs = self.grid.configs()
            if self.design:  # the replicates up to where the study stopped, or the next look
                self.rounds = self.sequence(train=False)
                used = self.rounds.next_replicates() or self.rounds.looks[-1].replicates
                configs = self._replicates(used)
                results = [r for r in results if self.grid.replicate(r.config) < used]
            wanted = {c.case_id for c in configs}
            self.missing = len(wanted - {r.config.case_id for r in results})
            if not results:
                return True
            self.table = results_table(results)
            self.decided = [] if self.missing else self.verdicts(self.table)
            self._write(results, self.decided, self.context())
            return not self.errors
        finally:
            self.close()

    def _write(self, results: list[RunResult], verdicts: list[Verdict],
               context: dict[str, str]) -> None:
        try:
            self.written = write_reports(results, self.report_dir, verdicts, context,
                                         self.rounds.markdown() if self.rounds else "")
        except ReportError as exc:
            command = shlex.join(["python", "-m", "normcheck", "report", "--mlflow-uri",
                                  redact(self.uri), "--experiment", self.experiment, "--grid",
                                  self.grid.name, "--report-dir", str(self.report_dir)])
            self.errors.append(f"REPORT NOT WRITTEN: {exc}. The runs are safe in MLflow; "
                               f"rebuild the reports with: {command}")
        if verdicts and self.record_verdicts:
            try:
                self.notes.append(self._record(verdicts))
            except (ValueError, OSError) as exc:
                self.errors.append(f"VERDICTS NOT RECORDED: --record-verdicts: {exc}")

    def _record(self, verdicts: list[Verdict]) -> str:
        splits = self.study.splits()
        seeds = sorted({c.seed for c in self.grid.configs()})
        how = f"{len(seeds)} replicates from seed {seeds[0]}"
        if self.rounds:
            how = (f"--seeds auto from seed {seeds[0]}, stopped after "
                   f"{self.rounds.looks[-1].replicates} replicates")
        return regression.record_verdicts(
            self.record_verdicts, self.grid.name, self.fingerprint, verdicts, how,
            f"{splits.source}, protocol {splits.protocol}")

    def close(self) -> None:
        """Leave the cluster, free this process's claims and remove the session's results
        folder (the runs themselves are in MLflow)."""
        if self.study is not None and self.study.remote is not None:
            self.study.remote.close()
        if self.study is not None and self.study.claims is not None:
            self.study.claims.close()
        if self.results_dir is not None:
            shutil.rmtree(self.results_dir, ignore_errors=True)

    def context(self) -> dict[str, str]:
        """The setup, for report.md: grid, data, environment, tracking."""
        import torch

        from normcheck.device import cpu_count

        grid, splits = self.grid, self.study.splits()
        axes = {"lr", "fc_units", "norm", "dropout", "seed", "split_seed"}
        training = ", ".join(f"{k}={v}" for k, v in sorted(grid.base.as_dict().items())
                             if k not in axes)
        return {
            "grid": f"`{grid.name}`: {grid.description}; lr {list(grid.lr)} x fc_units "
                    f"{list(grid.fc_units)} x norm {list(grid.norm)}"
                    + (f" x dropout {list(grid.dropout)}" if len(grid.dropout) > 1 else "")
                    + (f", up to {grid.seeds} replicates in rounds" if self.design else
                       f", {grid.seeds} replicates") + f": seeds from {grid.base_seed}"
                    + (f", each with its own split (split seeds from {splits.split_seed})"
                       if grid.resample_split else f", all on split {splits.split_seed}"),
            "training": training + (f", dropout={grid.dropout[0]}" if len(grid.dropout) == 1
                                    else ""),
            "data": f"{splits.source}, protocol `{splits.protocol}` ({len(splits.train_y)} "
                    f"train, {len(splits.val_y)} validation, {len(splits.test_y)} test per "
                    f"replicate), fingerprint of split {splits.split_seed} "
                    f"`{splits.fingerprint}`",
            "classes": ", ".join(splits.classes),
            "environment": f"normcheck {__version__}, commit {provenance.commit() or 'unknown'}"
                           f", Python {platform.python_version()}, torch {torch.__version__}, "
                           f"{provenance.cpu_model()} ({platform.machine()}), {cpu_count()} "
                           f"cores, " + (f"engine: {self.ray.describe()}" if self.ray else
                                         f"xdist workers: {self.workers}, device "
                                         f"{self.study.training_device()}"),
            **({"rounds": f"--seeds auto, {self.design.describe()}"} if self.design else {}),
            "MLflow": f"{redact(self.uri)}, experiment `{self.experiment}`"
                      + (f", claims in {redact(self.claims_db)}" if self.claims_db else ""),
        }

    def summary(self) -> list[str]:
        """The session in lines for the terminal: runs, grid, data, table, verdicts, files."""
        if self.table is None:
            return []
        splits = self.study.splits()
        lines = [f"runs: reused {self.origins.get('reused', 0)}, trained "
                 f"{self.origins.get('trained', 0)}" +
                 (f", {self.missing} missing" if self.missing else ""),
                 f"grid {self.grid.name!r}: {self.grid.description}",
                 f"data: {splits.source} (protocol {splits.protocol}, fingerprint "
                 f"{splits.fingerprint})",
                 format_table(summary_table(self.table))]
        if self.missing:
            lines.append(f"hypotheses not evaluated: {self.missing} runs of the grid have no "
                         "result")
        else:
            lines.append(format_verdict_table(self.decided))
            if self.rounds and self.rounds.looks:
                lines.append(self._rounds_line(self.rounds))
            if self.expect_verdicts:
                recorded = self.expected()
                lines.append(f"recorded verdicts ({self.expect_verdicts}): " + (
                    ", ".join(f"{k} {v}" for k, v in sorted(recorded.items())) if recorded
                    else "none for this grid and data fingerprint, so failing verdicts fail"))
        lines += self.notes + self.errors
        if self.written:
            lines.append(f"report: {self.report_dir / 'report.md'} ({len(self.written)} files "
                         f"in {self.report_dir})")
        if self.peak:
            lines.append("peak memory: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in
                                                     sorted(self.peak.items())))
        lines.append(f"MLflow: {redact(self.uri)}, experiment {self.experiment!r}")
        if self.uri.startswith("sqlite:"):
            lines.append(f"  view it with: mlflow ui --backend-store-uri {self.uri}")
        return lines

    @staticmethod
    def _rounds_line(rounds: Rounds) -> str:
        """``--seeds auto`` in one line: where each hypothesis was decided, where and why the
        study stopped, and the rough need of those left."""
        needed = rounds.needed()
        at = {name: rounds.decided_at(name) for name in rounds.names}
        why = f"stopped after {rounds.looks[-1].replicates} replicates" + (
            f" (futility: every hypothesis left would likely stay undecided; saved "
            f"{rounds.saved} replicates of the budget)" if rounds.stopped_for_futility else "")
        return ("rounds (--seeds auto): " + ", ".join(
            f"{name} decided after {n}" if n else f"{name} undecided" for name, n in at.items())
            + f"; {why}" + "".join(f"; {name} would need about {needed[name] or '-'} "
                                    "replicates (rough)" for name in rounds.undecided))

    # -- rebuild from the store ------------------------------------------------------------

    def rebuild(self) -> tuple[list[Verdict], list[Path]]:
        """``python -m normcheck report``: the reports from the experiment's finished runs
        alone (the grid's, if the session has one), nothing trained."""
        if self.design and not self.grid:
            raise SessionError("--seeds auto needs --grid: the rounds are the grid's")
        try:
            tracker = Tracker.open(self.uri, self.experiment)
        except TrackingError as exc:
            raise SessionError(str(exc)) from exc
        runs = tracker.runs()
        results = load_results(tracker, runs)
        if self.grid:
            wanted = {c.case_id for c in self.grid.configs()}
            results = [r for r in results if r.config.case_id in wanted]
        if not results:
            raise NothingToReport(f"no finished normcheck runs in experiment {self.experiment!r} "
                               f"of {redact(self.uri)}" + (f" for grid {self.grid.name!r}"
                                                   if self.grid else ""))
        used = {r.run_id for r in results}
        fingerprints = sorted({str(r.data.tags.get("normcheck.data_fingerprint")) for r in runs
                               if r.info.run_id in used})
        base = {str(r.data.tags.get("normcheck.data_fingerprint")) for r in runs
                if r.info.run_id in used and self.grid and
                int(r.data.params.get("split_seed", -1)) == self.grid.data.split_seed}
        verdicts: list[Verdict] = []
        if self.design and len(base) != 1:
            raise SessionError("--seeds auto needs the grid's runs on its base split on one "
                               f"data source; these have {len(base)}")
        stored = self._stored_rounds(tracker, min(base), results_table(results)) \
            if self.design else None
        try:
            if self.design:  # the stored looks, and any more the runs allow
                self.rounds = sequential.run(results_table(results), self.design, start=stored)
                used = self.rounds.looks[-1].replicates if self.rounds.looks else 0
                results = [r for r in results if self.grid.replicate(r.config) < used]
                verdicts = self.rounds.verdicts() if self.rounds.looks else []
            else:
                verdicts = hypotheses.evaluate(results_table(results))
        except ValueError as exc:  # e.g. runs without their paired partner
            self.notes.append(f"hypotheses not evaluated ({exc})")
        context = {"source": f"rebuilt from MLflow store {redact(self.uri)}, experiment "
                             f"`{self.experiment}`, {len(results)} finished runs",
                   "data fingerprints": ", ".join(f"`{f}`" for f in fingerprints)}
        written = write_reports(results, self.report_dir, verdicts, context,
                                self.rounds.markdown() if self.rounds else "")
        if verdicts and self.record_verdicts:
            if len(base) != 1:
                raise SessionError("--record-verdicts needs --grid, and the grid's runs on its "
                                   f"base split on one data source; these have {len(base)}")
            self.notes.append(regression.record_verdicts(
                self.record_verdicts, self.grid.name, base.pop(), verdicts,
                f"rebuilt from {redact(self.uri)}"))
        return verdicts, written
