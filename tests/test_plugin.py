"""The pytest plugin, run the way users run it: in a subprocess, under xdist, on a tiny grid."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["pytester"]

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
TINY_GRID = """
extends = "quick"
description = "tiny synthetic grid"
[grid]
fc_units = [8]
[train]
epochs = 1
base_channels = 2
[replicates]
seeds = 2
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, seed_batches: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the experiment suite with a tiny grid; returns a function that runs it."""
    for name in ("conftest.py", "test_grid.py", "test_hypotheses.py"):
        (pytester.path / name).write_text((EXPERIMENTS / name).read_text())
    (pytester.path / "tiny.toml").write_text(TINY_GRID)
    monkeypatch.setenv("NORMCHECK_CACHE", str(pytester.path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{pytester.path / 'mlflow.db'}"

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "--grid", "tiny.toml", "--data-dir", str(seed_batches), "--mlflow-uri", uri,
            "--report-dir", "out", "-p", "no:cacheprovider", *args, timeout=600)

    run.uri = uri
    return run


READ_RUNS = """
import json, sys
from normcheck.tracking import Tracker
runs = Tracker.open(sys.argv[1], "normcheck").runs()
print(json.dumps([{"name": r.info.run_name, "status": r.info.status, "params": r.data.params,
                   "tags": r.data.tags, "metrics": r.data.metrics} for r in runs]))
"""


def mlflow_runs(uri: str) -> list[dict]:
    """The experiment's runs, read in a fresh process (pytester resets imported modules, which
    leaves MLflow's SQLAlchemy half-imported if it is used in the test process itself)."""
    out = subprocess.run([sys.executable, "-c", READ_RUNS, uri], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("dist", ["load", "each"])
def test_xdist_trains_each_configuration_once(suite, pytester: pytest.Pytester,
                                              dist: str) -> None:
    result = suite("-n", "2", "--dist", dist)
    outcomes = result.parseoutcomes()
    per_worker = 2 if dist == "each" else 1
    assert outcomes.get("passed", 0) >= 8 * per_worker, result.stdout.str()
    runs = mlflow_runs(suite.uri)
    hashes = [r["tags"]["normcheck.config_hash"] for r in runs]
    assert len(runs) == 8 and len(set(hashes)) == 8  # no configuration trained twice
    assert all(r["status"] == "FINISHED" for r in runs)
    metrics = pd.read_csv(pytester.path / "out" / "metrics.csv")
    assert sorted(metrics["case_id"]) == sorted(r["name"] for r in runs)
    for name in ("heatmap_none.png", "heatmap_batchnorm.png", "learning_curves.png",
                 "summary.csv", "report.md"):
        assert (pytester.path / "out" / name).stat().st_size > 0
    text = result.stdout.str()
    assert text.count("= normcheck =") == 1  # one summary, from the controller
    assert "hypothesis  verdict       estimate  95% CI  margin  statistic" in text
    for name in ("H1", "H2", "H3", "H4", "H5"):  # 2 seeds < 3 replicates: inconclusive
        assert f"{name}          inconclusive" in text
        assert f"{name} INCONCLUSIVE: " in text  # the failure message, with its reason
    assert "needs at least 3 replicates" in text
    assert "view it with: mlflow ui --backend-store-uri" in text


def test_run_ids_and_parameters_reach_mlflow(suite) -> None:
    result = suite("-n", "0", "-k", "test_configuration and 0.01-fc", "--seeds", "1",
                   "--log-model")
    result.assert_outcomes(passed=2)
    run = next(r for r in mlflow_runs(suite.uri)
               if r["name"] == "lr=0.01-fc=8-norm=batchnorm-seed=42")
    params = run["params"]
    assert (params["lr"], params["fc_units"], params["norm"], params["epochs"]) == \
        ("0.01", "8", "batchnorm", "1")
    assert params["protocol"] == "seed" and params["n_val"] == "480"
    tags = run["tags"]
    assert {"normcheck.config_hash", "normcheck.data_fingerprint", "normcheck.version",
            "normcheck.device"} <= set(tags)
    assert {"best_val_acc", "test_acc", "val_acc", "max_grad_norm", "diverged", "unstable",
            "beta_smoothness", "loss_range", "grad_change", "volatility"} <= set(run["metrics"])
    assert "hypotheses not evaluated: 2 runs of the grid have no result" in result.stdout.str()


@pytest.mark.parametrize("args, message", [
    (("--grid", "fast"), "--grid: unknown grid 'fast'"),
    (("--grid", "one_lr.toml"), "H2 needs lr=0.01 and a lower lr"),
    (("--seeds", "0"), "--seeds 0: use an integer >= 1"),
    (("--expect-verdicts", "nowhere.toml"), "--expect-verdicts: nowhere.toml: cannot read"),
    (("--data-dir", "/no/such/folder"), "data: /no/such/folder: data folder does not exist"),
])
def test_bad_input_is_a_usage_error_before_training(suite, pytester: pytest.Pytester,
                                                    args: tuple, message: str) -> None:
    (pytester.path / "one_lr.toml").write_text('extends = "quick"\n[grid]\nlr = [0.01]\n')
    result = suite(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert message in result.stderr.str()
    assert not (pytester.path / "out" / "metrics.csv").exists()
