"""The pytest plugin: a grid of configurations as test cases, reports at the end of the session.

Loaded by ``experiments/conftest.py`` (``pytest_plugins = ["normcheck.plugin"]``). A thin layer:
everything it does is a call into the library.

Under xdist the controller prepares everything shared before workers start (the data cache,
the MLflow store and experiment, a session results folder) and hands it to the workers; at the
end it alone writes the reports.
"""

import argparse
import os
import resource
import shlex
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from normcheck import __version__, hypotheses
from normcheck.data import DataError
from normcheck.device import cpu_count, select_device
from normcheck.grid import Grid, GridError, load_grid
from normcheck.report import (
    ReportError,
    check_writable,
    format_table,
    format_verdict_table,
    results_table,
    summary_table,
    write_reports,
)
from normcheck.study import Study
from normcheck.tracking import DEFAULT_EXPERIMENT, Tracker, TrackingError, default_tracking_uri

DATA_ENV = "NORMCHECK_DATA"


@dataclass
class Session:
    """What this process knows about the normcheck session."""

    grid: Grid
    data_dir: str | None
    report_dir: Path
    uri: str
    experiment: str
    log_model: bool
    expect_verdicts: str | None
    inconclusive: str
    recorded: list[dict] = field(default_factory=list)
    study: Study | None = None
    table: "pd.DataFrame | None" = None
    written: list[Path] = field(default_factory=list)
    verdicts: list[hypotheses.Verdict] = field(default_factory=list)
    missing: int = 0
    origins: dict[str, int] = field(default_factory=dict)  # "trained"/"reused" -> runs
    peak_mib: dict[str, float] = field(default_factory=dict)  # process -> peak resident memory
    report_error: str | None = None


SESSION = pytest.StashKey[Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("normcheck", "normcheck study")
    group.addoption("--grid", default="full",
                    help="grid profile name (full, quick) or path to a .toml file [full]")
    group.addoption("--data-dir", default=None,
                    help=f"data: image-folder tree, cifar-10-batches-py folder or "
                         f"cifar-10-python.tar.gz (default: ${DATA_ENV}, else download CIFAR-10)")
    group.addoption("--report-dir", default="reports", help="where reports go [reports]")
    group.addoption("--mlflow-uri", default=None,
                    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                         "sqlite:///mlflow.db in the working folder)")
    group.addoption("--experiment", default=DEFAULT_EXPERIMENT,
                    help=f"MLflow experiment name [{DEFAULT_EXPERIMENT}]")
    group.addoption("--log-model", action="store_true",
                    help="also log each trained model to MLflow as an artifact")
    group.addoption("--expect-verdicts", default=None, metavar="TOML",
                    help="regression mode: compare each hypothesis's verdict with the one "
                         "recorded in TOML for this grid and data; a recorded refutation "
                         "then reports as xfail, and any change fails")
    group.addoption("--seeds", type=int, default=None,
                    help="replicates (seeds) per configuration (default: the grid's)")
    group.addoption("--base-seed", type=int, default=None,
                    help="first replicate seed (default: the grid's train.seed)")
    group.addoption("--resample-split", action=argparse.BooleanOptionalAction, default=None,
                    help="each replicate draws its own train/validation split (default: the "
                         "grid's; full and quick do)")
    group.addoption("--retrain", action="store_true",
                    help="train every configuration, even one with a FINISHED run of the same "
                         "configuration hash in the experiment (default: reuse it)")
    group.addoption("--inconclusive", choices=["fail", "warn"], default="fail",
                    help="an inconclusive verdict fails the check, or only warns [fail]")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Validate the grid and options before anything trains: bad input is a usage error."""
    config.addinivalue_line("markers", "hypothesis_check: a study hypothesis, checked last")
    # MLflow turns its usage telemetry off under pytest, but decides when it is imported, before
    # any test runs; a test session (often offline, in CI) should not phone home. Opt in by
    # setting MLFLOW_DISABLE_TELEMETRY=false.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    seeds = config.getoption("seeds")
    if seeds is not None and seeds < 1:
        raise pytest.UsageError(f"--seeds {seeds}: use an integer >= 1")
    try:
        grid = load_grid(config.getoption("grid")).with_replicates(
            seeds, config.getoption("base_seed"), config.getoption("resample_split"))
    except GridError as exc:
        raise pytest.UsageError(f"--grid: {exc}") from exc
    problems = hypotheses.grid_problems(grid.lr, grid.fc_units, grid.norm)
    if problems:
        raise pytest.UsageError(f"--grid {config.getoption('grid')}: " + "; ".join(problems))
    expect = config.getoption("expect_verdicts")
    try:
        recorded = hypotheses.load_recorded_verdicts(expect) if expect else []
    except ValueError as exc:
        raise pytest.UsageError(f"--expect-verdicts: {exc}") from exc
    config.stash[SESSION] = Session(
        grid=grid,
        data_dir=config.getoption("data_dir") or os.environ.get(DATA_ENV) or None,
        report_dir=Path(config.getoption("report_dir")).resolve(),
        uri=config.getoption("mlflow_uri") or default_tracking_uri(),
        experiment=config.getoption("experiment"),
        log_model=config.getoption("log_model"),
        expect_verdicts=expect,
        inconclusive=config.getoption("inconclusive"),
        recorded=recorded,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Load the data and open the tracking store, once per process; the controller creates both."""
    config = session.config
    state = config.stash[SESSION]
    worker = config.workerinput if _is_worker(config) else None
    device = (select_device(int(worker["workerid"].removeprefix("gw")), int(worker["workercount"]))
              if worker else select_device())
    study = Study(state.data_dir, state.grid.data, device, Path(), log_model=state.log_model,
                  retrain=config.getoption("retrain"))
    try:  # every split the grid uses: data errors surface now, before any training
        for split_seed in sorted({c.split_seed for c in state.grid.configs()}):
            study.splits(split_seed)
    except DataError as exc:
        raise pytest.UsageError(f"data: {exc}") from exc
    if worker:
        study.results_dir = Path(worker["normcheck"]["results_dir"])
        study.tracker = Tracker(state.uri, worker["normcheck"]["experiment_id"])
    else:
        try:
            check_writable(state.report_dir)
            study.tracker = Tracker.open(state.uri, state.experiment)
        except (ReportError, TrackingError) as exc:
            raise pytest.UsageError(str(exc)) from exc
        study.results_dir = Path(tempfile.mkdtemp(prefix="normcheck-session-"))
    state.study = study


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: hand each worker the shared results folder and experiment."""
    study = node.config.stash[SESSION].study
    node.workerinput["normcheck"] = {"results_dir": str(study.results_dir),
                                     "experiment_id": study.tracker.experiment_id}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per grid configuration, for tests that take ``normcheck_config``."""
    if "normcheck_config" in metafunc.fixturenames:
        configs = metafunc.config.stash[SESSION].grid.configs()
        metafunc.parametrize("normcheck_config", configs, ids=[c.case_id for c in configs])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hypothesis checks go last, so they mostly find the grid already trained."""
    items.sort(key=lambda item: item.get_closest_marker("hypothesis_check") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Tag a configuration's report with where its result came from (trained or reused)."""
    report = yield
    config = getattr(item, "funcargs", {}).get("normcheck_config")
    state = item.config.stash.get(SESSION, None)
    if report.when == "call" and config is not None and state and state.study:
        origin = state.study.origin(config)
        if origin:
            report.user_properties.append(("normcheck_origin", origin))
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A reused configuration shows as ``r`` / ``REUSED`` instead of ``.`` / ``PASSED``."""
    if report.when == "call" and report.passed and \
            ("normcheck_origin", "reused") in report.user_properties:
        return "passed", "r", "REUSED"
    return None


@pytest.fixture(scope="session")
def normcheck_study(pytestconfig: pytest.Config) -> Study:
    """The session's study: ``run(config)`` trains a configuration or returns its result."""
    return pytestconfig.stash[SESSION].study


@pytest.fixture(scope="session")
def normcheck_grid(pytestconfig: pytest.Config) -> Grid:
    return pytestconfig.stash[SESSION].grid


@pytest.fixture(scope="session")
def normcheck_table(normcheck_study: Study, normcheck_grid: Grid):
    """The whole grid's metrics table, training whatever configuration is still missing."""
    return results_table(normcheck_study.run(c) for c in normcheck_grid.configs())


@pytest.fixture(scope="session")
def normcheck_verdicts(normcheck_table) -> dict[str, hypotheses.Verdict]:
    """Every hypothesis's verdict, judged once as a family (Holm), by name."""
    return {v.name: v for v in hypotheses.evaluate(normcheck_table)}


@pytest.fixture(scope="session")
def normcheck_expected(pytestconfig: pytest.Config, normcheck_study: Study) -> dict[str, str]:
    """Verdicts recorded for this grid and data (``--expect-verdicts``); empty otherwise."""
    state = pytestconfig.stash[SESSION]
    return hypotheses.recorded_for(state.recorded, state.grid.name,
                                   normcheck_study.splits().fingerprint)


@pytest.fixture
def assert_verdict(normcheck_expected: dict[str, str], pytestconfig: pytest.Config):
    """Fail a hypothesis that does not hold, unless ``--expect-verdicts`` recorded exactly this
    verdict (xfail) or it is inconclusive under ``--inconclusive warn`` (a warning)."""
    state = pytestconfig.stash[SESSION]

    def check(verdict: hypotheses.Verdict) -> None:
        outcome, message = hypotheses.judge(verdict, normcheck_expected.get(verdict.name),
                                            state.expect_verdicts, state.inconclusive)
        if outcome == "fail":
            pytest.fail(message, pytrace=False)
        if outcome == "xfail":
            pytest.xfail(message)
        if outcome == "warn":
            warnings.warn(message, InconclusiveWarning, stacklevel=2)

    return check


class InconclusiveWarning(UserWarning):
    """A hypothesis's interval straddles its margin (``--inconclusive warn``)."""


def _context(config: pytest.Config, state: Session) -> dict[str, str]:
    """The setup, for report.md: grid, data, environment, tracking."""
    import platform

    import torch

    grid, splits = state.grid, state.study.splits()
    return {
        "grid": f"`{grid.name}`: {grid.description}; lr {list(grid.lr)} x fc_units "
                f"{list(grid.fc_units)} x norm {list(grid.norm)}"
                + (f" x dropout {list(grid.dropout)}" if len(grid.dropout) > 1 else "")
                + f", {grid.seeds} replicates: seeds from {grid.base_seed}"
                + (f", each with its own split (split seeds from {splits.split_seed})"
                   if grid.resample_split else f", all on split {splits.split_seed}"),
        "training": ", ".join(f"{k}={v}" for k, v in grid.train if k != "seed") +
                    (f", dropout={grid.dropout[0]}" if len(grid.dropout) == 1 else ""),
        "data": f"{splits.source}, protocol `{splits.protocol}` ({len(splits.train_y)} train, "
                f"{len(splits.val_y)} validation, {len(splits.test_y)} test per replicate), "
                f"fingerprint of split {splits.split_seed} `{splits.fingerprint}`",
        "classes": ", ".join(splits.classes),
        "environment": f"normcheck {__version__}, Python {platform.python_version()}, torch "
                       f"{torch.__version__}, {platform.machine()}, {cpu_count()} cores, "
                       f"xdist workers: {getattr(config.option, 'numprocesses', None) or 0}, "
                       f"device {state.study.device}",
        "MLflow": f"{state.uri}, experiment `{state.experiment}`",
    }


def _peak_mib() -> float:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: note each worker's peak memory, which it sent when it finished."""
    state = node.config.stash.get(SESSION, None)
    peak = getattr(node, "workeroutput", {}).get("normcheck_peak_mib")
    if state is not None and peak is not None:
        state.peak_mib[node.gateway.id] = peak


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker sends its peak memory. The controller, also after failures and Ctrl-C, decides
    the hypotheses and writes the reports of whatever finished."""
    state = session.config.stash.get(SESSION, None)
    if state is None or state.study is None:
        return
    if _is_worker(session.config):
        session.config.workeroutput["normcheck_peak_mib"] = _peak_mib()
        return
    if not state.peak_mib:  # no workers: this process trained
        state.peak_mib["main"] = _peak_mib()
    outcomes = state.study.outcomes()
    results = [result for result, _ in outcomes]
    for _, origin in outcomes:
        state.origins[origin] = state.origins.get(origin, 0) + 1
    wanted = {c.case_id for c in state.grid.configs()}
    state.missing = len(wanted - {r.config.case_id for r in results})
    try:
        if results:
            state.table = results_table(results)
            if not state.missing:
                state.verdicts = hypotheses.evaluate(state.table)
            state.written = write_reports(results, state.report_dir, state.verdicts,
                                          _context(session.config, state))
    except ReportError as exc:
        command = shlex.join(["python", "-m", "normcheck", "report", "--tracking-uri", state.uri,
                              "--experiment", state.experiment, "--grid", state.grid.name,
                              "--out", str(state.report_dir)])
        state.report_error = (f"{exc}. The runs are safe in MLflow; rebuild the reports "
                              f"with: {command}")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        shutil.rmtree(state.study.results_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is None or state.table is None or _is_worker(config):
        return
    tr = terminalreporter
    tr.section("normcheck")
    tr.write_line(f"runs: reused {state.origins.get('reused', 0)}, trained "
                  f"{state.origins.get('trained', 0)}" +
                  (f", {state.missing} missing" if state.missing else ""))
    splits = state.study.splits()
    tr.write_line(f"grid {state.grid.name!r}: {state.grid.description}")
    tr.write_line(f"data: {splits.source} (protocol {splits.protocol}, fingerprint "
                  f"{splits.fingerprint})")
    tr.write_line(format_table(summary_table(state.table)))
    if state.verdicts:
        tr.write_line(format_verdict_table(state.verdicts))
        if state.expect_verdicts:
            recorded = hypotheses.recorded_for(state.recorded, state.grid.name,
                                               splits.fingerprint)
            tr.write_line(f"recorded verdicts ({state.expect_verdicts}): " + (
                ", ".join(f"{k} {v}" for k, v in sorted(recorded.items())) if recorded else
                "none for this grid and data fingerprint, so failing verdicts fail"))
    else:
        tr.write_line(f"hypotheses not evaluated: {state.missing} runs of the grid have no result")
    if state.report_error:
        tr.write_line(f"REPORT NOT WRITTEN: {state.report_error}", red=True, bold=True)
    else:
        tr.write_line(f"report: {state.report_dir / 'report.md'} "
                      f"({len(state.written)} files in {state.report_dir})")
    tr.write_line("peak memory: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in
                                              sorted(state.peak_mib.items())))
    tr.write_line(f"MLflow: {state.uri}, experiment {state.experiment!r}")
    if state.uri.startswith("sqlite:"):
        tr.write_line(f"  view it with: mlflow ui --backend-store-uri {state.uri}")
