"""``--seeds auto``: the suite runs replicates in rounds, skipping the rounds a decided (or
futile) study no longer needs, reports each hypothesis's path, resumes from the store, and
refuses to resume or rebuild the study under another design."""

import re
import subprocess
import sys

pytest_plugins = ["pytester"]

DESIGN = ("--seeds", "auto", "--first", "3", "--round", "3", "--max-seeds", "6")


def test_rounds_run_until_done_then_resume_from_the_store(suite) -> None:
    suite.with_empty_store()
    args = ("test_grid.py", "test_hypotheses.py", *DESIGN, "-n", "2", "--inconclusive", "warn",
            "-rs")
    first = suite(*args)
    out = first.stdout.str()
    rounds = re.search(r"rounds \(--seeds auto\): (.*); stopped after (\d+) replicates", out)
    assert rounds, out
    stopped = int(rounds.group(2))
    assert stopped in (3, 6)
    outcomes = first.parseoutcomes()
    # 8 configurations per replicate: those of the replicates used ran, the rest were skipped
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 8 * stopped + 5
    assert outcomes.get("skipped", 0) == 8 * (6 - stopped)
    if stopped == 3:
        assert re.search(r"not needed: every hypothesis (was decided|left was futile) after 3 "
                         "replicates", out)
    assert f"runs: reused 0, trained {8 * stopped}" in out
    report = (suite.path / "out" / "report.md").read_text()
    assert "## Rounds of replicates" in report and "pocock spending function" in report
    assert "up to 6 replicates in rounds" in report and "replicates from seed 100000" in report
    again = suite(*args).stdout.str()
    assert f"runs: reused {8 * stopped}, trained 0" in again
    assert rounds.group(0) in again  # the same looks, the same decisions, from the store
    rebuilt = rebuild(suite, *DESIGN)
    assert rebuilt.returncode == 0, rebuilt.stderr
    section = report.split("## Rounds of replicates")[1].split("## Sensitivity")[0]
    assert section in (suite.path / "rebuilt" / "report.md").read_text()


def rebuild(suite, *args: str) -> subprocess.CompletedProcess:
    """The report rebuilt from the store, with the hypotheses the sessions collected (the
    study's looks were taken with them: another family's would be refused)."""
    return subprocess.run(
        [sys.executable, "-m", "normcheck", "report", "--grid", "tiny.toml", *args,
         "--mlflow-uri", suite.uri, "--report-dir", "rebuilt", "--experiments",
         "test_hypotheses.py"],
        cwd=suite.path,
        capture_output=True, text=True)


def test_a_study_is_not_resumed_or_rebuilt_under_another_design(suite) -> None:
    """One changed option, in whole sessions (tests/test_sequential.py refuses each option's
    change of a stored record)."""
    suite.with_empty_store()
    started = suite("test_grid.py", "test_hypotheses.py", *DESIGN, "-n", "0",
                    "--inconclusive", "warn")
    assert "rounds (--seeds auto)" in started.stdout.str(), started.stdout.str()
    design = list(DESIGN)
    design[design.index("--round") + 1] = "2"
    resumed = suite("test_grid.py", "test_hypotheses.py", *design, "-n", "0")
    err = resumed.stderr.str()
    assert resumed.ret == 4 and "its looks were taken under design" in err, err
    assert "register an amendment: a new version of normcheck/hypotheses.toml" in err
    assert "runs: reused" not in resumed.stdout.str()  # refused before anything trains
    refused = rebuild(suite, *design)
    assert refused.returncode != 0 and "its looks were taken under design" in refused.stderr
    fresh = suite("test_grid.py", "test_hypotheses.py", "--inconclusive", "warn", "--seeds",
                  "auto", "--first", "3", "--round", "3", "--max-seeds", "3", "--base-seed",
                  "200000", "-n", "0")  # fresh replicates: a new study, under any design
    assert "rounds (--seeds auto)" in fresh.stdout.str(), fresh.stdout.str()
