"""The pytest plugin: a grid of configurations as test cases, reports at the end of the session.

Loaded by ``experiments/conftest.py`` (``pytest_plugins = ["normcheck.plugin"]``). Each hook
is a line or two that calls the session object, ``normcheck.session.StudySession``: under
xdist the controller prepares it (data, store, results folder, reused runs) and hands it to
the workers, and at the end the controller alone finishes it and writes the reports.
"""

import os
import warnings

import pytest

from normcheck.grid import Grid
from normcheck.hypotheses import Verdict
from normcheck.options import add_options
from normcheck.session import ALARMS, SessionError, StudySession

SESSION = pytest.StashKey[StudySession]()


class InconclusiveWarning(UserWarning):
    """A hypothesis's interval straddles its margin (``--inconclusive warn``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser.getgroup("normcheck", "normcheck study").addoption)


def pytest_configure(config: pytest.Config) -> None:
    """Validate the grid and options before anything trains: bad input is a usage error."""
    config.addinivalue_line("markers", "hypothesis_check: a study hypothesis, checked last")
    # MLflow turns its telemetry off under pytest only if it is imported late; a test session
    # (often offline, in CI) should not phone home. Opt in with MLFLOW_DISABLE_TELEMETRY=false.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        config.stash[SESSION] = StudySession.from_options(
            config.option, workers=getattr(config.option, "numprocesses", None) or 0)
    except SessionError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller prepares the session; a worker joins the one it was handed."""
    state, worker = session.config.stash[SESSION], getattr(session.config, "workerinput", None)
    try:
        if worker:
            state.join(worker["normcheck"], int(worker["workerid"].removeprefix("gw")),
                       int(worker["workercount"]))
        else:
            state.prepare()
    except SessionError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput["normcheck"] = node.config.stash[SESSION].handoff()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per grid configuration (``normcheck_config``), and per normalisation compared
    with none (``normcheck_arm``)."""
    state = metafunc.config.stash[SESSION]
    grid = state.grid
    if "normcheck_config" in metafunc.fixturenames:
        configs = state.cases()
        metafunc.parametrize("normcheck_config", configs, ids=[c.case_id for c in configs])
    if "normcheck_arm" in metafunc.fixturenames:
        metafunc.parametrize("normcheck_arm", grid.arms)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hypothesis checks go last, so they mostly find the grid already trained."""
    items.sort(key=lambda item: item.get_closest_marker("hypothesis_check") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``--seeds auto``: a configuration of a round the study no longer needs is skipped."""
    config = getattr(item, "callspec", None) and item.callspec.params.get("normcheck_config")
    reason = config and item.config.stash[SESSION].skip_reason(config)
    if reason:
        pytest.skip(reason)


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
def normcheck_session(pytestconfig: pytest.Config) -> StudySession:
    """The session: its grid, study (``run(config)`` trains or returns a result) and verdicts."""
    return pytestconfig.stash[SESSION]


@pytest.fixture(scope="session")
def normcheck_study(normcheck_session: StudySession):
    return normcheck_session.study


@pytest.fixture(scope="session")
def normcheck_grid(normcheck_session: StudySession) -> Grid:
    return normcheck_session.grid


@pytest.fixture(scope="session")
def normcheck_table(normcheck_session: StudySession):
    """The whole grid's metrics table, training whatever configuration is still missing."""
    return normcheck_session.complete_table()


@pytest.fixture(scope="session")
def normcheck_verdicts(normcheck_session: StudySession) -> dict[tuple[str, str], Verdict]:
    """Every verdict, decided once per session as one family, by (hypothesis, arm)."""
    return {(v.hypothesis, v.arm): v for v in normcheck_session.verdicts()}


@pytest.fixture
def assert_verdict(normcheck_session: StudySession):
    """Fail a hypothesis that does not hold, unless ``--expect-verdicts`` recorded exactly this
    verdict (xfail) or it is inconclusive under ``--inconclusive warn`` (a warning)."""

    def check(verdict: Verdict) -> None:
        outcome, message = normcheck_session.judge(verdict)
        if outcome == "fail":
            pytest.fail(message, pytrace=False)
        if outcome == "xfail":
            pytest.xfail(message)
        if outcome == "warn":
            warnings.warn(message, InconclusiveWarning, stacklevel=2)

    return check


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: note the peak memory a worker sent when it finished."""
    peak = getattr(node, "workeroutput", {}).get("normcheck_peak_mib")
    if SESSION in node.config.stash and peak is not None:
        node.config.stash[SESSION].peak[node.gateway.id] = peak


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker sends its peak memory; the controller finishes the session and writes the
    reports, also after failures and Ctrl-C."""
    state = session.config.stash.get(SESSION, None)
    if state and not state.end(getattr(session.config, "workeroutput", None)):
        session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    lines = config.stash[SESSION].summary() if SESSION in config.stash else []
    if lines:
        terminalreporter.section("normcheck")
    for line in lines:
        terminalreporter.write_line(line, red=line.startswith(ALARMS))
