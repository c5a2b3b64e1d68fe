"""The pytest plugin, run the way users run it: in a subprocess, under xdist, on a tiny grid."""

import re
import tomllib

import pandas as pd
import pytest

pytest_plugins = ["pytester"]


def test_xdist_trains_each_configuration_once(suite, pytester: pytest.Pytester) -> None:
    """Under ``--dist each`` every worker runs every case, so both ask for every
    configuration; each is trained once. (The default ``--dist load`` runs in the rounds,
    hypothesis and cluster sessions.)"""
    suite.with_empty_store()
    result = suite("-n", "2", "--dist", "each")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 16, result.stdout.str()
    runs = suite.runs()
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
    assert re.search(r"hypothesis +verdict +estimate +interval +level +holds if +adjusted p +"
                     r"contrast", text)
    for name in ("H1", "H2", "H3", "H4", "H5"):  # 1 replicate: a sign test cannot decide
        assert f"{name}          inconclusive" in text
        assert f"{name} INCONCLUSIVE: " in text  # the failure message, with its reason
    assert "deciding needs at least 8 replicates" in text
    assert "view it with: mlflow ui --backend-store-uri" in text


def test_run_ids_and_parameters_reach_mlflow(suite) -> None:
    suite.with_empty_store()
    result = suite("-n", "0", "-k", "test_configuration and 0.01-fc and 8-norm", "--log-model")
    result.assert_outcomes(passed=2)
    run = next(r for r in suite.runs()
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
    assert "hypotheses not evaluated: 6 runs of the grid have no result" in result.stdout.str()


def the_study(suite) -> dict:
    """The one study run of the session's grid, with every training run under it."""
    (study,) = suite.studies()
    runs = suite.runs()
    assert study["status"] == "FINISHED" and study["tags"]["normcheck.grid"] == "tiny.toml"
    for name in ("H1", "H2", "H3", "H4", "H5", "E1", "E2", "E3"):
        assert study["tags"][f"verdict.{name}"] == "inconclusive"
        assert {f"{name}.level", f"{name}.p_adjusted"} <= set(study["metrics"])
    # one replicate: unbounded sides and H2's share of no replicates (NaN) are left out
    assert study["metrics"]["H1.estimate"] > -1 and "H1.low" not in study["metrics"]
    assert "verdict.E4" not in study["tags"]  # not asked on two widths
    assert study["tags"]["normcheck.registration_version"] == "7"
    assert {"normcheck.version", "normcheck.commit", "normcheck.family_control"} \
        <= set(study["tags"])
    assert {"report.md", "metrics.csv", "summary.csv", "hypotheses.toml",
            "figures/heatmap_none.png"} <= set(study["artifacts"])
    key = study["tags"]["normcheck.study"]
    assert len(runs) == 8 and all(r["tags"]["mlflow.parentRunId"] == study["id"] and
                                  r["tags"][f"normcheck.study.{key}"] == study["id"]
                                  for r in runs)
    fingerprint = study["tags"]["normcheck.data_fingerprint"]
    assert all(r["inputs"] == [fingerprint] for r in runs)  # the Dataset column
    return study


def test_record_verdicts_then_check_them(suite, pytester: pytest.Pytester) -> None:
    """Adopting the CI check on one's own data is one command: record, then expect. Each
    session leaves the study in MLflow: one run, updated and not duplicated by the second."""
    suite.with_empty_store()
    result = suite("-n", "0", "--inconclusive", "warn", "--record-verdicts", "recorded.toml")
    assert result.ret == 0, result.stdout.str()
    first = the_study(suite)
    assert "the study in MLflow: run " in result.stdout.str()
    assert "added the record of grid 'tiny.toml' on data " in result.stdout.str()
    (record,) = tomllib.loads((pytester.path / "recorded.toml").read_text())["record"]
    assert record["grid"] == "tiny.toml" and len(record["data_fingerprint"]) == 16
    assert [record[f"H{i}"] for i in range(1, 6)] == ["inconclusive"] * 5
    assert "1 replicates from seed 42" in record["recorded"]
    again = suite("-n", "0", "--expect-verdicts", "recorded.toml")
    # every run reused, every verdict as recorded: H1-H5 and E1-E3 (E4 needs three widths)
    again.assert_outcomes(passed=8, xfailed=8, skipped=1)
    assert "runs: reused 8, trained 0" in again.stdout.str()
    study = the_study(suite)
    assert study["id"] == first["id"]
    assert all(len(values) == 1 for values in study["history"].values())  # nothing twice
