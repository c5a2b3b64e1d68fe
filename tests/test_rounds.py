"""``--seeds auto``: the suite runs replicates in rounds, skipping the rounds a decided study no
longer needs, reports each hypothesis's path, and resumes from the store."""

import re
import subprocess
import sys

pytest_plugins = ["pytester"]


def test_rounds_run_until_decided_then_resume_from_the_store(suite) -> None:
    suite.with_empty_store()
    args = ("test_grid.py", "test_hypotheses.py", "--seeds", "auto", "--round", "3",
            "--max-seeds", "6", "-n", "2", "--inconclusive", "warn", "-rs")
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
        assert "not needed: every hypothesis was decided after 3 replicates" in out
    assert f"runs: reused 0, trained {8 * stopped}" in out
    report = (suite.path / "out" / "report.md").read_text()
    assert "## Rounds of replicates" in report and "pocock spending function" in report
    assert "up to 6 replicates in rounds" in report
    again = suite(*args).stdout.str()
    assert f"runs: reused {8 * stopped}, trained 0" in again
    assert rounds.group(0) in again  # the same looks, the same decisions
    rebuilt = subprocess.run(
        [sys.executable, "-m", "normcheck", "report", "--grid", "tiny.toml", "--seeds", "auto",
         "--round", "3", "--max-seeds", "6", "--mlflow-uri", suite.uri, "--report-dir",
         "rebuilt"], cwd=suite.path, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    section = report.split("## Rounds of replicates")[1].split("## Setup")[0]
    assert section in (suite.path / "rebuilt" / "report.md").read_text()
