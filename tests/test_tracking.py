"""MLflow tracking: what a run records, and concurrent processes on one SQLite store."""

import multiprocessing
from pathlib import Path

import pytest

from normcheck.tracking import Tracker, TrackingError


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_run_records_params_metrics_and_tags(tmp_path: Path) -> None:
    tracker = Tracker.open(sqlite_uri(tmp_path / "mlflow.db"), "exp")
    run_id = tracker.start_run("lr=0.01-fc=8-norm=none", {"lr": 0.01, "fc_units": 8},
                               {"normcheck.config_hash": "abc"})
    for epoch in (1, 2):
        tracker.log_metrics(run_id, {"val_acc": 0.5 + epoch / 10}, step=epoch)
    tracker.finish(run_id, {"best_val_acc": 0.7}, {"normcheck.diverged": "false"})

    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "lr=0.01-fc=8-norm=none"
    assert run.data.params == {"lr": "0.01", "fc_units": "8"}
    assert run.data.metrics["best_val_acc"] == 0.7
    assert run.data.tags["normcheck.config_hash"] == "abc"
    history = tracker.client.get_metric_history(run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.7)]


def test_open_reuses_the_experiment(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "mlflow.db")
    assert Tracker.open(uri, "exp").experiment_id == Tracker.open(uri, "exp").experiment_id


def test_model_artifact_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts of an SQLite store beside it
    tracker = Tracker.open(sqlite_uri(tmp_path / "mlflow.db"), "exp")
    run_id = tracker.start_run("r", {}, {})
    tracker.finish(run_id, {"x": 1.0}, {}, model=torch.nn.Linear(2, 3))
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracker.uri)
    loaded = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    assert loaded.weight.shape == (3, 2)
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_unusable_store_names_its_uri(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    uri = sqlite_uri(blocker / "sub" / "mlflow.db")
    with pytest.raises(TrackingError, match=rf"{uri}"):
        Tracker.open(uri, "exp")


def _log_runs(uri: str, experiment_id: str, worker: int, count: int) -> None:
    tracker = Tracker(uri, experiment_id)
    for i in range(count):
        run_id = tracker.start_run(f"w{worker}-{i}", {"worker": worker, "i": i}, {})
        for step in range(3):
            tracker.log_metrics(run_id, {"val_acc": step / 10}, step=step)
        tracker.finish(run_id, {"best_val_acc": 0.2}, {})


@pytest.mark.integration  # several processes, each importing MLflow
def test_concurrent_processes_lose_no_run(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "mlflow.db")
    experiment_id = Tracker.open(uri, "exp").experiment_id
    workers, per_worker = 4, 8
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_log_runs, args=(uri, experiment_id, w, per_worker))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * workers
    runs = Tracker(uri, experiment_id).runs()
    assert len(runs) == workers * per_worker
    assert {r.info.run_name for r in runs} == {f"w{w}-{i}" for w in range(workers)
                                               for i in range(per_worker)}
    assert all(r.info.status == "FINISHED" and r.data.metrics["best_val_acc"] == 0.2
               for r in runs)
