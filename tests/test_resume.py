"""Nothing lost: a killed or interrupted session resumes where it stopped, reusing what finished."""

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd

pytest_plugins = ["pytester"]

TRAINED_AT = "training lr="  # the live log line once a run is created in MLflow
SAME = ["case_id", "best_val_acc", "final_val_acc", "test_acc", "final_train_loss",
        "beta_smoothness", "unstable"]  # what a resumed report must share with an unbroken one


def stop_during_run(process: subprocess.Popen, run: int, sig: signal.Signals) -> str:
    """Send ``sig`` while the ``run``-th configuration trains; return the output up to the end,
    with the child's signal dispositions when it was told (from /proc) at its foot."""
    lines, seen, told = [], 0, ""
    for line in process.stdout:
        lines.append(line)
        seen += TRAINED_AT in line
        if seen == run:
            told = " ".join(row for row in Path(f"/proc/{process.pid}/status").read_text()
                            .splitlines() if row.startswith(("SigBlk", "SigIgn", "SigCgt")))
            process.send_signal(sig)
            break
    rest, _ = process.communicate(timeout=300)
    output = "".join(lines) + rest
    assert told, f"the session ended before its run {run} started:\n{output}"
    return f"{output}\n[told {sig.name} with {told}]"


def live(*args: str) -> tuple[str, ...]:
    """Options for one process with a live log, so the test sees each run start."""
    return ("-n", "0", "-o", "log_cli=true", "--log-cli-level=INFO", *args)


def by_status(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(run["status"], []).append(run)
    return out


def test_sigkill_then_rerun_trains_exactly_the_missing_runs(suite) -> None:
    suite.with_empty_store()
    output = stop_during_run(suite.start(*live()), 4, signal.SIGKILL)
    assert output.count(TRAINED_AT) == 4, output
    first = by_status(suite.runs())
    assert len(first["FINISHED"]) == 3 and len(first["RUNNING"]) == 1  # the killed one

    result = suite("-n", "0")  # BatchNorm's results depend on the thread layout: keep it
    text = result.stdout.str()
    assert "runs: reused 3, trained 5" in text, text
    assert result.parseoutcomes()["passed"] >= 8
    runs = by_status(suite.runs())
    finished = runs["FINISHED"]
    assert len(finished) == 8  # every configuration once: none trained twice, none lost
    assert len({r["tags"]["normcheck.config_hash"] for r in finished}) == 8
    assert {r["id"] for r in first["FINISHED"]} <= {r["id"] for r in finished}
    (stale,) = runs["FAILED"]  # the killed run, marked, not counted
    assert stale["id"] == first["RUNNING"][0]["id"]
    assert stale["tags"]["normcheck.stale"].startswith("left unfinished by an earlier session")
    assert "RUNNING" not in runs

    resumed = pd.read_csv(suite.path / "out" / "metrics.csv")
    assert sorted(resumed["mlflow_run_id"]) == sorted(r["id"] for r in finished)
    # the same grid in one unbroken session, in a fresh store: the same report
    shutil.copy(suite.store, suite.path / "fresh.db")
    result = suite("-n", "0", "--mlflow-uri", f"sqlite:///{suite.path / 'fresh.db'}",
                   "--report-dir", "fresh")
    assert "runs: reused 0, trained 8" in result.stdout.str()
    fresh = pd.read_csv(suite.path / "fresh" / "metrics.csv")
    pd.testing.assert_frame_equal(resumed[SAME], fresh[SAME])
    verdict_rows = re.findall(r"^\| H\d \|", (suite.path / "out" / "report.md").read_text(),
                              re.MULTILINE)
    assert len(verdict_rows) == 5


def test_ctrl_c_stops_cleanly_and_keeps_what_finished(suite) -> None:
    suite.with_empty_store()
    # three epochs a run, so the session is still training when the signal arrives however
    # far the child's output runs ahead of this process reading it
    (suite.path / "slow.toml").write_text('extends = "tiny.toml"\n[train]\nepochs = 3\n')
    output = stop_during_run(suite.start(*live("--grid", "slow.toml")), 3, signal.SIGINT)
    assert "KeyboardInterrupt" in output, output[-4000:]  # its foot: the child's signal state
    assert "Traceback" not in output.split("KeyboardInterrupt")[0]
    assert "runs: reused 0, trained 2, 6 missing" in output
    runs = by_status(suite.runs())
    print(output)
    assert len(runs["FINISHED"]) == 2
    (interrupted,) = runs["FAILED"]
    assert interrupted["tags"]["normcheck.failed"] == "interrupted"
    kept = pd.read_csv(suite.path / "out" / "metrics.csv")  # the reports of what finished
    assert sorted(kept["mlflow_run_id"]) == sorted(r["id"] for r in runs["FINISHED"])
    assert suite.studies() == []  # a study half-run decides nothing in MLflow

    result = suite("-n", "0", "-v", "--grid", "slow.toml")
    assert "runs: reused 2, trained 6" in result.stdout.str()
    assert result.stdout.str().count("REUSED") == 2  # the case's own output says so
    runs = by_status(suite.runs())
    assert len(runs["FINISHED"]) == 8 and len(runs["FAILED"]) == 1
    assert "normcheck.stale" in runs["FAILED"][0]["tags"]


def test_retrain_on_request(suite) -> None:
    """Reuse is the default (the rerun above reuses what finished); --retrain trains again."""
    suite.with_empty_store()
    suite("-n", "0", "-k", "test_configuration").assert_outcomes(passed=8)
    retrained = suite("-n", "0", "-k", "test_configuration", "--retrain")
    assert "runs: reused 0, trained 8" in retrained.stdout.str()
    runs = suite.runs()
    assert len(runs) == 16 and all(r["status"] == "FINISHED" for r in runs)
