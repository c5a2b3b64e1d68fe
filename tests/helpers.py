"""What several test modules share: no test module imports from another, they import from here.

``FAMILY`` is the study's hypotheses as ``pytest experiments`` collects them, ``OBSERVATIONS``
its primary family alone (H1-H5, without the explanatory E1-E4); ``TMean`` is
version 4's t interval, broken on purpose (tests swap ``normcheck.contrasts.estimate`` for
``TMean.of`` to see their checks fail); ``results`` and ``fake_result`` make recorded runs;
``tiny_data`` a small learnable split.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as scipy_stats

from normcheck.family import PRIMARY, Family, load
from normcheck.records import EpochMetrics, RunResult, TrainConfig
from normcheck.stats import Estimated

if TYPE_CHECKING:
    from normcheck.train import DeviceData

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
FAMILY = load([EXPERIMENTS])
OBSERVATIONS = Family(tuple(h for h in FAMILY.hypotheses if FAMILY.group(h.name) == PRIMARY))


def fake_result(lr: float, fc: int, norm: str, seed: int, acc: float) -> RunResult:
    """A recorded result, as the results store would hold it."""
    shift = {"ics_l2": 0.5, "ics_cosine": 0.9 if norm == "none" else 0.8,
             "input_mean_shift": 0.05, "input_var_shift": 0.1}
    history = [EpochMetrics(1, 1.0, acc - 0.1, 1.0, acc - 0.05, 0.1, 0.5, 10.0, **shift),
               EpochMetrics(2, 0.9, acc, 0.9, acc, 0.1, 0.4, 8.0, **shift)]
    return RunResult(TrainConfig(lr=lr, fc_units=fc, norm=norm, seed=seed), history,
                     test_acc=acc, initial_train_loss=1.1, max_grad_norm=3.0, train_seconds=1.5,
                     n_val=480, num_classes=3, run_id=f"run-{lr}-{fc}-{norm}-{seed}")


def results() -> list[RunResult]:
    return [fake_result(lr, fc, norm, seed,
                        0.5 + 0.1 * (norm == "batchnorm") + fc / 1000 + seed / 100)
            for lr in (0.001, 0.01) for fc in (32, 64) for norm in ("batchnorm", "none")
            for seed in (1, 2, 3)]


def tiny_data(n_train: int = 96, n_val: int = 48, classes: int = 3, seed: int = 0) -> "DeviceData":
    """A learnable synthetic split on the CPU: class-dependent brightness."""
    import torch

    from normcheck.train import DeviceData

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n_train + 2 * n_val,), generator=g)
    # class-dependent brightness makes the task learnable
    x = (torch.rand(len(y), 3, 32, 32, generator=g) * 0.5 + y[:, None, None, None] * 0.25)
    parts = torch.split(torch.arange(len(y)), [n_train, n_val, n_val])
    return DeviceData(*(t for idx in parts for t in (x[idx], y[idx])), num_classes=classes,
                      fingerprint="tiny")


@dataclass(frozen=True)
class TMean(Estimated):
    """Broken on purpose, as version 4 decided: the mean of the replicates' values with a t
    interval (s / sqrt(R)), zero wide and p = 0 when the values do not vary. Tests patch
    ``normcheck.contrasts.estimate`` with ``TMean.of`` to see their checks fail."""

    values: tuple[float, ...]
    level: float = 0.95
    missing: int = 0

    @classmethod
    def of(cls, values, level: float = 0.95) -> "TMean":
        array = np.asarray(values, dtype=float).ravel()
        kept = array[np.isfinite(array)]
        return cls(tuple(float(v) for v in kept), level, len(array) - len(kept))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def value(self) -> float:
        return float(np.mean(self.values))

    mean = value

    @property
    def se(self) -> float:
        return float(np.std(self.values, ddof=1) / np.sqrt(self.n)) if self.n > 1 else np.inf

    def bounds(self, a: float) -> tuple[float, float]:
        half = float(scipy_stats.t.ppf(1 - a, self.n - 1)) * self.se if self.n > 1 else np.inf
        return self.value - half, self.value + half

    def p_above(self, margin: float) -> float:
        if self.se == 0:
            return 0.0 if self.value > margin else 1.0
        return float(scipy_stats.t.sf((self.value - margin) / self.se, self.n - 1))

    def p_below(self, margin: float) -> float:
        return TMean(tuple(-v for v in self.values), self.level, self.missing).p_above(-margin)


class EngineContract:
    """One contract, every engine (Optuna's storage tests are the model): a subclass gives
    the store (``store_uri``) and ``make(results, splits, tracker, claims)``."""

    CONFIG = TrainConfig(lr=0.01, fc_units=4, norm="batchnorm", seed=42, epochs=1,
                         base_channels=2)

    def make(self, results, splits, tracker, claims):
        raise NotImplementedError

    @staticmethod
    def parts(tmp_path: Path, data: Path, uri: str, experiment: str, folder: str = "results"):
        from normcheck.claims import FileClaims
        from normcheck.records import DataSpec
        from normcheck.results import ResultsFolder
        from normcheck.splits import Splits
        from normcheck.tracking import Tracker

        tracker = Tracker.open(uri, experiment)
        (tmp_path / folder).mkdir()
        splits = Splits(str(data), DataSpec(), cache_dir=tmp_path / "cache")
        return (ResultsFolder(tmp_path / folder, splits.key), splits, tracker,
                FileClaims(tmp_path / "locks", tracker.experiment_id))

    def resolve(self, parts, configs=None):
        engine = self.make(*parts)
        engine.start(configs or [self.CONFIG])
        try:
            return engine.run(self.CONFIG), engine.run(self.CONFIG)
        finally:
            engine.close()

    @staticmethod
    def statuses(tracker) -> list[str]:
        return sorted(r.info.status for r in tracker.runs())

    def test_a_configuration_trains_once_and_is_logged(self, tmp_path, seed_batches,
                                                        store_uri) -> None:
        parts = self.parts(tmp_path, seed_batches, store_uri, self.experiment())
        first, again = self.resolve(parts)
        assert first == again and first.run_id and len(first.history) == 1
        assert parts[0].origin(self.CONFIG) == "trained"
        assert self.statuses(parts[2]) == ["FINISHED"]

    def test_a_finished_run_in_the_store_is_reused(self, tmp_path, seed_batches,
                                                   store_uri) -> None:
        """The run another session finished (trained here in this process, so the engine under
        test joins its cluster once)."""
        from normcheck.local import LocalEngine

        parts = self.parts(tmp_path, seed_batches, store_uri, self.experiment())
        tracker = parts[2]
        trained = LocalEngine(*parts).train(self.CONFIG)
        reused = self.resolve(parts)[0]
        assert reused.run_id == trained.run_id and parts[0].origin(self.CONFIG) == "reused"
        assert self.statuses(tracker) == ["FINISHED"]

    def test_a_run_a_killed_session_left_is_trained_again(self, tmp_path, seed_batches,
                                                          store_uri) -> None:
        parts = self.parts(tmp_path, seed_batches, store_uri, self.experiment())
        parts[2].start_run(self.CONFIG.case_id, {}, {
            "normcheck.config_hash": parts[1].key(self.CONFIG)})  # left RUNNING
        self.resolve(parts)
        assert self.statuses(parts[2]) == ["FAILED", "FINISHED"]

    @staticmethod
    def experiment() -> str:
        import uuid

        return f"contract-{uuid.uuid4().hex[:8]}"


def by_hash(runs: list[dict]) -> dict[str, list[str]]:
    """The statuses of the runs (as ``Suite.runs`` or ``MlflowServer.runs`` list them) of
    each configuration hash."""
    out: dict[str, list[str]] = {}
    for run in runs:
        out.setdefault(run["tags"]["normcheck.config_hash"], []).append(run["status"])
    return out
