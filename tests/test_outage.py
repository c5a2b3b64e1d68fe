"""A tracking server that goes away while the grid trains: the MLflow server, and the PostgreSQL
server behind it, each stopped for about 40 s and started again, on loopback, by pid.

MLflow's client retries a failed request for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
backoff doubling from 2 s), so a session rides out such an outage and loses nothing. A store
that stays away past those retries stops the session, which names it; what had finished stays.
"""

import time

import pytest
from helpers import by_hash
from services import MlflowServer, Postgres, require_cluster_parts

pytest_plugins = ["pytester"]

OUTAGE_S = 40
OUTAGE_GRID = """
extends = "quick"
description = "tiny synthetic grid, 24 runs long enough to be interrupted twice"
[grid]
fc_units = [4, 8]
[train]
epochs = 4
base_channels = 2
[replicates]
seeds = 3
"""


@pytest.fixture
def postgres():
    require_cluster_parts()
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory):
    """Its own server (these tests stop it), its runs in a database of ``postgres``."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), postgres.create_database("mlflow"))
    yield server
    server.process.stop()


def finished(runs: list[dict]) -> int:
    return sum(r["status"] == "FINISHED" for r in runs)


def test_the_server_and_its_database_each_down_for_40_s_mid_grid(suite, mlflow_server,
                                                                  postgres) -> None:
    """24 runs on two workers: the MLflow server stopped for 40 s after the 4th run finished,
    then PostgreSQL after the 12th; every run ends FINISHED once and the session passes."""
    suite.uri = mlflow_server.uri
    (suite.path / "outage.toml").write_text(OUTAGE_GRID)
    session = suite.start("--grid", "outage.toml", "-n", "2", "test_grid.py")
    try:
        for after, part in ((4, mlflow_server), (12, postgres)):
            runs = mlflow_server.wait_for_runs(suite.experiment,
                                               lambda runs, n=after: finished(runs) >= n)
            assert finished(runs) < 24, f"the grid ended before {type(part).__name__} could be stopped"
            part.pause()
            time.sleep(OUTAGE_S)
            part.resume()
        output = session.communicate(timeout=600)[0]
    finally:
        session.kill()
    assert session.returncode == 0, output
    assert "runs: reused 0, trained 24" in output and "LOST" not in output
    runs = by_hash(suite.runs())
    assert len(runs) == 24 and all(statuses == ["FINISHED"] for statuses in runs.values()), runs


def test_a_server_gone_for_good_stops_the_session_which_names_it(suite, mlflow_server) -> None:
    """Past MLflow's retries (one here, to be quick) the session stops training, says which
    store was lost, keeps every run that had finished, and the next session trains the rest."""
    suite.uri = mlflow_server.uri
    session = suite.start("-n", "0", "test_grid.py", "test_hypotheses.py",
                          env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"})
    try:
        before = mlflow_server.wait_for_runs(suite.experiment, lambda runs: finished(runs) >= 2)
        mlflow_server.pause()
        output = session.communicate(timeout=300)[0]
    finally:
        session.kill()
    assert session.returncode == 1, output
    assert f"MLFLOW STORE LOST: MLflow tracking store {mlflow_server.uri} stopped answering" \
        in output, output
    assert output.count("Traceback") == 0 and output.count("StoreLost:") >= 1
    mlflow_server.resume()
    kept = {r["id"] for r in suite.runs() if r["status"] == "FINISHED"}
    assert {r["id"] for r in before if r["status"] == "FINISHED"} <= kept
    again = suite("test_grid.py")
    again.assert_outcomes(passed=8)
    again.stdout.fnmatch_lines([f"*runs: reused {len(kept)}, trained {8 - len(kept)}*"])
