"""The engines' contract on the local engine, and the Ray engine's checks that need no
cluster (the contract on a real cluster: test_cluster.py)."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import EngineContract
from services import free_port

from normcheck.cluster import EngineError, RayEngine, RayOptions, connect
from normcheck.local import LocalEngine


class TestLocalEngine(EngineContract):
    @pytest.fixture
    def store_uri(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'mlflow.db'}"

    def make(self, results, splits, tracker, claims):
        return LocalEngine(results, splits, tracker, claims)


def test_without_ray_installed_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(EngineError, match=r"pip install 'normcheck\[cluster\]'"):
        connect(RayOptions("127.0.0.1:1"))


def test_an_address_nobody_listens_on_fails_at_once() -> None:
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineError, match=f"--ray-address {address}: no Ray cluster reachable"):
        connect(RayOptions(address))


def test_what_a_run_asks_for_is_described() -> None:
    assert RayOptions("h:6379", 2, 0.25).describe() == "Ray at h:6379, 2 CPU, 0.25 GPU per run"
    assert RayOptions().describe() == "Ray at a new local instance, 1 CPU per run"


def _packing(tmp_path: Path, data: Path, pack: int, configs: list) -> tuple:
    parts = EngineContract.parts(tmp_path, data, f"sqlite:///{tmp_path / 'mlflow.db'}",
                                 EngineContract.experiment())
    return parts, LocalEngine(*parts, pack=pack, companions=lambda config: configs)


PACKABLE = [replace(EngineContract.CONFIG, lr=lr, seed=seed)
            for lr in (0.01, 0.001) for seed in (1, 2)]


def test_a_pack_trains_its_mates_once_each_logged_as_its_own_run(tmp_path, seed_batches) -> None:
    other = replace(EngineContract.CONFIG, fc_units=8)  # another architecture: not a mate
    (results, _, tracker, _), engine = _packing(tmp_path, seed_batches, 3, [*PACKABLE, other])
    first = engine.run(PACKABLE[0])
    try:
        assert [results.origin(c) for c in PACKABLE] == ["trained", None, "trained", "trained"]
        assert results.origin(other) is None
        runs = tracker.runs()
        assert sorted(r.data.tags["normcheck.case_id"] for r in runs) == sorted(
            c.case_id for c in (PACKABLE[0], *PACKABLE[2:]))
        assert {r.data.tags["normcheck.pack"] for r in runs} == {"3"}
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert engine.run(PACKABLE[3]) == results.get(PACKABLE[3])  # read, not trained again
        assert len(tracker.runs()) == 3 and first.run_id in {r.info.run_id for r in runs}
    finally:
        engine.close()


def test_a_mate_the_store_finished_is_reused_not_trained(tmp_path, seed_batches) -> None:
    parts, engine = _packing(tmp_path, seed_batches, 4, PACKABLE)
    finished = LocalEngine(*parts).train(PACKABLE[3])
    try:
        engine.run(PACKABLE[0])
        assert [parts[0].origin(c) for c in PACKABLE] == ["trained", "trained", "trained",
                                                          "reused"]
        assert parts[0].get(PACKABLE[3]).run_id == finished.run_id
        tags = {r.data.tags["normcheck.case_id"]: r.data.tags["normcheck.pack"]
                for r in parts[2].runs()}
        assert sorted(tags.values()) == ["1", "3", "3", "3"]
    finally:
        engine.close()


def test_a_held_configuration_is_left_to_its_holder(tmp_path, seed_batches) -> None:
    """Another process resolving a mate (its result lock held): the pack goes without it."""
    (results, *_), engine = _packing(tmp_path, seed_batches, 4, PACKABLE)
    held = results.try_hold(PACKABLE[2])
    try:
        engine.run(PACKABLE[0])
        assert [results.origin(c) for c in PACKABLE] == ["trained", "trained", None, "trained"]
    finally:
        held.release()
        engine.close()


@pytest.mark.parametrize("pack, gpus, size", [("auto", 0.0, 1), (5, 0.0, 5), ("off", 0.25, 1),
                                              ("auto", 0.25, 4), ("auto", 0.05, 16),
                                              (3, 0.5, 2), ("auto", 1.0, 1), (8, 2.0, 1)])
def test_a_ray_pack_asks_its_runs_gpu_shares_together(pack, gpus: float, size: int) -> None:
    """A pack asks P x --gpus-per-run, so P is at most the runs one GPU holds."""
    engine = RayEngine(None, None, None, None, RayOptions(None, 1.0, gpus), pack=pack)
    assert engine.pack_size == size
