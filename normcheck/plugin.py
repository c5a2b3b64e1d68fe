"""The pytest plugin: a grid of configurations as test cases, reports at the end of the session.

Loaded by ``experiments/conftest.py`` (``pytest_plugins = ["normcheck.plugin"]``). Each hook
is a line or two that calls the session object, ``normcheck.session.StudySession``: under
xdist the controller prepares it (data, store, results folder, reused runs) and hands it to
the workers, and at the end the controller alone finishes it and writes the reports. The
family is every hypothesis (``normcheck.family.hypothesis``) in the test files the session
collects; each hypothesis's test asserts the verdict the family gave it.
"""

import os
import warnings

import pytest

from normcheck import summary
from normcheck.options import add_options
from normcheck.session import StudySession
from normcheck.settings import SessionError, SessionOptions
from normcheck.summary import ALARMS
from normcheck.tracking import StoreLost
from normcheck.verdicts import Verdict

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
    here = config.invocation_params.dir
    try:
        config.stash[SESSION] = StudySession(SessionOptions.parse(
            config.option, [here / arg for arg in config.args],
            workers=getattr(config.option, "numprocesses", None) or 0))
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
    if "normcheck_config" in metafunc.fixturenames:
        configs = state.plan.cases()
        metafunc.parametrize("normcheck_config", configs, ids=[c.case_id for c in configs])
    if "normcheck_arm" in metafunc.fixturenames:
        metafunc.parametrize("normcheck_arm", state.options.grid.arms)


def _is_hypothesis(item: pytest.Item) -> bool:
    return hasattr(getattr(item, "function", None), "normcheck_hypothesis")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hypothesis checks go last, so they mostly find the grid already trained."""
    for item in items:
        if _is_hypothesis(item):
            item.add_marker("hypothesis_check")
    items.sort(key=_is_hypothesis)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``--seeds auto``: a configuration of a round the study no longer needs is skipped."""
    config = getattr(item, "callspec", None) and item.callspec.params.get("normcheck_config")
    reason = config and item.config.stash[SESSION].plan.skip_reason(config)
    if reason:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Tag a configuration's report with where its result came from (trained or reused); a
    store that stopped answering is one line, not a traceback per case."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(StoreLost):
        report.longrepr = f"StoreLost: {call.excinfo.value}"
    config = getattr(item, "funcargs", {}).get("normcheck_config")
    state = item.config.stash.get(SESSION, None)
    if report.when == "call" and config is not None and state and state.results:
        origin = state.results.origin(config)
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
    """The session: its options, plan, ``run(config)`` (trains or returns a result) and
    verdicts."""
    return pytestconfig.stash[SESSION]


@pytest.fixture(scope="session")
def normcheck_verdicts(normcheck_session: StudySession) -> dict[tuple[str, str], Verdict]:
    """Every verdict, decided once per session as one family, by (hypothesis, arm)."""
    return {(v.hypothesis, v.arm): v for v in normcheck_session.plan.verdicts()}


@pytest.fixture
def normcheck_verdict(normcheck_session: StudySession, normcheck_verdicts):
    """Assert a hypothesis's verdict on an arm: fail one that does not hold, unless
    ``--expect-verdicts`` recorded exactly this verdict (xfail) or it is inconclusive under
    ``--inconclusive warn`` (a warning)."""

    def check(name: str, arm: str) -> None:
        grid = normcheck_session.plan.grid
        why = normcheck_session.plan.family.not_applicable(grid.lr, grid.fc_units, grid.norm)
        if name in why:
            pytest.skip(f"{name} is not asked on this grid: {why[name]}")
        outcome, message = normcheck_session.judge(normcheck_verdicts[name, arm])
        if outcome == "fail":
            pytest.fail(message, pytrace=False)
        if outcome == "xfail":
            pytest.xfail(message)
        if outcome == "warn":
            warnings.warn(message, InconclusiveWarning, stacklevel=2)

    return check


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: note the peak memory a worker sent when it finished, and whether
    its store stopped answering."""
    output = getattr(node, "workeroutput", {})
    if SESSION not in node.config.stash:
        return
    state = node.config.stash[SESSION]
    if output.get("normcheck_peak_mib") is not None:
        state.peak[node.gateway.id] = output["normcheck_peak_mib"]
    state.outcome.lost = state.outcome.lost or output.get("normcheck_lost")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker sends its peak memory; the controller finishes the session and writes the
    reports, also after failures and Ctrl-C."""
    state = session.config.stash.get(SESSION, None)
    if state and not state.end(getattr(session.config, "workeroutput", None),
                               summary.peak_mib()):
        session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    lines = summary.lines(config.stash[SESSION]) if SESSION in config.stash else []
    if lines:
        terminalreporter.section("normcheck")
    for line in lines:
        terminalreporter.write_line(line, red=line.startswith(ALARMS))
