"""The Ray engine: a grid's configurations trained as Ray tasks on a cluster.

The pytest process is the driver. When the session starts, it claims every configuration the
store has no finished run of (``normcheck.claims``), puts each split it needs into Ray's
object store once and submits a task per claimed configuration (per pack of them with
``--pack``: a task trains P runs of one architecture together, asking P times a run's GPU
share), so the cluster trains them in parallel while pytest walks the cases; each case waits
for its own result. A configuration another session has claimed is waited for, then reused,
or trained here if that session died before finishing it.

Tasks are never retried (a retry could train a configuration twice). A task whose node or
worker died leaves its MLflow run RUNNING; the driver marks it FAILED and fails the case,
saying so, and the next session trains the configuration.
"""

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from normcheck.claims import Claims
from normcheck.packs import pack_size, packs
from normcheck.records import RunResult, TrainConfig
from normcheck.results import ResultsFolder
from normcheck.reuse import finished_or_clear
from normcheck.splits import Splits
from normcheck.tracking import Tracker
from normcheck.uris import unreachable

if TYPE_CHECKING:
    from normcheck.data import SplitData

log = logging.getLogger("normcheck")


class EngineError(RuntimeError):
    """The cluster cannot be used, or a task on it failed; the message says what to do."""


@dataclass(frozen=True)
class RayOptions:
    """Where the cluster is and what one training task asks of it."""

    address: str | None = None  # None: a Ray started on this machine (settings read $RAY_ADDRESS)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def describe(self) -> str:
        asks = f"{self.cpus_per_run:g} CPU" + (f", {self.gpus_per_run:g} GPU"
                                               if self.gpus_per_run else "")
        return f"Ray at {self.address or 'a new local instance'}, {asks} per run"


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's retries, when nothing listens at ``host:port``."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local": Ray resolves them itself
    error = unreachable(host.strip("[]"), int(port))
    if error is not None:
        raise EngineError(f"--ray-address {address}: no Ray cluster reachable there ({error}); "
                          "start one (docs/cluster.md) or pass its head's address")


def connect(options: RayOptions) -> None:
    """Join the cluster (``ray.init``), or fail with an ``EngineError`` that says why."""
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install 'normcheck[cluster]'") from None
    address = options.address
    if address:
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EngineError(f"--ray-address {address}: cannot join the Ray cluster: {exc}") from None
    resources = ray.cluster_resources()
    for name, asked in (("CPU", options.cpus_per_run), ("GPU", options.gpus_per_run)):
        if asked and resources.get(name, 0) < asked:
            ray.shutdown()
            flag = f"--{name.lower()}s-per-run"
            raise EngineError(f"{flag} {asked:g}: the cluster has {resources.get(name, 0):g} "
                              f"{name}s in all, so no run could start; ask for less")


def train_task(configs: list[TrainConfig], uri: str, experiment_id: str, log_model: bool,
               cpus: float, *splits: "SplitData") -> list[RunResult]:
    """Configurations trained on a Ray worker as one pack (alone if one), ``splits[k]``
    config k's, each logged to the store at ``uri``. Ray set the visible GPU if the task asked
    for one; a CPU task uses the threads it asked for."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import ray
    import torch

    from normcheck.runner import train_and_log_pack
    from normcheck.train import DeviceData

    if ray.get_gpu_ids():
        device = torch.device("cuda", 0)
    else:
        torch.set_num_threads(max(1, int(cpus)))
        device = torch.device("cpu")
    return train_and_log_pack(
        configs, lambda: [DeviceData.from_splits(s, device) for s in splits], list(splits),
        Tracker(uri, experiment_id), device, log_model, node=ray.util.get_node_ip_address())


@dataclass
class RayEngine:
    """The driver's side: claims, submits and collects a session's configurations."""

    results: ResultsFolder
    splits: Splits
    tracker: Tracker
    claims: Claims
    options: RayOptions
    log_model: bool = False
    retrain: bool = False
    pack: str | int = "off"  # --pack: auto, off or P runs per task
    poll_s: float = 0.2
    waiting: dict[str, TrainConfig] = field(default_factory=dict)  # key -> not yet resolved
    flying: dict[Any, list[str]] = field(default_factory=dict)  # task reference -> its keys
    failed: dict[str, str] = field(default_factory=dict)  # key -> why its task failed
    _splits: dict[int, Any] = field(default_factory=dict)  # split seed -> object reference
    _task: Any = None

    def start(self, configs: list[TrainConfig]) -> None:
        """Join the cluster and submit every configuration of ``configs`` this session has no
        result for and can claim."""
        import ray

        connect(self.options)
        self._task = ray.remote(train_task)
        self.add(configs)

    @property
    def pack_size(self) -> int:
        """Runs per task: a pack asks for its runs' GPU shares together (P x --gpus-per-run),
        so P is at most the runs one GPU holds; on CPUs it asks --cpus-per-run, one process's
        threads."""
        gpus = self.options.gpus_per_run
        size = pack_size(self.pack, "cuda" if gpus else "cpu")
        return min(size, max(1, math.floor(1 / gpus + 1e-9))) if gpus else size

    def add(self, configs: list[TrainConfig]) -> None:
        """Submit these configurations too (``--seeds auto``: the next round), so the cluster
        trains them in parallel before any case asks."""
        for config in self.results.missing(configs):
            self.waiting.setdefault(self.splits.key(config), config)
        self._submit_claimable()

    def _split(self, split_seed: int) -> Any:
        import ray

        if split_seed not in self._splits:
            self._splits[split_seed] = ray.put(self.splits.split(split_seed))
        return self._splits[split_seed]

    def _submit_claimable(self) -> None:
        """Claim what nobody holds: reuse it if it finished meanwhile, else submit it, in
        packs of one architecture."""
        claims, tracker = self.claims, self.tracker
        in_flight = {key for keys in self.flying.values() for key in keys}
        claimed: list[TrainConfig] = []
        try:
            for key, config in list(self.waiting.items()):
                if key in in_flight or key in self.failed or not claims.try_claim(key):
                    continue
                claimed.append(config)
                found = finished_or_clear(tracker, key, config, self.retrain)
                if found is not None:
                    claimed.pop()
                    self.results.put(config, found, "reused")
                    del self.waiting[key]
                    claims.release(key)
            for pack in packs(claimed, self.pack_size):
                self._submit(pack)
        except BaseException:
            flying = {key for keys in self.flying.values() for key in keys}
            for key in {self.splits.key(c) for c in claimed} - flying:
                claims.release(key)
            raise

    def _submit(self, pack: list[TrainConfig]) -> None:
        ref = self._task.options(
            num_cpus=self.options.cpus_per_run, num_gpus=self.options.gpus_per_run * len(pack),
            max_retries=0, retry_exceptions=False).remote(
            pack, self.tracker.uri, self.tracker.experiment_id, self.log_model,
            self.options.cpus_per_run, *(self._split(c.split_seed) for c in pack))
        self.flying[ref] = [self.splits.key(c) for c in pack]

    def _collect(self) -> None:
        """Wait up to ``poll_s`` for tasks; record each finished one and free its claim."""
        import ray
        from ray.exceptions import RayError

        if not self.flying:
            time.sleep(self.poll_s)
            return
        ready, _ = ray.wait(list(self.flying), num_returns=len(self.flying), timeout=self.poll_s)
        for ref in ready:
            keys = self.flying.pop(ref)
            configs = [self.waiting.pop(key) for key in keys]
            try:
                for config, result in zip(configs, ray.get(ref), strict=True):
                    self.results.put(config, result, "trained")
            except RayError as exc:
                for key, config in zip(keys, configs, strict=True):
                    self.failed[key] = self._failure(config, exc)
            finally:
                for key in keys:
                    self.claims.release(key)

    def _failure(self, config: TrainConfig, exc: Exception) -> str:
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        stale = self.tracker.mark_stale(self.splits.key(config), f"its Ray task failed: {why}")
        log.error("%s: Ray task failed (%s); runs marked FAILED: %s", config.case_id, why,
                  ", ".join(stale) or "none")
        return (f"{config.case_id}: its Ray task failed ({type(exc).__name__}: {why}); its "
                f"MLflow run{'s' if len(stale) != 1 else ''} {', '.join(stale) or '(none)'} "
                "marked FAILED. Run the session again to train it.")

    def run(self, config: TrainConfig) -> RunResult:
        """This configuration's result, waiting for its task (or for another session's)."""
        have = self.results.get(config)
        if have is not None:
            return have
        key = self.splits.key(config)
        self.waiting.setdefault(key, config)
        while self.results.origin(config) is None:
            if key in self.failed:
                raise EngineError(self.failed[key])
            self._submit_claimable()
            self._collect()
        return self.results.get(config)

    def close(self) -> None:
        """Cancel what is still running (its runs are marked FAILED), leave the cluster and
        free this process's claims."""
        if self._task is None:  # never joined it
            self.claims.close()
            return
        import ray

        for ref, keys in list(self.flying.items()):
            ray.cancel(ref, force=True)
            for key in keys:
                try:
                    self.tracker.mark_stale(key, "its session ended before it finished")
                finally:
                    self.claims.release(key)
        self.flying.clear()
        if ray.is_initialized():
            ray.shutdown()
        self.claims.close()
