"""``python -m normcheck report``: the reports rebuilt from the MLflow store alone."""

from pathlib import Path

import pandas as pd
import pytest
from helpers import EXPERIMENTS, EngineContract

from normcheck.__main__ import main
from normcheck.grid import load_grid
from normcheck.local import LocalEngine
from normcheck.results import ResultsFolder
from normcheck.tables import results_table


@pytest.fixture
def trained_store(tmp_path: Path, seed_batches: Path) -> tuple[str, ResultsFolder]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results, splits, tracker, claims = EngineContract.parts(tmp_path, seed_batches, uri,
                                                            "normcheck")
    engine = LocalEngine(results, splits, tracker, claims)
    (tmp_path / "tiny.toml").write_text('extends = "quick"\n[grid]\nfc_units = [4, 8]\n'
                                        '[train]\nepochs = 1\nbase_channels = 2\n'
                                        '[replicates]\nseeds = 3\n')
    for config in load_grid(str(tmp_path / "tiny.toml")).configs():
        engine.run(config)
    # a killed run stays RUNNING: it must never be taken for a finished one
    tracker.start_run("lr=0.01-fc=8-norm=none-seed=42", {"lr": 0.01}, {
        "normcheck.config_hash": "killed"})
    return uri, results


def test_report_rebuilt_from_the_store_matches_the_session(trained_store, tmp_path: Path,
                                                           capsys) -> None:
    uri, study = trained_store
    assert main(["report", "--mlflow-uri", uri, "--report-dir", str(tmp_path / "rebuilt"),
                 "--experiments", str(EXPERIMENTS)]) == 0
    rebuilt = pd.read_csv(tmp_path / "rebuilt" / "metrics.csv")
    original = results_table(r for r, _ in study.outcomes())
    assert len(rebuilt) == 24
    pd.testing.assert_frame_equal(rebuilt.drop(columns=["device"]),
                                  original.drop(columns=["device"]), check_dtype=False,
                                  rtol=1e-6)
    out = capsys.readouterr().out
    assert out.startswith("hypothesis  verdict")
    for name in ("H1", "H2", "H3", "H4", "H5"):
        assert f"\n{name}  " in out
    assert (tmp_path / "rebuilt" / "report.md").read_text().count("**") >= 5


def test_report_on_an_empty_experiment_says_so(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["report", "--mlflow-uri", uri, "--experiment", "empty",
                 "--report-dir", str(tmp_path / "out")]) == 1
    assert "no finished normcheck runs in experiment 'empty'" in capsys.readouterr().err
