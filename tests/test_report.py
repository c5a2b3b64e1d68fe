"""metrics.csv columns and the heatmaps."""

from pathlib import Path

import pandas as pd

from normcheck.config import TrainConfig
from normcheck.report import COLUMNS, format_table, results_table, write_reports
from normcheck.train import EpochMetrics, RunResult


def fake_result(lr: float, fc: int, norm: str, acc: float) -> RunResult:
    """A recorded result, as the results store would hold it."""
    history = [EpochMetrics(1, 1.0, acc - 0.1, 1.0, acc - 0.05), EpochMetrics(2, 0.9, acc, 0.9, acc)]
    return RunResult(TrainConfig(lr=lr, fc_units=fc, norm=norm), history, test_acc=acc,
                     max_grad_norm=3.0, train_seconds=1.5, n_val=480, num_classes=3,
                     run_id=f"run-{lr}-{fc}-{norm}")


def results() -> list[RunResult]:
    return [fake_result(lr, fc, norm, 0.5 + 0.1 * (norm == "batchnorm") + fc / 1000)
            for lr in (0.001, 0.01) for fc in (32, 64) for norm in ("batchnorm", "none")]


def test_metrics_csv_has_one_row_per_configuration(tmp_path: Path) -> None:
    written = write_reports(results(), tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert list(csv.columns) == COLUMNS and len(csv) == 8
    assert list(csv["lr"]) == [0.01] * 4 + [0.001] * 4  # high lr first
    assert list(csv["norm"][:2]) == ["none", "batchnorm"]
    row = csv[(csv.lr == 0.01) & (csv.fc_units == 64) & (csv.norm == "batchnorm")].iloc[0]
    assert row.best_val_acc == 0.5 + 0.1 + 0.064 and row.epochs_run == 2
    assert row.mlflow_run_id == "run-0.01-64-batchnorm" and not row.diverged
    names = {p.name for p in written}
    assert names == {"metrics.csv", "heatmap_none.png", "heatmap_batchnorm.png",
                     "heatmap_batchnorm_minus_none.png"}
    for path in written:
        assert path.stat().st_size > 1000
    assert (tmp_path / "out" / "heatmap_none.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_terminal_table_shows_every_configuration() -> None:
    text = format_table(results_table(results()))
    assert len(text.splitlines()) == 9 and "batchnorm" in text and "0.664" in text
