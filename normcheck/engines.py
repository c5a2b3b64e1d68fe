"""Where configurations train: the protocol both engines keep.

``LocalEngine`` (``normcheck.local``) trains in this machine's processes; ``RayEngine``
(``normcheck.cluster``) submits them as tasks to a Ray cluster. Each is given the session's
results folder, its splits, the store's tracker and the claims, and nothing else; a session
asks ``run(config)`` for every case, ``add`` for the next round of ``--seeds auto`` and
``close`` at its end. ``tests/test_engine.py`` and ``tests/test_cluster.py`` run one contract
over both.
"""

from typing import Protocol

from normcheck.records import RunResult, TrainConfig


class Engine(Protocol):
    def start(self, configs: list[TrainConfig]) -> None: ...
    def add(self, configs: list[TrainConfig]) -> None: ...
    def run(self, config: TrainConfig) -> RunResult: ...
    def close(self) -> None: ...
