"""One configuration trained as one MLflow run: started with its parameters and tags, its
metrics logged per epoch, finished with its history, or marked FAILED saying why. A pack
(``normcheck.train_packed``) is P such runs, each logged as if it had trained alone, plus a
``normcheck.pack`` tag with the pack's size (docs/packing.md)."""

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from normcheck.records import EpochMetrics, RunResult, TrainConfig, config_hash
from normcheck.tracking import DataInput, Tracker, finish_tags, run_params, run_tags

if TYPE_CHECKING:
    import torch

    from normcheck.data import SplitData
    from normcheck.train import DeviceData

log = logging.getLogger("normcheck")
PACK_TAG = "normcheck.pack"  # how many runs trained together (1: alone)


class LoggedRun:
    """One configuration's MLflow run (none without a tracker), from RUNNING to FINISHED or
    FAILED."""

    def __init__(self, config: TrainConfig, split: "SplitData", tracker: Tracker | None,
                 device: "torch.device", node: str | None, pack: int = 1) -> None:
        self.config, self.tracker, self.run_id = config, tracker, None
        if tracker is not None:
            sizes = (len(split.train_y), len(split.val_y), len(split.test_y))
            tags = run_tags(config, config_hash(config, split.fingerprint), split.fingerprint,
                            str(device), node)
            self.run_id = tracker.start_run(
                config.case_id, run_params(config, split.classes, split.protocol, split.source,
                                           sizes),
                {**tags, PACK_TAG: str(pack)},
                DataInput(f"{','.join(split.classes)} ({split.protocol})", split.fingerprint,
                          split.source))

    def on_epoch(self, m: EpochMetrics) -> None:
        log.info("  %s epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f",
                 self.config.case_id, m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc)
        if self.run_id is not None:
            self.tracker.log_metrics(self.run_id, m.metrics(), step=m.epoch)

    def finish(self, result: RunResult, model: Any, log_model: bool) -> RunResult:
        """Mark the run FINISHED with its summary; the result, with its run id."""
        if self.run_id is not None:
            self.tracker.finish(self.run_id, result.summary(), finish_tags(result),
                                model if log_model else None)
            result = replace(result, run_id=self.run_id)
        log.info("%s: best val acc %.3f%s", self.config.case_id, result.best_val_acc,
                 " (diverged)" if result.diverged else "")
        return result

    def fail(self, exc: BaseException) -> None:
        """Mark the run FAILED, saying why. A lost store cannot take it: the run stays
        RUNNING there, and the next session marks it stale."""
        if self.run_id is not None and self.tracker.lost is None:
            self.tracker.fail(self.run_id, "interrupted" if isinstance(exc, KeyboardInterrupt)
                              else f"{type(exc).__name__}: {exc}"[:500])


def train_and_log(config: TrainConfig, data: Callable[[], "DeviceData"], split: "SplitData",
                  tracker: Tracker | None, device: "torch.device", log_model: bool = False,
                  node: str | None = None) -> RunResult:
    """Train ``config`` on ``data`` (the split on the device), logged as an MLflow run that
    is marked FAILED, saying why, if training does not finish."""
    from normcheck.train import train

    run = LoggedRun(config, split, tracker, device, node)
    try:  # from here on, a run that does not finish is marked FAILED, saying why
        log.info("training %s on %s (MLflow run %s)", config.case_id, device, run.run_id)
        result, model = train(config, data(), on_epoch=run.on_epoch)
        return run.finish(result, model, log_model)
    except BaseException as exc:
        run.fail(exc)
        raise


def train_and_log_pack(configs: list[TrainConfig], data: Callable[[], "list[DeviceData]"],
                       splits: "list[SplitData]", tracker: Tracker | None,
                       device: "torch.device", log_model: bool = False,
                       node: str | None = None) -> list[RunResult]:
    """Train ``configs`` as one pack, each logged as its own MLflow run; if the pack does not
    finish, every run of it that had not finished is marked FAILED, saying why."""
    if len(configs) == 1:
        return [train_and_log(configs[0], lambda: data()[0], splits[0], tracker, device,
                              log_model, node)]
    from normcheck.train_packed import train_packed

    runs: list[LoggedRun] = []
    results: list[RunResult] = []
    try:
        for config, split in zip(configs, splits, strict=True):
            runs.append(LoggedRun(config, split, tracker, device, node, len(configs)))
        log.info("training a pack of %d on %s: %s", len(configs), device,
                 ", ".join(c.case_id for c in configs))
        trained = train_packed(configs, data(), on_epoch=lambda k, m: runs[k].on_epoch(m))
        for run, (result, model) in zip(runs, trained, strict=True):
            results.append(run.finish(result, model, log_model))
        return results
    except BaseException as exc:
        for run in runs[len(results):]:
            run.fail(exc)
        raise
