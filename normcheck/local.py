"""The local engine: configurations trained in this machine's processes (pytest-xdist's
workers, or the pytest process itself).

A case asks for its configuration's result; the first process to ask resolves it under the
results folder's lock: reused from the store if it has a FINISHED run, else trained here and
logged, under the configuration's claim so that another session on the same store (or, with
PostgreSQL claims, on another machine) waits and then reuses it.
"""

from dataclasses import dataclass

from normcheck.claims import Claims
from normcheck.records import RunResult, TrainConfig
from normcheck.results import Origin, ResultsFolder
from normcheck.reuse import finished_or_clear
from normcheck.runner import train_and_log
from normcheck.splits import Splits
from normcheck.tracking import Tracker


@dataclass
class LocalEngine:
    """Trains in this process, on its share of the device."""

    results: ResultsFolder
    splits: Splits
    tracker: Tracker | None
    claims: Claims | None
    retrain: bool = False
    log_model: bool = False

    def start(self, configs: list[TrainConfig]) -> None:
        """Nothing to submit ahead: each case trains when it is asked for."""

    def add(self, configs: list[TrainConfig]) -> None:
        """Nothing to submit ahead (``--seeds auto``'s next round trains case by case)."""

    def run(self, config: TrainConfig) -> RunResult:
        """The configuration's result: this session's, the store's, or trained now."""
        return self.results.resolve(config, lambda: self._reuse_or_train(config))

    def _reuse_or_train(self, config: TrainConfig) -> tuple[RunResult, Origin]:
        if self.tracker is None or self.claims is None:
            return self.train(config), "trained"
        key = self.splits.key(config)
        with self.claims.hold(key):  # another session training it: wait, then reuse
            found = finished_or_clear(self.tracker, key, config, self.retrain)
            if found is not None:
                return found, "reused"
            return self.train(config), "trained"

    def train(self, config: TrainConfig) -> RunResult:
        seed = config.split_seed
        return train_and_log(config, lambda: self.splits.on_device(seed),
                             self.splits.split(seed), self.tracker,
                             self.splits.training_device(), self.log_model)

    def close(self) -> None:
        """Free this process's claims."""
        if self.claims is not None:
            self.claims.close()
