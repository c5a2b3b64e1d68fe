"""Many processes on one embedded (SQLite) MLflow store: nothing lost, nothing locked, no race."""

import re

import pandas as pd

pytest_plugins = ["pytester"]

STRESS_GRID = """
extends = "quick"
description = "many tiny runs"
[grid]
lr = [0.01, 0.003, 0.001]
fc_units = [4, 8, 16]
[train]
epochs = 1
base_channels = 2
[replicates]
seeds = 3
"""
STRESS_RUNS = 3 * 3 * 2 * 3
RUN_METRICS = {"best_val_acc", "best_epoch", "final_val_acc", "final_val_loss", "test_acc",
               "train_loss", "train_acc", "val_loss", "val_acc", "diverged", "unstable",
               "max_grad_norm", "beta_smoothness", "loss_range", "grad_change", "train_seconds"}


def test_four_workers_many_runs_on_a_brand_new_store(suite) -> None:
    (suite.path / "stress.toml").write_text(STRESS_GRID)
    assert not (suite.path / "mlflow.db").exists()
    result = suite("--grid", "stress.toml", "-n", "4", "-k", "test_configuration")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    assert "database is locked" not in output.lower()
    assert f"runs: reused 0, trained {STRESS_RUNS}" in output
    runs = suite.runs()
    assert len(runs) == STRESS_RUNS
    assert len({r["tags"]["normcheck.config_hash"] for r in runs}) == STRESS_RUNS
    for run in runs:
        assert run["status"] == "FINISHED", run["name"]
        assert RUN_METRICS <= set(run["metrics"]), (run["name"], RUN_METRICS - set(run["metrics"]))
    assert len(pd.read_csv(suite.path / "out" / "metrics.csv")) == STRESS_RUNS


def test_two_sessions_on_one_store_share_the_work(suite) -> None:
    sessions = [suite.start("-n", "0", "-k", "test_configuration", "--report-dir", name)
                for name in ("a", "b")]  # at once, on a store neither has created yet
    outputs = [s.communicate(timeout=600)[0] for s in sessions]
    for session, output in zip(sessions, outputs, strict=True):
        assert session.returncode == 0, output
        assert "database is locked" not in output.lower()
    counts = [tuple(map(int, re.search(r"runs: reused (\d+), trained (\d+)", out).groups()))
              for out in outputs]
    assert sum(trained for _, trained in counts) == 8  # each configuration trained once
    assert all(reused + trained == 8 for reused, trained in counts)
    runs = suite.runs()
    assert len(runs) == 8 and all(r["status"] == "FINISHED" for r in runs)
    a, b = (pd.read_csv(suite.path / name / "metrics.csv") for name in ("a", "b"))
    pd.testing.assert_frame_equal(a.drop(columns="train_seconds"),
                                  b.drop(columns="train_seconds"))
