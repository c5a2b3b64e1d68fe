"""One configuration trained as one MLflow run: started with its parameters and tags, its
metrics logged per epoch, finished with its history, or marked FAILED saying why."""

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from normcheck.records import EpochMetrics, RunResult, TrainConfig, config_hash
from normcheck.tracking import DataInput, Tracker, finish_tags, run_params, run_tags

if TYPE_CHECKING:
    import torch

    from normcheck.data import SplitData
    from normcheck.train import DeviceData

log = logging.getLogger("normcheck")


def train_and_log(config: TrainConfig, data: Callable[[], "DeviceData"], split: "SplitData",
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
                     str(device), node),
            DataInput(f"{','.join(split.classes)} ({split.protocol})", split.fingerprint,
                      split.source))

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
        if run_id is not None and tracker.lost is None:  # a lost store cannot take it: the
            # run stays RUNNING there, and the next session marks it stale
            tracker.fail(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt)
                         else f"{type(exc).__name__}: {exc}"[:500])
        raise
    log.info("%s: best val acc %.3f%s", config.case_id, result.best_val_acc,
             " (diverged)" if result.diverged else "")
    return result
