"""Real servers for the cluster tests, on loopback: PostgreSQL, an MLflow tracking server on it,
and Ray nodes. Each runs in its own process group, started here and stopped by its process id.

PostgreSQL is Debian's package (``apt-get install postgresql``): ``initdb`` in a temporary
folder, then ``postgres`` in the foreground. It refuses to run as root, so as root both run as
the ``postgres`` user (``setpriv`` keeps the process id ours to stop).
"""

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_cluster_parts() -> None:
    """Skip a test that needs the ``cluster`` extra and Debian's PostgreSQL where they are
    missing; fail it instead under ``NORMCHECK_REQUIRE_CLUSTER=1`` (CI)."""
    import importlib.util


    missing = [name for name in ("ray", "psycopg") if importlib.util.find_spec(name) is None]
    if postgres_bin() is None:
        missing.append("PostgreSQL (apt-get install postgresql)")
    if missing:
        lacking(f"cluster tests need {', '.join(missing)} (pip install -e '.[test,cluster]')",
                "NORMCHECK_REQUIRE_CLUSTER")


def require_chromium() -> str:
    """Debian's Chromium (or another Chromium or Chrome on the path); skip without it, fail
    under ``NORMCHECK_REQUIRE_BROWSER=1`` (CI, once it has installed it)."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
    if found is None:
        lacking("the browser test needs Chromium (apt-get install chromium)",
                "NORMCHECK_REQUIRE_BROWSER")
    return found


def lacking(why: str, required_by: str) -> None:
    """A part a test needs is missing: skip it, or fail it where ``required_by`` is 1."""
    import pytest

    if os.environ.get(required_by) == "1":
        pytest.fail(why)
    pytest.skip(why)


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Process:
    """A server in its own process group, stopped by its process id (and started again with
    the same command: ``start``)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log, self.env = args, log, env
        self.start("wb")

    def start(self, mode: str = "ab") -> None:
        """Start the command (again), its output added to the log."""
        self.proc = subprocess.Popen(self.args, stdout=self.log.open(mode),
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})},
                                     start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{what} did not start; its log {self.log}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the whole group: the server and every process it started."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, grace: float = 10, how: signal.Signals = signal.SIGTERM) -> None:
        """``how`` (SIGTERM) to the group, SIGKILL to what is left after ``grace`` seconds."""
        if self.alive():
            os.killpg(self.pid, how)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Postgres:
    """A PostgreSQL server on 127.0.0.1 with password authentication, in a temporary folder
    (under /tmp: the ``postgres`` user must reach it)."""

    def __init__(self, user: str = "normcheck") -> None:
        pg = postgres_bin()
        if pg is None:
            raise ServiceError("PostgreSQL is not installed (apt-get install postgresql)")
        self.user, self.password, self.port = user, secrets.token_hex(12), free_port()
        self.folder = folder = Path(tempfile.mkdtemp(prefix="nc-pg-"))
        run_as = []
        if os.geteuid() == 0:
            run_as = ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups"]
            shutil.chown(folder, "postgres")
        pwfile = folder / "pw"
        pwfile.write_text(self.password)
        if run_as:
            shutil.chown(pwfile, "postgres")
        initdb = subprocess.run([*run_as, str(pg / "initdb"), "-D", str(folder / "data"), "-U",
                                 user, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E",
                                 "UTF8"], capture_output=True, text=True)
        pwfile.unlink()
        if initdb.returncode:
            raise ServiceError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
        self.process = Process([*run_as, str(pg / "postgres"), "-D", str(folder / "data"),
                                "-h", "127.0.0.1", "-p", str(self.port), "-k", str(folder)],
                               folder / "postgres.log")
        self._wait()

    def _wait(self) -> None:
        self.process.wait_for(lambda: listening(self.port) and self._accepts(), "PostgreSQL")

    def pause(self) -> None:
        """Stop the server, keeping its data: a fast shutdown (SIGINT), which, unlike SIGTERM,
        does not wait for its clients to disconnect."""
        self.process.stop(how=signal.SIGINT)

    def resume(self) -> None:
        """Start the paused server again, on the same port and data."""
        self.process.start()
        self._wait()

    def _accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.uri(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def uri(self, database: str = "postgres", password: str | None = None) -> str:
        """The database's URI with the password (or ``password``) in it."""
        return (f"postgresql://{self.user}:{password or self.password}@127.0.0.1:{self.port}/"
                f"{database}")

    def bare_uri(self, database: str = "postgres") -> str:
        """The URI without a password: clients read it from ``PGPASSWORD``."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def advisory_locks(self) -> int:
        """Advisory locks held now, by anyone."""
        import psycopg

        with psycopg.connect(self.uri()) as conn:
            return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND granted").fetchone()[0]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1, its runs in a PostgreSQL database."""

    def __init__(self, folder: Path, backend_uri: str) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        backend = backend_uri.replace("postgresql://", "postgresql+psycopg://", 1)
        # the store URI (with its password) goes through the environment, not the command line
        self.process = Process([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                                str(self.port), "--workers", "1", "--artifacts-destination",
                                str(folder / "artifacts")], folder / "mlflow.log",
                               env={"MLFLOW_BACKEND_STORE_URI": backend,
                                    "MLFLOW_DISABLE_TELEMETRY": "true",
                                    # its job runner (GenAI jobs, unused here) starts 7 more
                                    # processes
                                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        self._wait()

    def _wait(self) -> None:
        self.process.wait_for(self._healthy, "the MLflow server", timeout=120)

    def pause(self) -> None:
        """Stop the server (its runs stay in the database)."""
        self.process.stop()

    def resume(self) -> None:
        """Start the paused server again, on the same port and database."""
        self.process.start()
        self._wait()

    def wait_for_runs(self, experiment: str, ready, timeout: float = 120) -> list[dict]:
        """Poll the experiment's runs until ``ready(runs)``; return them."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = self.runs(experiment)
            if ready(runs):
                return runs
            time.sleep(0.5)  # each poll is a search the server answers: leave it CPU to train
        raise AssertionError(f"runs never reached the state wanted: {runs}")

    def runs(self, experiment: str) -> list[dict]:
        """The experiment's runs as {"id", "status", "tags"}, through the REST API: quick
        enough to poll while a session trains."""
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        def call(path: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(
                f"{self.uri}/api/2.0/mlflow/{path}", data=json.dumps(body).encode()
                if body else None, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())

        try:
            found = call("experiments/get-by-name?experiment_name="
                         + urllib.parse.quote(experiment))
        except urllib.error.HTTPError:
            return []
        runs = call("runs/search", {"experiment_ids": [found["experiment"]["experiment_id"]],
                                    "max_results": 1000}).get("runs", [])
        return [{"id": r["info"]["run_id"], "status": r["info"]["status"],
                 "tags": {t["key"]: t["value"] for t in r["data"].get("tags", [])}}
                for r in runs]

    def _healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


class RayCluster:
    """A Ray head and worker nodes on one host, with token authentication.

    A multi-node Ray cluster refuses 127.0.0.1 as a node address, so nodes take 127.0.0.2,
    127.0.0.3, ... (loopback too). Ray binds its ports on every interface for such addresses;
    the token keeps strangers out.
    """

    def __init__(self, cpus: tuple[int, ...] = (1, 1)) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="nc-ray-"))  # short: Ray's socket paths
        self.port = free_port()
        self.token = secrets.token_hex(32)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.address = f"127.0.0.2:{self.port}"
        self.nodes: list[Process] = []
        try:
            for cpu in cpus:
                self.add_node(cpu)
        except BaseException:
            self.stop()
            raise

    def add_node(self, cpus: int) -> Process:
        """Start a node (the first is the head) and wait until it has joined."""
        index = len(self.nodes)
        common = ["--block", "--node-ip-address", f"127.0.0.{index + 2}", "--num-cpus",
                  str(cpus), "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
        if index == 0:
            args = ["--head", "--port", str(self.port), "--include-dashboard", "false",
                    "--temp-dir", str(self.folder)]
        else:
            args = ["--address", self.address]
        log = self.folder / f"node{index}.log"
        node = Process([str(BIN / "ray"), "start", *args, *common], log, env=self.env)
        self.nodes.append(node)
        node.wait_for(lambda: b"block forever" in log.read_bytes(), f"Ray node {index}")
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()  # SIGTERM would drain for 30 s
        shutil.rmtree(self.folder, ignore_errors=True)
