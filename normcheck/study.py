"""A study: the grid's configurations trained once each, logged to MLflow, shared by processes.

Results live as JSON files in a folder all processes of a session share. A configuration is
trained under a file lock by whichever process asks first; every other process waits and
reads the result, so nothing is trained twice however xdist distributes the cases.
"""

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from filelock import FileLock

from normcheck import __version__
from normcheck.atomic import atomic_path
from normcheck.config import TrainConfig, config_hash
from normcheck.data import SplitData
from normcheck.tracking import Tracker
from normcheck.train import DeviceData, RunResult, train

log = logging.getLogger("normcheck")


@dataclass
class Study:
    """Runs configurations on one data split, on one device, into one results folder."""

    splits: SplitData
    device: torch.device
    results_dir: Path
    tracker: Tracker | None = None
    log_model: bool = False
    trained: list[str] = field(default_factory=list)  # case ids this process trained

    @cached_property
    def data(self) -> DeviceData:
        return DeviceData.from_splits(self.splits, self.device)

    def key(self, config: TrainConfig) -> str:
        return config_hash(config, self.splits.fingerprint, __version__)

    def run(self, config: TrainConfig) -> RunResult:
        """The configuration's result: trained now, or read if any process already trained it."""
        path = self.results_dir / f"{self.key(config)}.json"
        with FileLock(f"{path}.lock"):
            if path.exists():
                return RunResult.from_dict(json.loads(path.read_text()))
            result = self._train_and_log(config)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(result.to_dict()))
        self.trained.append(config.case_id)
        return result

    def results(self) -> list[RunResult]:
        """Every result recorded so far in this session, by any process."""
        return [RunResult.from_dict(json.loads(p.read_text()))
                for p in sorted(self.results_dir.glob("[!.]*.json"))]

    def _train_and_log(self, config: TrainConfig) -> RunResult:
        log.info("training %s on %s", config.case_id, self.device)
        run_id = None
        if self.tracker is not None:
            run_id = self.tracker.start_run(config.case_id, self._params(config),
                                            self._tags(config))
        try:
            result, model = train(config, self.data, on_epoch=lambda m: self._on_epoch(run_id, m))
        except BaseException:
            if run_id is not None:
                self.tracker.fail(run_id)
            raise
        if run_id is not None:
            self.tracker.finish(run_id, result.summary(),
                                {"normcheck.diverged": str(result.diverged).lower()},
                                model if self.log_model else None)
            result.run_id = run_id
        log.info("%s: best val acc %.3f%s", config.case_id, result.best_val_acc,
                 " (diverged)" if result.diverged else "")
        return result

    def _on_epoch(self, run_id: str | None, m) -> None:
        log.info("  epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f",
                 m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc)
        if run_id is not None:
            self.tracker.log_metrics(run_id, {"train_loss": m.train_loss, "train_acc": m.train_acc,
                                              "val_loss": m.val_loss, "val_acc": m.val_acc},
                                     step=m.epoch)

    def _params(self, config: TrainConfig) -> dict[str, object]:
        s = self.splits
        return {**config.as_dict(), "classes": ",".join(s.classes), "protocol": s.protocol,
                "split_seed": s.split_seed,
                "source": s.source, "n_train": len(s.train_y), "n_val": len(s.val_y),
                "n_test": len(s.test_y)}

    def _tags(self, config: TrainConfig) -> dict[str, str]:
        return {"normcheck.config_hash": self.key(config),
                "normcheck.case_id": config.case_id,
                "normcheck.data_fingerprint": self.splits.fingerprint,
                "normcheck.version": __version__,
                "normcheck.device": str(self.device)}
