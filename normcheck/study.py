"""A study: the grid's configurations trained once each, logged to MLflow, shared by processes.

Results live as JSON files in a folder all processes of a session share. A configuration is
trained under a file lock by whichever process asks first; every other process waits and
reads the result, so nothing is trained twice however xdist distributes the cases.

Across sessions the MLflow experiment is the record: a configuration whose FINISHED run (same
configuration hash) is there is reused, not trained again. A configuration is looked up and
trained under its claim (``normcheck.claims``: file locks on one machine, PostgreSQL across
machines); runs a killed session left RUNNING, and FAILED ones, are marked stale and their
configuration trains again. With ``--engine ray`` (``normcheck.cluster``), configurations
train on a Ray cluster, which records its results here.
"""

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from normcheck.atomic import atomic_path
from normcheck.claims import Claims, FileClaims, lock_folder
from normcheck.records import DataSpec, EpochMetrics, RunResult, TrainConfig, config_hash
from normcheck.tracking import Tracker, finish_tags, load_results, run_params, run_tags

if TYPE_CHECKING:  # torch, the data and the trainer load only in a process that trains
    from collections.abc import Callable

    import torch

    from normcheck.data import Images, SplitData
    from normcheck.train import DeviceData

log = logging.getLogger("normcheck")


@dataclass
class Study:
    """Runs configurations on one data source and device, into one results folder.

    Each configuration trains on the split its ``split_seed`` names, drawn from the decoded
    images, which are read from the decode cache once per process. A process that only reads
    results already in the folder never imports torch.
    """

    data_dir: str | None
    spec: DataSpec
    results_dir: Path
    tracker: Tracker | None = None
    device: "torch.device | None" = None  # None: chosen when first needed, for ``worker``
    worker: tuple[int, int] = (0, 1)  # this process's xdist worker index and the count
    log_model: bool = False
    cache_dir: Path | None = None
    retrain: bool = False  # train even where the experiment has a finished run
    fingerprints: dict[int, str] = field(default_factory=dict)  # split seed -> data fingerprint
    claims: Claims | None = None  # None: file locks beside the store (claims.lock_folder)
    _images: "Images | None" = field(default=None, repr=False)
    _split: "SplitData | None" = field(default=None, repr=False)  # the latest split drawn
    _device_data: "DeviceData | None" = field(default=None, repr=False)  # and on the device

    def training_device(self) -> "torch.device":
        """The device this process trains on (a GPU per worker with CUDA, else the CPU with
        this worker's share of the threads), chosen on first use."""
        if self.device is None:
            from normcheck.device import select_device

            self.device = select_device(*self.worker)
        return self.device

    def splits(self, split_seed: int | None = None) -> "SplitData":
        """The split for ``split_seed`` (default: the data spec's own). Only the latest is
        kept: with a split per replicate, keeping them all would multiply every process's
        memory by the replicates, and drawing one from the decoded images is an indexing."""
        seed = self.spec.split_seed if split_seed is None else split_seed
        if self._split is None or self._split.split_seed != seed:
            if self._images is None:
                from normcheck.data import Images

                self._images = Images(self.data_dir, self.spec.classes, self.cache_dir)
            self._split = self._images.splits(replace(self.spec, split_seed=seed))
            self.fingerprints[seed] = self._split.fingerprint
        return self._split

    def use_split(self, split: "SplitData") -> None:
        """Train on ``split`` (e.g. from Ray's object store) instead of reading the data."""
        self._split = split
        self.fingerprints[split.split_seed] = split.fingerprint

    def fingerprint(self, split_seed: int) -> str:
        """The data fingerprint of a split (part of every configuration's hash); a process
        handed the fingerprints loads no data unless it trains."""
        if split_seed not in self.fingerprints:
            self.splits(split_seed)
        return self.fingerprints[split_seed]

    def data(self, split_seed: int) -> "DeviceData":
        """The split as float tensors on the device; only the latest is kept, as in
        :meth:`splits`."""
        from normcheck.train import DeviceData

        if self._device_data is None or self._device_data.fingerprint != \
                self.fingerprint(split_seed):
            self._device_data = DeviceData.from_splits(self.splits(split_seed),
                                                       self.training_device())
        return self._device_data

    def key(self, config: TrainConfig) -> str:
        return config_hash(config, self.fingerprint(config.split_seed))

    def _path(self, config: TrainConfig) -> Path:
        return self.results_dir / f"{self.key(config)}.json"

    def run(self, config: TrainConfig) -> RunResult:
        """The configuration's result: read if this session already has it (from any of its
        processes), else reused from the experiment or trained now."""
        path = self._path(config)
        if path.exists():
            return _read(path)[0]
        with FileLock(f"{path}.lock"):
            if not path.exists():
                result, origin = self._reuse_or_train(config)
                _write(path, result, origin)
                return result
        return _read(path)[0]

    def origin(self, config: TrainConfig) -> str | None:
        """``"trained"`` or ``"reused"`` once this session has the configuration, else None."""
        path = self._path(config)
        return _read(path)[1] if path.exists() else None

    def outcomes(self) -> list[tuple[RunResult, str]]:
        """Every (result, origin) this session has so far, from any of its processes."""
        return [_read(p) for p in sorted(self.results_dir.glob("[!.]*.json"))]

    def missing(self, configs: list[TrainConfig]) -> list[TrainConfig]:
        """The configurations this session has no result for yet."""
        return [c for c in configs if not self._path(c).exists()]

    def record(self, config: TrainConfig, result: RunResult, origin: str) -> None:
        """Take ``result`` as this session's result for ``config``."""
        _write(self._path(config), result, origin)

    def adopt_finished(self, configs: list[TrainConfig]) -> None:
        """Take every configuration that has a FINISHED run in the experiment as this
        session's result, in one query, before any process trains. A session whose runs are
        all in the store then trains and queries nothing more."""
        if self.tracker is None or self.retrain:
            return
        finished = self.tracker.finished_by_hash()
        for config in configs:
            run = finished.get(self.key(config))
            path = self._path(config)
            if run is not None and not path.exists():
                _write(path, load_results(self.tracker, [run])[0], "reused")

    def _reuse_or_train(self, config: TrainConfig) -> tuple[RunResult, str]:
        if self.tracker is None:
            return self.train_and_log(config), "trained"
        key = self.key(config)
        with self.claimed().hold(key):  # another session training it: wait, then reuse
            found = self.finished_or_clear(config)
            if found is not None:
                return found, "reused"
            return self.train_and_log(config), "trained"

    def claimed(self) -> Claims:
        """The claims configurations are trained under (file locks unless given others)."""
        if self.claims is None:
            self.claims = FileClaims(lock_folder(self.tracker.uri), self.tracker.experiment_id)
        return self.claims

    def finished_or_clear(self, config: TrainConfig) -> RunResult | None:
        """Under the configuration's claim: its finished run (unless ``retrain``), else None
        after marking the runs nobody alive owns stale, so it can be trained."""
        key = self.key(config)
        if not self.retrain:
            found = self.tracker.finished(key)
            if found is not None:
                log.info("%s: reused MLflow run %s", config.case_id, found.run_id)
                return found
        stale = self.tracker.mark_stale(key, "left unfinished by an earlier session; "
                                             "trained again")
        if stale:
            log.warning("%s: marked stale runs %s, training again", config.case_id,
                        ", ".join(stale))
        return None

    def train_and_log(self, config: TrainConfig) -> RunResult:
        """Train ``config`` on this process's device, logging it as an MLflow run."""
        split = self.splits(config.split_seed)
        return train_and_log(config, lambda: self.data(config.split_seed), split,
                             self.tracker, self.training_device(), self.log_model)


def train_and_log(config: TrainConfig, data: "Callable[[], DeviceData]", split: "SplitData",
                  tracker: Tracker | None, device: "torch.device", log_model: bool = False,
                  node: str | None = None) -> RunResult:
    """Train ``config`` on ``data`` (the split on the device), logged as an MLflow run that
    is marked FAILED, saying why, if training does not finish."""
    from normcheck.train import train

    run_id = None
    if tracker is not None:
        run_id = tracker.start_run(
            config.case_id, run_params(config, split.classes, split.protocol, split.source,
                                       (len(split.train_y), len(split.val_y), len(split.test_y))),
            run_tags(config, config_hash(config, split.fingerprint), split.fingerprint,
                     str(device), node))

    def on_epoch(m: EpochMetrics) -> None:
        log.info("  epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f",
                 m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc)
        if run_id is not None:
            tracker.log_metrics(run_id, m.metrics(), step=m.epoch)

    try:  # from here on, a run that does not finish is marked FAILED, saying why
        log.info("training %s on %s (MLflow run %s)", config.case_id, device, run_id)
        result, model = train(config, data(), on_epoch=on_epoch)
        if run_id is not None:
            tracker.finish(run_id, result.summary(), finish_tags(result),
                           model if log_model else None)
            result = replace(result, run_id=run_id)
    except BaseException as exc:
        if run_id is not None:
            tracker.fail(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt)
                         else f"{type(exc).__name__}: {exc}"[:500])
        raise
    log.info("%s: best val acc %.3f%s", config.case_id, result.best_val_acc,
             " (diverged)" if result.diverged else "")
    return result


def _write(path: Path, result: RunResult, origin: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"origin": origin, "result": result.to_dict()}))


def _read(path: Path) -> tuple[RunResult, str]:
    record = json.loads(path.read_text())
    return RunResult.from_dict(record["result"]), record["origin"]
