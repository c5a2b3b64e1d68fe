"""A session's results: one JSON file per configuration in a folder every process shares.

A configuration's file is written once, atomically, by whichever process resolves it (trained
here, trained on a cluster, or reused from the store), and read by every other; ``resolve``
does that under a file lock, so nothing is trained twice however xdist distributes the cases.
Files starting with a dot (the verdicts, the looks) are not results.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from normcheck.atomic import atomic_path, once
from normcheck.records import RunResult, TrainConfig

if TYPE_CHECKING:
    from filelock import FileLock

Origin = str  # "trained" or "reused"


def _dump(entry: tuple[RunResult, Origin]) -> str:
    return json.dumps({"origin": entry[1], "result": entry[0].to_dict()})


def _load(text: str) -> tuple[RunResult, Origin]:
    record = json.loads(text)
    return RunResult.from_dict(record["result"]), record["origin"]


@dataclass(frozen=True)
class ResultsFolder:
    """The session's results, keyed by configuration hash (``key``)."""

    folder: Path
    key: Callable[[TrainConfig], str]

    def _path(self, config: TrainConfig) -> Path:
        return self.folder / f"{self.key(config)}.json"

    def get(self, config: TrainConfig) -> RunResult | None:
        path = self._path(config)
        return _load(path.read_text())[0] if path.exists() else None

    def origin(self, config: TrainConfig) -> Origin | None:
        """``"trained"`` or ``"reused"`` once this session has the configuration."""
        path = self._path(config)
        return _load(path.read_text())[1] if path.exists() else None

    def put(self, config: TrainConfig, result: RunResult, origin: Origin) -> None:
        with atomic_path(self._path(config)) as tmp:
            tmp.write_text(_dump((result, origin)))

    def try_hold(self, config: TrainConfig) -> "FileLock | None":
        """The configuration's lock, held, if no process holds it and it has no result yet
        (``resolve`` takes the same lock): for a pack to take it along, never waiting."""
        from filelock import FileLock, Timeout

        lock = FileLock(f"{self._path(config)}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None
        if self._path(config).exists():
            lock.release()
            return None
        return lock

    def resolve(self, config: TrainConfig,
                make: Callable[[], tuple[RunResult, Origin]]) -> RunResult:
        """The configuration's result, made once across processes by ``make``."""
        return self.get(config) or once(self._path(config), make, _dump, _load)[0]

    def missing(self, configs: list[TrainConfig]) -> list[TrainConfig]:
        """The configurations this session has no result for yet."""
        return [c for c in configs if not self._path(c).exists()]

    def outcomes(self) -> list[tuple[RunResult, Origin]]:
        """Every (result, origin) this session has so far, from any of its processes."""
        return [_load(p.read_text()) for p in sorted(self.folder.glob("[!.]*.json"))]
