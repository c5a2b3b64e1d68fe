"""The engines' contract on the local engine, and the Ray engine's checks that need no
cluster (the contract on a real cluster: test_cluster.py)."""

import sys
from pathlib import Path

import pytest
from helpers import EngineContract
from services import free_port

from normcheck.cluster import EngineError, RayOptions, connect
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
