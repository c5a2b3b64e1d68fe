"""A normcheck session as a lifecycle: prepare, hand off, join, end, close.

The pytest plugin's hooks and ``python -m normcheck report`` both drive this object:

- ``prepare`` (the controller, before any worker starts) opens the store, checks the data
  and the report folder, creates the session's results folder and takes every configuration
  the store already has as a result, in one query; ``join`` (an xdist worker) attaches to it
  from the controller's ``handoff`` without loading data or MLflow until it has to train.
- The plan (``normcheck.plans``) says what the cases are and decides the family once.
- ``end`` finishes the controller's part: ``decide_and_report`` writes the reports, the same
  step ``rebuild`` runs on the store's runs alone. What happened is kept in ``outcome`` for the
  terminal (``normcheck.summary``).
"""

import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from normcheck import regression
from normcheck.claims import ClaimsError, lock_folder, open_claims
from normcheck.cluster import EngineError, RayOptions
from normcheck.engines import Engine
from normcheck.local import LocalEngine
from normcheck.plans import FixedPlan, Plan, RoundsPlan
from normcheck.records import RunResult, TrainConfig
from normcheck.report import ReportError, check_writable, write_reports
from normcheck.results import ResultsFolder
from normcheck.reuse import adopt_finished
from normcheck.settings import SessionError, SessionOptions
from normcheck.splits import Splits
from normcheck.tables import results_table
from normcheck.tracking import Tracker, TrackingError, check_reachable
from normcheck.uris import redact, redact_text
from normcheck.verdicts import Verdict

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class _Runs:
    """What a plan asks of the engine: these configurations' results, trained if missing."""

    engine: Engine

    def __call__(self, configs: list[TrainConfig]) -> list[RunResult]:
        return [self.engine.run(c) for c in configs]


class NothingToReport(SessionError):
    """A rebuild found no finished normcheck run to report on."""


@dataclass
class Outcome:
    """What a session's end found and wrote."""

    table: "pd.DataFrame | None" = None
    written: list[Path] = field(default_factory=list)
    missing: int = 0
    origins: dict[str, int] = field(default_factory=dict)  # "trained"/"reused" -> runs
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. the record written
    lost: str | None = None  # why a worker's store stopped answering (its own says so too)
    errors: list[str] = field(default_factory=list)  # what failed at the end, each a line


@dataclass
class StudySession:
    """One session of a grid on one data source, MLflow experiment and report folder."""

    options: SessionOptions
    results_dir: Path | None = None
    tracker: Tracker | None = None
    splits: Splits | None = None
    results: ResultsFolder | None = None
    engine: Engine | None = None
    plan: Plan | None = None
    peak: dict[str, float] = field(default_factory=dict)  # process -> peak resident MiB
    outcome: Outcome = field(default_factory=Outcome)

    # -- start -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """The controller's start: data, report folder and store checked, results folder
        made, and the store's finished runs of this grid taken as results."""
        from normcheck.data import DataError

        o = self.options
        try:
            check_writable(o.report_dir)
            tracker = Tracker.open(o.uri, o.experiment)
        except (ReportError, TrackingError) as exc:
            raise SessionError(str(exc)) from exc
        self.results_dir = Path(tempfile.mkdtemp(prefix="normcheck-session-"))
        try:
            self._attach(tracker, {}, (0, 1), o.ray)
            for split_seed in sorted({c.split_seed for c in o.grid.configs()}):
                self.splits.fingerprint(split_seed)  # data errors surface now, not in training
            if not o.retrain:
                adopt_finished(self.results, tracker, o.grid.configs())
            if isinstance(self.plan, RoundsPlan):
                self.plan.check()
            self.engine.start(self.plan.first())
        except (DataError, EngineError, ClaimsError) as exc:
            self.close()
            raise SessionError(f"data: {exc}" if isinstance(exc, DataError) else str(exc)) \
                from None

    def handoff(self) -> dict:
        """What a worker needs to join: JSON-able."""
        return {"results_dir": str(self.results_dir),
                "experiment_id": self.tracker.experiment_id,
                "fingerprints": {str(k): v for k, v in self.splits.fingerprints.items()}}

    def join(self, handoff: dict, worker: int, workers: int) -> None:
        """A worker's start, from the controller's ``handoff``: no data, torch or MLflow is
        loaded until the worker has something to train."""
        self.results_dir = Path(handoff["results_dir"])
        try:
            self._attach(Tracker(self.options.uri, handoff["experiment_id"]),
                         {int(k): v for k, v in handoff["fingerprints"].items()},
                         (worker, workers), None)
        except ClaimsError as exc:
            raise SessionError(str(exc)) from None

    def _attach(self, tracker: Tracker, fingerprints: dict[int, str],
                worker: tuple[int, int], ray: RayOptions | None) -> None:
        """The session's parts, each given what it uses: splits, results, engine, plan."""
        o = self.options
        claims = open_claims(o.claims_db, tracker.experiment_id, lock_folder(tracker.uri))
        self.tracker = tracker
        self.splits = Splits(o.data_dir, o.grid.data, worker=worker, fingerprints=fingerprints)
        self.results = ResultsFolder(self.results_dir, self.splits.key)
        parts = (self.results, self.splits, tracker, claims)
        if ray is None:
            self.engine = LocalEngine(*parts, retrain=o.retrain, log_model=o.log_model,
                                      pack=o.pack)
        else:
            from normcheck.cluster import RayEngine

            self.engine = RayEngine(*parts, ray, log_model=o.log_model, retrain=o.retrain,
                                    pack=o.pack)
        self.plan = self._plan(tracker, self.fingerprint)
        if ray is None:  # what a pack may take along: what the plan needs with it
            self.engine.companions = self.plan.companions

    def _plan(self, tracker: Tracker, fingerprint: str) -> Plan:
        o = self.options
        results = _Runs(self.engine)  # the plan holds the engine, not the session
        if o.design is None:
            return FixedPlan(o.grid, o.family, self.results_dir, results)
        return RoundsPlan(o.grid, o.family, o.design, self.results_dir, results, tracker,
                          fingerprint, f"{redact(o.uri)}, experiment {o.experiment!r}",
                          missing=self.results.missing, submit=self.engine.add)

    # -- while the cases run ---------------------------------------------------------------

    def run(self, config: TrainConfig) -> RunResult:
        """The configuration's result: this session's, the store's, or trained now (on the
        cluster with ``--engine ray``)."""
        return self.engine.run(config)

    @property
    def fingerprint(self) -> str:
        """The data fingerprint of the grid's base split: what records are kept under."""
        return self.splits.fingerprint(self.options.grid.data.split_seed)

    def expected(self) -> dict[str, str]:
        """Verdicts recorded for this grid and data (``--expect-verdicts``); empty otherwise."""
        return regression.recorded_for(list(self.options.recorded), self.options.grid.name,
                                       self.fingerprint)

    def judge(self, verdict: Verdict) -> tuple[str, str]:
        """How a hypothesis test reports ``verdict`` (see ``regression.judge``)."""
        return regression.judge(verdict, self.expected().get(verdict.name),
                                self.options.expect_verdicts, self.options.inconclusive)

    # -- end -------------------------------------------------------------------------------

    def end(self, workeroutput: dict | None, peak_mib: float) -> bool:
        """The end of this process's part: a worker reports its peak memory into
        ``workeroutput``; the controller (``None``) decides and reports, also after failures
        and Ctrl-C. False if the reports or the record could not be written (``outcome``
        says why; the runs are safe in MLflow)."""
        if self.engine is None:  # the session never started
            return True
        if workeroutput is not None:
            workeroutput["normcheck_peak_mib"] = peak_mib
            workeroutput["normcheck_lost"] = self.tracker.lost
            return True
        self.peak = self.peak or {"main": peak_mib}  # no workers: this process trained
        try:
            outcomes = self.results.outcomes()
            for _, origin in outcomes:
                self.outcome.origins[origin] = self.outcome.origins.get(origin, 0) + 1
            wanted = {c.case_id for c in self.plan.covered()}
            results = [r for r, _ in outcomes if r.config.case_id in wanted]
            self.outcome.missing = len(wanted - {r.config.case_id for r in results})
            if results:
                from normcheck.summary import context

                table = results_table(results)
                decided = [] if self.outcome.missing else self.plan.verdicts(table)
                self.decide_and_report(results, decided, context(self, table),
                                       self.fingerprint, self.plan.how(), table)
            lost = self.outcome.lost or self.tracker.lost
            if lost:
                self.outcome.errors.append(
                    f"MLFLOW STORE LOST: {lost}. Training stopped there: the {len(results)} "
                    f"runs that finished are kept in the store, {self.outcome.missing} did "
                    "not run. Run the same command again once the store answers: the finished "
                    "runs are reused and only the rest is trained")
            return not self.outcome.errors
        finally:
            self.close()

    def decide_and_report(self, results: list[RunResult], verdicts: list[Verdict],
                          context: dict[str, str], fingerprint: str | None, how: str,
                          table: "pd.DataFrame | None" = None) -> None:
        """Write the reports of ``results`` and, with ``--record-verdicts``, the record: the
        last step of a session and of a rebuild."""
        o, out = self.options, self.outcome
        out.table = results_table(results) if table is None else table
        out.verdicts = verdicts
        try:
            out.written = write_reports(results, o.report_dir, verdicts, context,
                                        self.plan.markdown() if self.plan else "", o.family)
        except ReportError as exc:
            command = shlex.join(["python", "-m", "normcheck", "report", "--mlflow-uri",
                                  redact(o.uri), "--experiment", o.experiment, "--grid",
                                  o.grid.name if o.grid else "", "--report-dir",
                                  str(o.report_dir), "--experiments", *o.paths])
            out.errors.append(f"REPORT NOT WRITTEN: {exc}. The runs are safe in MLflow; "
                              f"rebuild the reports with: {command}")
        if self.tracker is not None and not out.missing:  # a study half-run decides nothing
            self._publish(results, verdicts, fingerprint)
        if verdicts and o.record_verdicts:
            if fingerprint is None:
                raise SessionError("--record-verdicts needs --grid, and the grid's runs on its "
                                   "base split on one data source")
            split = self.splits.split() if self.splits else None
            source = f"{split.source}, protocol {split.protocol}" if split else None
            try:
                out.notes.append(regression.record_verdicts(
                    o.record_verdicts, o.grid.name, fingerprint, verdicts, how, source))
            except (ValueError, OSError) as exc:
                out.errors.append(f"VERDICTS NOT RECORDED: --record-verdicts: {exc}")

    def _publish(self, results: list[RunResult], verdicts: list[Verdict],
                 fingerprint: str | None) -> None:
        """The study's run in MLflow (``normcheck.study_run``), updated if an earlier session
        wrote it; if the store cannot take it, the session says so and the reports stay."""
        from normcheck.registration import texts
        from normcheck.study_run import StudyKey, StudyRun

        o, out = self.options, self.outcome
        study = StudyKey(o.grid.name if o.grid else "all", fingerprint or "several",
                         int(o.family.spec["version"]))
        try:
            check_reachable(o.uri)
            # claimed, so two sessions ending at once write one study run between them
            claims = open_claims(o.claims_db, self.tracker.experiment_id,
                                 lock_folder(self.tracker.uri))
            try:
                with claims.hold(f"study-{study.key}"):
                    run_id = StudyRun(self.tracker, study).publish(
                        verdicts, o.family.spec,
                        texts([w for _, _, w in o.family.registrations()]), out.written,
                        [r.run_id for r in results if r.run_id])
            finally:
                claims.close()
        except Exception as exc:  # the server gone, say: the reports are written already
            out.errors.append(f"STUDY RUN NOT WRITTEN to MLflow {redact(o.uri)}: "
                              f"{redact_text(str(exc), o.uri)}. The reports are in "
                              f"{o.report_dir}; run the session again to write it")
            return
        out.notes.append(f"the study in MLflow: run {run_id} ({study.name}), its "
                         f"{len(results)} training runs linked to it")

    def close(self) -> None:
        """Leave the cluster, free this process's claims and remove the session's results
        folder (the runs themselves are in MLflow)."""
        if self.engine is not None:
            self.engine.close()
        if self.results_dir is not None:
            shutil.rmtree(self.results_dir, ignore_errors=True)
