"""MLflow tracking: one run per configuration, safe for many processes on one SQLite store.

SQLite allows one writer at a time and MLflow's schema creation is not safe to race, so every
call on an embedded ``sqlite:`` store goes through an inter-process file lock beside the
database. Server and other database URIs need no lock.
"""

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

if TYPE_CHECKING:
    from normcheck.train import RunResult

DEFAULT_EXPERIMENT = "normcheck"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names its URI."""


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an SQLite file ``mlflow.db`` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """The inter-process lock beside an SQLite store's file; a no-op for other stores."""
    db = _sqlite_path(uri)
    return FileLock(f"{db}.lock") if db else contextlib.nullcontext()


class Tracker:
    """Logs runs into one experiment of one tracking store."""

    def __init__(self, uri: str, experiment_id: str) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.experiment_id = experiment_id
        self.client = MlflowClient(tracking_uri=uri)
        self._lock = _store_lock(uri)

    def locked(self) -> contextlib.AbstractContextManager:
        """The store's write lock (a no-op for servers), to hold with ``with``."""
        return self._lock

    @classmethod
    def open(cls, uri: str, experiment_name: str = DEFAULT_EXPERIMENT) -> "Tracker":
        """Create the store and the experiment if needed. Call once, before workers start."""
        from mlflow import MlflowClient

        db = _sqlite_path(uri)
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingError(f"{uri}: cannot create the store's folder ({exc})") from exc
        try:
            with _store_lock(uri):
                client = MlflowClient(tracking_uri=uri)
                experiment = client.get_experiment_by_name(experiment_name)
                experiment_id = (experiment.experiment_id if experiment
                                 else client.create_experiment(experiment_name))
        except Exception as exc:
            raise TrackingError(f"MLflow tracking store {uri} cannot be used: {exc}") from exc
        return cls(uri, experiment_id)

    def start_run(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Create a RUNNING run with its parameters and tags; return its id."""
        from mlflow.entities import Param

        with self.locked():
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
            self.client.log_batch(run.info.run_id,
                                  params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        with self.locked():
            self.client.log_batch(run_id, metrics=batch)

    def finish(self, run_id: str, metrics: dict[str, float], tags: dict[str, str],
               model: Any = None) -> None:
        """Log final metrics and tags (and optionally the model), then mark the run FINISHED."""
        from mlflow.entities import RunTag

        self.log_metrics(run_id, metrics)
        with self.locked():
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            if model is not None:
                self._log_model(run_id, model)
            self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str) -> None:
        with self.locked():
            self.client.set_terminated(run_id, "FAILED")

    def _log_model(self, run_id: str, model: Any) -> None:
        import mlflow
        import mlflow.pytorch

        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=run_id, experiment_id=self.experiment_id):
            # MLflow 3 needs an explicit format (or an input example) for PyTorch models.
            mlflow.pytorch.log_model(model.cpu(), name="model", serialization_format="pickle")

    def runs(self) -> list[Any]:
        """Every run of the experiment (for tests and reports)."""
        with self.locked():
            return self.client.search_runs([self.experiment_id], max_results=50000)



HISTORY_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "loss_range",
                   "grad_change", "beta_smoothness")


def load_results(tracker: Tracker, runs: list[Any] | None = None) -> list["RunResult"]:
    """The experiment's FINISHED runs as results, the newest per configuration hash.

    RUNNING (killed) and FAILED runs are never taken for finished ones. ``runs``: the
    experiment's runs, if the caller already fetched them.
    """
    from normcheck.config import TrainConfig
    from normcheck.train import EpochMetrics, RunResult

    runs = [r for r in (tracker.runs() if runs is None else runs)
            if r.info.status == "FINISHED" and "normcheck.config_hash" in r.data.tags]
    newest: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        newest[run.data.tags["normcheck.config_hash"]] = run
    results = []
    for run in newest.values():
        p, m = run.data.params, run.data.metrics
        config = TrainConfig(**{f: kind(p[f]) for f, kind in TrainConfig.__annotations__.items()
                                if f in p})
        with tracker.locked():
            series = {k: {x.step: x.value for x in tracker.client.get_metric_history(
                run.info.run_id, k)} for k in HISTORY_METRICS}
        history = [EpochMetrics(step, *(series[k].get(step, float("nan"))
                                        for k in HISTORY_METRICS))
                   for step in sorted(series["val_acc"])]
        results.append(RunResult(
            config, history, test_acc=m.get("test_acc", float("nan")),
            initial_train_loss=m.get("initial_train_loss", float("nan")),
            diverged=bool(m.get("diverged", 0)), max_grad_norm=m.get("max_grad_norm", 0.0),
            train_seconds=m.get("train_seconds", 0.0), device=run.data.tags.get(
                "normcheck.device", ""), n_val=int(p.get("n_val", 0)),
            num_classes=len(p.get("classes", "").split(",")), run_id=run.info.run_id))
    return results
