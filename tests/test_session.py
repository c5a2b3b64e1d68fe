"""The session object the plugin and the command line share: options, verdicts decided once."""

import argparse
from pathlib import Path

import pytest
from test_report import results

from normcheck import hypotheses, session
from normcheck.options import OPTIONS, REPORT_OPTIONS, SESSION_OPTIONS, add_options
from normcheck.report import results_table
from normcheck.session import SessionError, StudySession


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
    assert set(REPORT_OPTIONS) <= set(SESSION_OPTIONS)


@pytest.mark.parametrize("given, message", [
    ({"seeds": "0"}, "argument --seeds: '0' is not an integer >= 1"),
    ({"base_seed": "-1"}, "argument --base-seed: '-1' is not an integer >= 0"),
    ({"grid": "fast"}, "argument --grid: unknown grid 'fast'"),
])
def test_option_types_validate_once_when_parsed(given: dict, message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        options(**given)
    assert message in capsys.readouterr().err


def test_a_grid_the_hypotheses_cannot_use_is_a_session_error(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('[grid]\nfc_units = [64]\n')
    with pytest.raises(SessionError, match=r"H4 needs two or more fc_units"):
        StudySession.from_options(options(grid=tmp_path / "one.toml"))
    (tmp_path / "bad.toml").write_text("[[record]\n")
    with pytest.raises(SessionError, match=r"--expect-verdicts: .*cannot read recorded verdicts"):
        StudySession.from_options(options(expect_verdicts=tmp_path / "bad.toml"))


def test_a_record_file_that_cannot_be_written_is_refused_before_training(
        tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[record]\n")
    with pytest.raises(SessionError, match=r"--record-verdicts: .*cannot read recorded verdicts"):
        StudySession.from_options(options(record_verdicts=tmp_path / "bad.toml"))
    with pytest.raises(SessionError, match=r"--record-verdicts .*missing/r.toml: cannot write"):
        StudySession.from_options(options(record_verdicts=tmp_path / "missing" / "r.toml"))
    new = StudySession.from_options(options(record_verdicts=tmp_path / "new.toml"))
    assert new.record_verdicts == str(tmp_path / "new.toml")


def test_verdicts_are_decided_once_per_session(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    evaluate = hypotheses.evaluate
    monkeypatch.setattr(session.hypotheses, "evaluate",
                        lambda table: calls.append(1) or evaluate(table))
    table = results_table(results())
    controller, worker = (StudySession.from_options(options(grid="quick")) for _ in range(2))
    controller.results_dir = worker.results_dir = tmp_path  # one session, two processes
    decided = worker.verdicts(table)
    assert controller.verdicts() == decided  # read back, not decided again
    assert len(calls) == 1 and [v.name for v in decided] == ["H1", "H2", "H3", "H4", "H5"]
