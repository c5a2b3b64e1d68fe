"""The grid on a real two-node Ray cluster, runs in a real MLflow server on a real PostgreSQL,
each configuration claimed in PostgreSQL: all on loopback, started here, stopped by pid.

Needs the ``cluster`` extra and Debian's PostgreSQL; without them these tests skip, unless
``NORMCHECK_REQUIRE_CLUSTER=1`` (CI), where a missing part is a failure.
"""

import re
import signal
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from helpers import EngineContract, by_hash
from services import MlflowServer, Postgres, RayCluster, free_port, require_cluster_parts

from normcheck.cluster import RayEngine, RayOptions

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.integration]

SLOW_GRID = """
extends = "quick"
description = "tiny synthetic grid, runs long enough to be interrupted"
[grid]
fc_units = [4, 8]
[train]
epochs = 8
base_channels = 2
[replicates]
seeds = 1
"""
IGNORED = ["train_seconds", "mlflow_run_id"]  # differ between any two sessions


@pytest.fixture(scope="module")
def postgres():
    require_cluster_parts()
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), postgres.create_database("mlflow"))
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def ray_cluster():
    require_cluster_parts()
    cluster = RayCluster((1, 1))
    yield cluster
    cluster.stop()


@pytest.fixture
def on_cluster(suite, postgres, mlflow_server, ray_cluster, monkeypatch):
    """The tiny suite, its runs in a fresh experiment of the MLflow server, its claims in
    PostgreSQL, with the Ray cluster's token in the environment."""
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    suite.uri, suite.experiment = mlflow_server.uri, f"t-{uuid.uuid4().hex[:8]}"
    suite.claims = postgres.uri()
    (suite.path / "slow.toml").write_text(SLOW_GRID)
    return suite


def ray_args(suite, cluster: RayCluster, *args: str) -> list[str]:
    return ["--engine", "ray", "--ray-address", cluster.address, "--claims-db", suite.claims,
            *args]


def metrics(path: Path) -> pd.DataFrame:
    return pd.read_csv(path / "metrics.csv").drop(columns=IGNORED)


def test_two_ray_drivers_share_the_work_and_match_local(on_cluster, ray_cluster,
                                                       postgres) -> None:
    """Two drivers at once train each configuration once between them, on both nodes, with
    the metrics a local session gets in the same thread layout (two local workers of one
    thread each on this 2-core machine, Ray tasks asking for one CPU each)."""
    on_cluster("-n", "2", "--claims-db", on_cluster.claims, "test_grid.py").assert_outcomes(
        passed=8)
    local = metrics(on_cluster.path / "out")
    (study,) = on_cluster.studies()  # the study in the server, every run under it
    assert {r["tags"]["mlflow.parentRunId"] for r in on_cluster.runs()} == {study["id"]}
    on_cluster.experiment += "-ray"
    drivers = [on_cluster.start(*ray_args(on_cluster, ray_cluster, "--report-dir", f"ray{i}",
                                          "--inconclusive", "warn", "test_grid.py",
                                          "test_hypotheses.py"),
                                env={"NORMCHECK_CACHE": str(on_cluster.path / f"cache{i}")})
               for i in range(2)]
    outputs = [d.communicate(timeout=600)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    runs = on_cluster.runs()
    assert len(runs) == 8 and all(s == ["FINISHED"] for s in by_hash(runs).values())
    # two drivers ending at once write one study run: its verdicts and report, every run
    (study,) = on_cluster.studies()
    assert {study["tags"][f"verdict.H{i}"] for i in range(1, 6)} == {"inconclusive"}
    assert {"H1.estimate", "H1.p_adjusted"} <= set(study["metrics"])
    assert {"report.md", "figures/heatmap_none.png"} <= set(study["artifacts"])
    assert all(len(values) == 1 for values in study["history"].values())
    assert {r["tags"]["mlflow.parentRunId"] for r in runs} == {study["id"]}
    trained = [int(o.split("trained ")[1].split()[0].rstrip(",")) for o in outputs]
    assert sum(trained) == 8, outputs
    assert all("MLflow: http://127.0.0.1" in o for o in outputs)
    for i in range(2):
        pd.testing.assert_frame_equal(metrics(on_cluster.path / f"ray{i}"), local)
    assert {r["tags"]["normcheck.ray_node"] for r in runs} == {"127.0.0.2", "127.0.0.3"}
    # the PostgreSQL password is in no output, report or MLflow run
    texts = outputs + [p.read_text(errors="replace") for i in range(2)
                       for p in (on_cluster.path / f"ray{i}").iterdir() if p.is_file()]
    texts += [str(r["params"]) + str(r["tags"]) for r in runs]
    assert postgres.password in on_cluster.claims
    assert not [t for t in texts if postgres.password in t]
    assert postgres.advisory_locks() == 0


def test_a_worker_node_killed_mid_grid(on_cluster, ray_cluster, mlflow_server) -> None:
    """A node that joined the cluster for this test is killed mid-grid: its runs end FAILED,
    the driver says which, the rerun trains them on the nodes left; the runs that had
    finished are kept."""
    node = ray_cluster.add_node(1)
    address = f"127.0.0.{len(ray_cluster.nodes) + 1}"  # as add_node numbers them
    driver = on_cluster.start(*ray_args(on_cluster, ray_cluster, "--grid", "slow.toml",
                                        "test_grid.py"))
    before = mlflow_server.wait_for_runs(on_cluster.experiment, lambda runs: any(
        r["status"] == "FINISHED" for r in runs) and any(
        r["status"] == "RUNNING" and r["tags"].get("normcheck.ray_node") == address
        for r in runs))
    node.kill()
    output = driver.communicate(timeout=600)[0]
    assert driver.returncode == 1, output
    assert "its Ray task failed" in output and "Run the session again" in output
    runs = on_cluster.runs()
    lost = [r for r in runs if r["tags"].get("normcheck.ray_node") == address
            and r["status"] != "FINISHED"]
    assert lost and all(r["status"] == "FAILED" and "normcheck.stale" in r["tags"]
                        for r in lost)
    finished = {r["id"] for r in runs if r["status"] == "FINISHED"}
    assert {r["id"] for r in before if r["status"] == "FINISHED"} <= finished
    rerun = on_cluster.start(*ray_args(on_cluster, ray_cluster, "--grid", "slow.toml",
                                       "test_grid.py"))
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output
    assert f"runs: reused {len(finished)}, trained {8 - len(finished)}" in output


def test_a_killed_driver_frees_its_claims(on_cluster, ray_cluster, postgres,
                                          mlflow_server) -> None:
    driver = on_cluster.start(*ray_args(on_cluster, ray_cluster, "--grid", "slow.toml",
                                        "test_grid.py"))
    mlflow_server.wait_for_runs(on_cluster.experiment,
                                lambda runs: any(r["status"] == "RUNNING" for r in runs))
    assert postgres.advisory_locks() > 0
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 30
    while postgres.advisory_locks() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postgres.advisory_locks() == 0
    time.sleep(3)  # Ray stops the dead driver's tasks: no run of it may finish now
    left = on_cluster.runs()
    rerun = on_cluster(*ray_args(on_cluster, ray_cluster, "--grid", "slow.toml",
                                 "test_grid.py"))
    rerun.assert_outcomes(passed=8)
    done = sum(r["status"] == "FINISHED" for r in left)
    rerun.stdout.fnmatch_lines([f"*runs: reused {done}, trained {8 - done}*"])
    runs = by_hash(on_cluster.runs())
    assert len(runs) == 8 and all(statuses.count("FINISHED") == 1 for statuses in runs.values())


@pytest.mark.parametrize("case", ["ray unreachable", "postgres down", "wrong password"])
def test_usage_errors_before_anything_trains(case, on_cluster, postgres) -> None:
    args = {"ray unreachable": ["--engine", "ray", "--ray-address", f"127.0.0.1:{free_port()}"],
            "postgres down": ["--claims-db", f"postgresql://normcheck:x@127.0.0.1:{free_port()}"
                                             "/postgres"],
            "wrong password": ["--claims-db", postgres.uri(password="not-the-password")]}[case]
    expected = {"ray unreachable": "*no Ray cluster reachable there*",
                "postgres down": "*cannot be used for claims*refused*",
                "wrong password": "*cannot be used for claims*password authentication failed*"}
    started = time.monotonic()
    result = on_cluster(*args)
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected[case]])
    assert "not-the-password" not in result.stderr.str() + result.stdout.str()
    assert on_cluster.runs() == []
    print(f"{case}: usage error after {elapsed:.1f} s")


def test_postgres_claims_are_exclusive_and_die_with_their_connection(postgres) -> None:
    from normcheck.claims import ClaimsError, PostgresClaims

    first = PostgresClaims(postgres.uri(), "experiment 1")
    second = PostgresClaims(postgres.uri(), "experiment 1")
    elsewhere = PostgresClaims(postgres.uri(), "experiment 2")
    assert first.try_claim("abc") and not second.try_claim("abc")
    assert elsewhere.try_claim("abc")  # another experiment's configuration
    first.release("abc")
    assert second.try_claim("abc") and not first.try_claim("abc")
    second._conn.close()  # as a killed process's connection drops, without unlocking
    deadline = time.monotonic() + 10  # the server frees its locks once the backend notices
    while not first.try_claim("abc"):
        assert time.monotonic() < deadline, "a dropped connection's claim was never freed"
        time.sleep(0.05)
    first.close()  # a clean close frees its claims at once
    third = PostgresClaims(postgres.uri(), "experiment 1")
    assert third.try_claim("abc")
    for claims in (third, elsewhere):
        claims.close()
    with pytest.raises(ClaimsError, match=r"normcheck:\*\*\*@.*password authentication failed"):
        PostgresClaims(postgres.uri(password="wrong"), "experiment 1")


def test_two_runs_logging_one_new_dataset_at_once_both_get_it(postgres, mlflow_server) -> None:
    """MLflow's server looks a run's dataset up and inserts it if missing in one transaction,
    so two workers starting their first runs at once can both miss it: the second insert
    breaks the unique key (seen in CI). Built here for certain: another transaction inserts the
    dataset and commits only once the server's own insert is waiting for it."""
    import threading

    import psycopg

    from normcheck.tracking import DataInput, Tracker

    tracker = Tracker.open(mlflow_server.uri, f"t-{uuid.uuid4().hex[:8]}")
    data = DataInput("cat,dog,horse (seed)", uuid.uuid4().hex[:16], "batches:/data")
    rival = psycopg.connect(postgres.uri("mlflow"))
    rival.execute("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, "
                  "dataset_source_type, dataset_source) VALUES (%s, %s, %s, %s, 'local', %s)",
                  (uuid.uuid4().hex, int(tracker.experiment_id), data.name, data.digest,
                   "/data"))

    def commit_once_the_server_waits() -> None:
        with psycopg.connect(postgres.uri("mlflow"), autocommit=True) as watch:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO datasets%%'").fetchone()[0]:
                time.sleep(0.05)
        rival.commit()

    rival_commits = threading.Thread(target=commit_once_the_server_waits)
    rival_commits.start()
    run_id = tracker.start_run("raced", {"lr": 0.01}, {"normcheck.config_hash": "raced"}, data)
    rival_commits.join()
    rival.close()
    run = tracker.client.get_run(run_id)
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [data.digest]
    with psycopg.connect(postgres.uri("mlflow")) as conn:
        assert conn.execute("SELECT count(*) FROM datasets WHERE digest = %s",
                            (data.digest,)).fetchone()[0] == 1


def test_rounds_of_replicates_on_the_cluster(on_cluster, ray_cluster) -> None:
    """``--seeds auto`` with Ray: each round is submitted whole once the look before it says it
    is needed, and the study stops where the local engine's would."""
    result = on_cluster(*ray_args(on_cluster, ray_cluster, "test_grid.py", "test_hypotheses.py",
                                  "--inconclusive", "warn", "--seeds", "auto", "--first", "3",
                                  "--round", "3", "--max-seeds", "6"))
    out = result.stdout.str()
    stopped = int(re.search(r"stopped after (\d+) replicates", out).group(1))
    assert f"runs: reused 0, trained {8 * stopped}" in out
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 8 * stopped + 5  # the grid's runs used, and H1-H5
    assert outcomes.get("skipped", 0) == 8 * (6 - stopped)


def test_a_ray_task_trains_a_pack(on_cluster, ray_cluster) -> None:
    """``--pack 4`` with Ray: the claimed runs go out as packs of one architecture (the tiny
    grid's 8 runs are 4 architectures of 2 learning rates), one task each, each run its own
    MLflow run and case."""
    result = on_cluster(*ray_args(on_cluster, ray_cluster, "--pack", "4", "test_grid.py"))
    result.assert_outcomes(passed=8)
    runs = on_cluster.runs()
    assert len(runs) == 8 and all(s == ["FINISHED"] for s in by_hash(runs).values())
    assert {r["tags"]["normcheck.pack"] for r in runs} == {"2"}
    assert "runs: reused 0, trained 8" in result.stdout.str()


class TestRayEngine(EngineContract):
    """The engines' contract (tests/helpers.py) on Ray, its runs in the MLflow server: Ray
    started by the engine on this machine (in this test process; the two-node cluster's token
    is read when Ray is imported, so the whole sessions above test that cluster)."""

    @pytest.fixture
    def store_uri(self, mlflow_server, monkeypatch) -> str:
        for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        return mlflow_server.uri

    def make(self, results, splits, tracker, claims):
        return RayEngine(results, splits, tracker, claims, RayOptions(None))
