"""MLflow tracking: one run per configuration, safe for many processes on one SQLite store.

SQLite allows one writer at a time and MLflow's schema creation is not safe to race, so every
call on an embedded ``sqlite:`` store goes through an inter-process file lock beside the
database. Server and other database URIs need no lock.
"""

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from filelock import FileLock

from normcheck.probe import SHIFT_METRICS
from normcheck.records import EpochMetrics, RunResult, TrainConfig
from normcheck.uris import redact, redact_text, sqlite_path, unreachable

DEFAULT_EXPERIMENT = "normcheck"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names its URI."""


class StoreLost(TrackingError):
    """The store stopped answering during the session, after MLflow's own retries (a server's
    take minutes: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``)."""


# what a store that cannot be reached raises under MLflow's exception: a request that failed
# after the HTTP client's retries, or a database connection that failed
_UNREACHABLE = (("requests.exceptions", "RequestException"), ("sqlalchemy.exc", "OperationalError"))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from, innermost last."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def _unreachable_store(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the store cannot be reached
    (modules not imported yet cannot have raised: they are not imported here)."""
    kinds = tuple(getattr(sys.modules[module], name) for module, name in _UNREACHABLE
                  if module in sys.modules)
    return any(isinstance(seen, kinds) for seen in _chain(exc))


# how the databases MLflow supports word a broken unique key, through a server (whose error
# carries only the message) or from the database driver itself
_DUPLICATE_KEY = ("duplicate key value", "UNIQUE constraint failed", "Duplicate entry",
                  "UniqueViolation", "IntegrityError")


def _duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, is a broken unique key."""
    return any(words in str(seen) for seen in _chain(exc) for words in _DUPLICATE_KEY)


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an SQLite file ``mlflow.db`` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def check_reachable(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is not there."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    error = unreachable(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    if error is not None:
        raise TrackingError(f"MLflow tracking server {redact(uri)} cannot be reached ({error}); "
                            f"start it, or pass another --mlflow-uri")


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, creating it if needed. Two sessions creating it at once on a
    shared server: one creates it, the other's create fails and it reads the winner's."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """The inter-process lock beside an SQLite store's file; a no-op for other stores."""
    db = sqlite_path(uri)
    return FileLock(f"{db}.lock") if db else contextlib.nullcontext()


@dataclass(frozen=True)
class DataInput:
    """A run's training data as MLflow records a dataset: its digest is the split's
    fingerprint, so runs on the same split share one dataset."""

    name: str  # the classes and protocol, e.g. "cat,dog,horse (seed)"
    digest: str
    source: str  # "kind:path", as the data source describes itself

    def entity(self) -> Any:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        kind, _, where = self.source.partition(":")
        return DatasetInput(Dataset(self.name, self.digest[:36], "local" if kind != "download"
                                    else "url", where or self.source),
                            tags=[InputTag("mlflow.data.context", "training")])


class Tracker:
    """Logs runs into one experiment of one tracking store."""

    def __init__(self, uri: str, experiment_id: str) -> None:
        self.uri = uri
        self.experiment_id = experiment_id
        self._lock = _store_lock(uri)
        self.lost: str | None = None  # why the store stopped answering, once it has

    @cached_property
    def client(self) -> Any:
        """MLflow's client, imported on first use: a process that only reads results that are
        already resolved never pays for importing MLflow."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held around every call to the store: its write lock (a no-op for servers). A store
        that stopped answering raises ``StoreLost`` naming it, and so does every later call
        of this process at once, instead of waiting out MLflow's retries again for each run."""
        if self.lost is not None:
            raise StoreLost(self.lost)
        with self._lock:
            try:
                yield
            except Exception as exc:
                if not _unreachable_store(exc):
                    raise
                cause = redact_text(str(exc), self.uri)
                self.lost = (f"MLflow tracking store {redact(self.uri)} stopped answering: "
                             f"{cause[:400]}{'...' if len(cause) > 400 else ''}")
                raise StoreLost(self.lost) from exc

    @classmethod
    def open(cls, uri: str, experiment_name: str = DEFAULT_EXPERIMENT) -> "Tracker":
        """Create the store and the experiment if needed. Call once, before workers start."""
        from mlflow import MlflowClient

        check_reachable(uri)
        db = sqlite_path(uri)
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingError(f"{uri}: cannot create the store's folder ({exc})") from exc
            if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
                raise TrackingError(f"MLflow store {uri} is read-only: SQLite needs to write "
                                    f"{db} and its folder; pass a writable --mlflow-uri")
        try:
            with _store_lock(uri):
                client = MlflowClient(tracking_uri=uri)
                experiment_id = _experiment_id(client, experiment_name)
        except Exception as exc:
            raise TrackingError(f"MLflow tracking store {redact(uri)} cannot be used: "
                                f"{redact_text(str(exc), uri)}") from None
        return cls(uri, experiment_id)

    def _search(self, config_hash: str, status: str | None = None) -> list[Any]:
        query = f"tags.`normcheck.config_hash` = '{config_hash}'"
        if status:
            query += f" and attributes.status = '{status}'"
        with self.locked():
            return self.client.search_runs([self.experiment_id], query, max_results=50000)

    def finished(self, config_hash: str) -> RunResult | None:
        """The newest FINISHED run with this configuration hash, as a result; None if none."""
        runs = self._search(config_hash, "FINISHED")
        return load_results(self, runs)[0] if runs else None

    def mark_stale(self, config_hash: str, reason: str) -> list[str]:
        """Mark this configuration's unfinished runs stale (RUNNING ones become FAILED).

        Call only while holding the configuration's claim, so no live process owns them.
        """
        from mlflow.entities import RunTag

        stale = [r for r in self._search(config_hash)
                 if r.info.status in ("RUNNING", "FAILED", "SCHEDULED")
                 and "normcheck.stale" not in r.data.tags]
        for run in stale:
            with self.locked():
                self.client.log_batch(run.info.run_id, tags=[RunTag(
                    "normcheck.stale", f"{reason} (was {run.info.status})")])
                if run.info.status != "FAILED":
                    self.client.set_terminated(run.info.run_id, "FAILED")
        return [r.info.run_id for r in stale]

    def start_run(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
                  dataset: "DataInput | None" = None) -> str:
        """Create a RUNNING run with its parameters, tags and the data it trains on (an MLflow
        dataset input, for the UI's Dataset column and filters); return its id."""
        from mlflow.entities import Param

        with self.locked():
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
            self.client.log_batch(run.info.run_id,
                                  params=[Param(k, str(v)) for k, v in params.items()])
            if dataset is not None:
                self._log_input(run.info.run_id, dataset)
        return run.info.run_id

    def _log_input(self, run_id: str, dataset: "DataInput") -> None:
        """Link the run to its dataset. MLflow's database store looks the dataset up and
        inserts it if missing, in one transaction: two processes logging a new dataset at once
        both miss it, and the second insert breaks the unique key. Its transaction is rolled
        back whole, and on a second try the winner's dataset is there to link to."""
        from mlflow.exceptions import MlflowException

        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, datasets=[dataset.entity()])
                return
            except MlflowException as exc:
                if attempt == 2 or not _duplicate_key(exc):
                    raise

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

    def fail(self, run_id: str, reason: str) -> None:
        """Mark a run FAILED, saying why (e.g. interrupted), so it is never taken as finished."""
        from mlflow.entities import RunTag

        with self.locked():
            self.client.log_batch(run_id, tags=[RunTag("normcheck.failed", reason)])
            self.client.set_terminated(run_id, "FAILED")

    def _log_model(self, run_id: str, model: Any) -> None:
        import mlflow
        import mlflow.pytorch

        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=run_id, experiment_id=self.experiment_id):
            # MLflow 3 needs an explicit format (or an input example) for PyTorch models.
            mlflow.pytorch.log_model(model.cpu(), name="model", serialization_format="pickle")

    def record(self, key: str) -> dict | None:
        """A JSON record kept as an experiment tag (a study's design and looks); None if the
        experiment has none under ``key``."""
        import json

        with self.locked():
            value = self.client.get_experiment(self.experiment_id).tags.get(key)
        return None if value is None else json.loads(value)

    def keep_record(self, key: str, record: dict) -> None:
        """Write ``record`` as the experiment tag ``key`` (replacing what was there)."""
        import json

        with self.locked():
            self.client.set_experiment_tag(self.experiment_id, key,
                                           json.dumps(record, separators=(",", ":")))

    def runs(self) -> list[Any]:
        """Every run of the experiment (for tests and reports)."""
        with self.locked():
            return self.client.search_runs([self.experiment_id], max_results=50000)

    def finished_by_hash(self) -> dict[str, Any]:
        """The experiment's FINISHED runs by configuration hash, the newest of each: one query
        answers whether each of a grid's configurations can be reused."""
        with self.locked():
            return newest_finished(self.client.search_runs(
                [self.experiment_id], "attributes.status = 'FINISHED'", max_results=50000))


HISTORY_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "loss_range",
                   "grad_change", "beta_smoothness", *SHIFT_METRICS)
HISTORY_TAG = "normcheck.history"  # every epoch's metrics, so a load needs no query per run
TAG_LIMIT = 8000  # MLflow's longest tag value (mlflow.utils.validation.MAX_TAG_VAL_LENGTH)


# -- the run schema: what a normcheck run holds, written and read here alone ---------------

def run_params(config: TrainConfig, classes: tuple[str, ...], protocol: str, source: str,
               sizes: tuple[int, int, int]) -> dict[str, Any]:
    """A run's parameters: its configuration and the data it trained on."""
    return {**config.as_dict(), "classes": ",".join(classes), "protocol": protocol,
            "source": source, "n_train": sizes[0], "n_val": sizes[1], "n_test": sizes[2]}


def run_tags(config: TrainConfig, key: str, fingerprint: str, device: str,
             node: str | None = None) -> dict[str, str]:
    """A run's tags when it starts: how it is found again (its configuration hash)."""
    from normcheck import __version__

    return {"normcheck.config_hash": key, "normcheck.case_id": config.case_id,
            "normcheck.cell_id": config.cell_id, "normcheck.data_fingerprint": fingerprint,
            "normcheck.version": __version__, "normcheck.device": device,
            **({"normcheck.ray_node": node} if node else {})}


def finish_tags(result: RunResult) -> dict[str, str]:
    """A run's tags when it finishes: whether it diverged, and its history in one tag (left
    out when too long for a tag: a run of many epochs is loaded from its metric history)."""
    history = {k: [getattr(m, k) for m in result.history] for k in HISTORY_METRICS}
    history["epoch"] = [m.epoch for m in result.history]
    kept = json.dumps(history)
    return {"normcheck.diverged": str(result.diverged).lower(),
            **({HISTORY_TAG: kept} if len(kept) <= TAG_LIMIT else {})}


def data_fingerprints(runs: list[Any], run_ids: set[str],
                      split_seed: int | None = None) -> set[str]:
    """The data fingerprints of these runs (``split_seed``: of those on that split only)."""
    return {str(r.data.tags.get("normcheck.data_fingerprint")) for r in runs
            if r.info.run_id in run_ids and
            (split_seed is None or int(r.data.params.get("split_seed", -1)) == split_seed)}


def run_classes(runs: list[Any], run_ids: set[str]) -> set[str]:
    """The classes these runs trained on, as each run recorded them."""
    return {r.data.params["classes"].replace(",", ", ") for r in runs
            if r.info.run_id in run_ids and r.data.params.get("classes")}


def newest_finished(runs: list[Any]) -> dict[str, Any]:
    """The FINISHED normcheck runs among ``runs``, the newest of each configuration hash."""
    newest: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        if run.info.status == "FINISHED" and "normcheck.config_hash" in run.data.tags:
            newest[run.data.tags["normcheck.config_hash"]] = run
    return newest


def _history(tracker: Tracker, run: Any) -> tuple[EpochMetrics, ...]:
    """A run's epochs: from its history tag, or (a run logged before the tag existed, or with
    too many epochs for one tag) from MLflow's metric history, one query per metric."""
    kept = run.data.tags.get(HISTORY_TAG)
    if kept:
        series = json.loads(kept)  # a tag from before a metric was recorded lacks it: NaN
        return tuple(EpochMetrics(step, **{k: series[k][i] for k in HISTORY_METRICS
                                           if k in series})
                     for i, step in enumerate(series["epoch"]))
    with tracker.locked():
        series = {k: {x.step: x.value for x in tracker.client.get_metric_history(
            run.info.run_id, k)} for k in HISTORY_METRICS}
    return tuple(EpochMetrics(step, **{k: series[k].get(step, float("nan"))
                                       for k in HISTORY_METRICS})
                 for step in sorted(series["val_acc"]))


def load_results(tracker: Tracker, runs: list[Any] | None = None) -> list[RunResult]:
    """The experiment's FINISHED runs as results, the newest per configuration hash.

    RUNNING (killed) and FAILED runs are never taken for finished ones. ``runs``: the
    experiment's runs, if the caller already fetched them.
    """
    results = []
    for run in newest_finished(tracker.runs() if runs is None else runs).values():
        p, m = run.data.params, run.data.metrics
        config = TrainConfig(**{f: kind(p[f]) for f, kind in TrainConfig.__annotations__.items()
                                if f in p})
        results.append(RunResult(
            config, _history(tracker, run), test_acc=m.get("test_acc", float("nan")),
            initial_train_loss=m.get("initial_train_loss", float("nan")),
            diverged=bool(m.get("diverged", 0)), max_grad_norm=m.get("max_grad_norm", 0.0),
            train_seconds=m.get("train_seconds", 0.0), device=run.data.tags.get(
                "normcheck.device", ""), n_val=int(p.get("n_val", 0)),
            num_classes=len(p.get("classes", "").split(",")), run_id=run.info.run_id))
    return results
