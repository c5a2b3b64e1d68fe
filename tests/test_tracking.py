"""MLflow tracking: what a run records, concurrent processes on one SQLite store, and a store
that stops answering."""

import json
import multiprocessing
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from normcheck.records import EpochMetrics, RunResult, TrainConfig
from normcheck.tracking import HISTORY_TAG, StoreLost, Tracker, TrackingError, _history, finish_tags


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


class Unavailable(BaseHTTPRequestHandler):
    """A tracking server whose database is down: every request answers 503."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(503)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def unavailable_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("answer", ["refused", "503"])
def test_a_store_that_stops_answering_is_lost_once(answer: str, unavailable_server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """After MLflow's retries (none here) a store that refuses connections, or answers 5xx as
    a server without its database does, is lost: the error names it, and every later call of
    the process fails the same way without asking the store again."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri, server = unavailable_server
    if answer == "refused":
        server.shutdown()
        server.server_close()  # nothing listens on the port now
    tracker = Tracker(uri, "1")
    with pytest.raises(StoreLost, match=f"MLflow tracking store {uri} stopped answering"):
        tracker.start_run("lr=0.01-fc=8-norm=none", {}, {})
    assert tracker.lost is not None
    tracker.client = None  # a call that reached the client now would fail otherwise
    with pytest.raises(StoreLost) as again:
        tracker.log_metrics("any", {"val_acc": 0.5})
    assert str(again.value) == tracker.lost


def test_other_store_errors_are_not_a_lost_store(tmp_path: Path) -> None:
    """An error the store answers (here: no such run) is raised as it is."""
    from mlflow.exceptions import MlflowException

    tracker = Tracker.open(sqlite_uri(tmp_path / "mlflow.db"), "exp")
    with pytest.raises(MlflowException) as error:
        tracker.log_metrics("0" * 32, {"val_acc": 0.5})
    assert not isinstance(error.value, StoreLost) and tracker.lost is None


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


@pytest.mark.parametrize("case", ["tag", "older tag", "too many epochs"])
def test_a_runs_epochs_load_from_its_tag_or_its_metric_history(tmp_path: Path,
                                                                case: str) -> None:
    """The history tag, one from before the shift probe (its metrics NaN), and a run too long
    for one tag (loaded from MLflow's metric history) give the epochs as they were logged."""
    epochs = 60 if case == "too many epochs" else 3

    def value(e: int, k: int) -> float:  # full-length floats, as training gives them
        return 1 / (e + k + 0.3)

    history = tuple(EpochMetrics(e, *(value(e, k) for k in range(11))) for e in
                    range(1, epochs + 1))
    tags = finish_tags(RunResult(TrainConfig(lr=0.01, fc_units=8), history))
    assert (HISTORY_TAG in tags) == (case != "too many epochs")
    if case == "older tag":
        series = json.loads(tags[HISTORY_TAG])
        for key in ("ics_l2", "ics_cosine", "input_mean_shift", "input_var_shift"):
            del series[key]
        tags[HISTORY_TAG] = json.dumps(series)
    tracker = Tracker.open(sqlite_uri(tmp_path / "mlflow.db"), "exp")
    run_id = tracker.start_run("r", {}, {})
    for m in history:
        tracker.log_metrics(run_id, m.metrics(), step=m.epoch)
    tracker.finish(run_id, {}, tags)
    loaded = _history(tracker, tracker.client.get_run(run_id))
    if case == "older tag":
        assert [m.val_acc for m in loaded] == [m.val_acc for m in history]
        assert all(np.isnan(m.ics_cosine) for m in loaded)
    else:
        assert loaded == history
