"""The local engine: configurations trained in this machine's processes (pytest-xdist's
workers, or the pytest process itself).

A case asks for its configuration's result; the first process to ask resolves it under the
results folder's lock: reused from the store if it has a FINISHED run, else trained here and
logged, under the configuration's claim so that another session on the same store (or, with
PostgreSQL claims, on another machine) waits and then reuses it.

With ``--pack`` a process that trains a configuration takes along, as one pack
(``normcheck.train_packed``), up to P-1 others of the same architecture that the plan needs
with it and that nobody holds (their result locks and claims taken without waiting), so each
xdist worker packs what it trains. It takes them from the end of the plan's list, away from
the cases the other workers are asking for next.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from normcheck.claims import Claims
from normcheck.packs import pack_key, pack_size
from normcheck.records import RunResult, TrainConfig
from normcheck.results import Origin, ResultsFolder
from normcheck.reuse import finished_or_clear
from normcheck.runner import train_and_log_pack
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
    pack: str | int = "off"  # --pack: auto, off or P
    companions: Callable[[TrainConfig], list[TrainConfig]] = lambda config: []  # the plan's

    def start(self, configs: list[TrainConfig]) -> None:
        """Nothing to submit ahead: each case trains when it is asked for."""

    def add(self, configs: list[TrainConfig]) -> None:
        """Nothing to submit ahead (``--seeds auto``'s next round trains case by case)."""

    def run(self, config: TrainConfig) -> RunResult:
        """The configuration's result: this session's, the store's, or trained now."""
        return self.results.resolve(config, lambda: self._reuse_or_train(config))

    def _reuse_or_train(self, config: TrainConfig) -> tuple[RunResult, Origin]:
        if self.tracker is None or self.claims is None:
            return self._train_with_mates(config), "trained"
        key = self.splits.key(config)
        with self.claims.hold(key):  # another session training it: wait, then reuse
            found = finished_or_clear(self.tracker, key, config, self.retrain)
            if found is not None:
                return found, "reused"
            return self._train_with_mates(config), "trained"

    def _train_with_mates(self, config: TrainConfig) -> RunResult:
        size = pack_size(self.pack, self.splits.training_device().type)
        with self._mates(config, size - 1) as mates:
            results = self.train_pack([config, *mates])
            for mate, result in zip(mates, results[1:], strict=True):
                self.results.put(mate, result, "trained")  # before their locks are freed
        return results[0]

    @contextlib.contextmanager
    def _mates(self, config: TrainConfig, wanted: int) -> Iterator[list[TrainConfig]]:
        """Up to ``wanted`` configurations to train with ``config``, held (their result locks
        and claims) until the block ends; one the store has finished is reused on the way."""
        mates: list[TrainConfig] = []
        with contextlib.ExitStack() as held:
            keys = {self.splits.key(config)}
            for mate in reversed(self.companions(config)):
                if len(mates) >= wanted:
                    break
                if pack_key(mate) != pack_key(config):
                    continue
                key = self.splits.key(mate)
                if key in keys:
                    continue
                keys.add(key)
                if self._hold(mate, key, held):
                    mates.append(mate)
            yield mates

    def _hold(self, mate: TrainConfig, key: str, held: contextlib.ExitStack) -> bool:
        """Take ``mate`` (``key`` its hash) along if nobody holds it and the store has not
        finished it (then it is this session's, reused)."""
        lock = self.results.try_hold(mate)
        if lock is None:
            return False
        held.callback(lock.release)
        if self.tracker is None or self.claims is None:
            return True
        if not self.claims.try_claim(key):
            return False
        held.callback(self.claims.release, key)
        found = finished_or_clear(self.tracker, key, mate, self.retrain)
        if found is not None:
            self.results.put(mate, found, "reused")
            return False
        return True

    def train(self, config: TrainConfig) -> RunResult:
        """Train and log ``config`` alone."""
        return self.train_pack([config])[0]

    def train_pack(self, configs: list[TrainConfig]) -> list[RunResult]:
        """Train and log ``configs`` together (one pack; alone if one)."""
        seeds = [c.split_seed for c in configs]
        return train_and_log_pack(configs, lambda: [self.splits.on_device(s) for s in seeds],
                                  [self.splits.split(s) for s in seeds], self.tracker,
                                  self.splits.training_device(), self.log_model)

    def close(self) -> None:
        """Free this process's claims."""
        if self.claims is not None:
            self.claims.close()
