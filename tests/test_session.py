"""What the plugin and the command line share: options checked once, verdicts decided once."""

import argparse
import socket
from pathlib import Path

import pytest
from helpers import EXPERIMENTS, FAMILY, results

from normcheck.family import Family
from normcheck.options import OPTIONS, REPORT_OPTIONS, SESSION_OPTIONS, add_options
from normcheck.plans import FixedPlan
from normcheck.settings import SessionError, SessionOptions
from normcheck.tables import results_table


def parse(namespace: argparse.Namespace) -> SessionOptions:
    return SessionOptions.parse(namespace, [EXPERIMENTS])


def options(**given) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument)
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in given.items()])


def test_the_plugin_and_the_command_line_spell_options_the_same() -> None:
    cli = argparse.ArgumentParser()
    add_options(cli.add_argument, REPORT_OPTIONS)
    flags = {s for a in cli._actions for s in a.option_strings} - {"-h", "--help"}
    assert flags == {f for name in REPORT_OPTIONS for f in OPTIONS[name][0]} | {
        "--no-resample-split"}
    assert set(REPORT_OPTIONS) - {"experiments"} <= set(SESSION_OPTIONS)


@pytest.mark.parametrize("given, message", [
    ({"seeds": "0"}, "argument --seeds: '0' is neither an integer >= 1 nor auto"),
    ({"seeds": "abc"}, "argument --seeds: 'abc' is neither an integer >= 1 nor auto"),
    ({"base_seed": "-1"}, "argument --base-seed: '-1' is not an integer >= 0"),
    ({"grid": "fast"}, "argument --grid: unknown grid 'fast'"),
    ({"pack": "0"}, "argument --pack: '0' is neither auto, off nor an integer >= 1"),
])
def test_option_types_validate_once_when_parsed(given: dict, message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        options(**given)
    assert message in capsys.readouterr().err


def test_a_grid_the_hypotheses_cannot_use_is_a_session_error(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('[grid]\nfc_units = [64]\n')
    with pytest.raises(SessionError, match=r"H4 needs two or more fc_units"):
        parse(options(grid=tmp_path / "one.toml"))
    (tmp_path / "bad.toml").write_text("[[record]\n")
    with pytest.raises(SessionError, match=r"--expect-verdicts: .*cannot read recorded verdicts"):
        parse(options(expect_verdicts=tmp_path / "bad.toml"))


def test_a_record_file_that_cannot_be_written_is_refused_before_training(
        tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[record]\n")
    with pytest.raises(SessionError, match=r"--record-verdicts: .*cannot read recorded verdicts"):
        parse(options(record_verdicts=tmp_path / "bad.toml"))
    with pytest.raises(SessionError, match=r"--record-verdicts .*missing/r.toml: cannot write"):
        parse(options(record_verdicts=tmp_path / "missing" / "r.toml"))
    new = parse(options(record_verdicts=tmp_path / "new.toml"))
    assert new.record_verdicts == str(tmp_path / "new.toml")


def test_defaults_live_in_the_options_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser that lacks an option (the command line's) gets the table's default, and every
    environment fallback is applied once, here."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("NORMCHECK_DATA", "/some/data")
    bare = argparse.Namespace(grid=None, seeds=None)
    settings = parse(bare)
    assert (settings.inconclusive, settings.retrain, settings.ray) == ("fail", False, None)
    assert settings.data_dir == "/some/data" and settings.family.names == FAMILY.names
    ray = parse(argparse.Namespace(grid=None, seeds=None, engine="ray", mlflow_uri="http://h"))
    assert ray.ray.address == "127.0.0.1:1"


def test_verdicts_are_decided_once_per_session(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    evaluate = Family.evaluate
    monkeypatch.setattr(Family, "evaluate",
                        lambda self, table: calls.append(1) or evaluate(self, table))
    table = results_table(results())
    settings = parse(options(grid="quick"))
    controller, worker = (FixedPlan(settings.grid, settings.family, tmp_path, None)
                          for _ in range(2))  # one session's folder, two processes
    decided = worker.verdicts(table)
    assert controller.verdicts() == decided  # read back, not decided again
    assert len(calls) == 1 and [v.name for v in decided] == ["H1", "H2", "H3", "H4", "H5",
                                                          "E1", "E2", "E3"]


def test_a_study_run_the_store_cannot_take_is_said_and_the_reports_stay(
        tmp_path: Path) -> None:
    """The server gone at the end: the session says so, fails, and keeps its local reports."""
    from normcheck.session import StudySession
    from normcheck.tracking import Tracker

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = parse(options(grid="quick", mlflow_uri=uri, report_dir=tmp_path / "out"))
    session = StudySession(settings, tracker=Tracker(uri, "0"))
    session.decide_and_report(results(), [], {}, "f917392d4bb492e4", "test")
    (error,) = session.outcome.errors
    assert error.startswith(f"STUDY RUN NOT WRITTEN to MLflow {uri}: ") and "reached" in error
    assert (tmp_path / "out" / "report.md").stat().st_size > 0
