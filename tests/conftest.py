"""Tiny synthetic data sets in each source format, for tests that must not need real CIFAR-10,
and the experiment suite run as users run it: a pytest subprocess on a tiny grid."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from warm import Warm

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def synthetic_images(n: int, label: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 images: noise around a class-specific colour, so classes are learnable."""
    rng = np.random.default_rng(seed)
    base = np.array([(label * 85) % 256, (label * 40 + 60) % 256, (255 - label * 70) % 256])
    noise = rng.integers(-60, 60, size=(n, 32, 32, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_batches(folder: Path, train_per_class: int, test_per_class: int,
                  classes: tuple[int, ...] = (3, 5, 7)) -> Path:
    """A synthetic ``cifar-10-batches-py`` folder with images only for ``classes``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES}, f)

    def batch(per_class: int, seed: int) -> dict:
        images = [synthetic_images(per_class, c, seed + c) for c in classes]
        data = np.concatenate(images).transpose(0, 3, 1, 2).reshape(-1, 3072)
        labels = [c for c in classes for _ in range(per_class)]
        order = np.random.default_rng(seed).permutation(len(labels))
        return {"data": data[order], "labels": [labels[i] for i in order]}

    per_batch = -(-train_per_class // 5)
    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("wb") as f:
            pickle.dump(batch(per_batch, seed=i * 100), f)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(batch(test_per_class, seed=999), f)
    return folder


def write_image_folder(root: Path, train_per_class: int, test_per_class: int,
                       classes: tuple[str, ...] = ("cat", "dog", "horse"),
                       suffix: str = ".png") -> Path:
    """A synthetic ``train/<class>/*`` and ``test/<class>/*`` tree."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(synthetic_images(count, label, seed=label + len(split))):
                Image.fromarray(image).save(folder / f"{i:04d}{suffix}")
    return root


@pytest.fixture(scope="session")
def seed_batches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough synthetic images for the ``seed`` protocol (960 train and 160 test per class)."""
    return write_batches(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py", 1000, 170)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


EXPERIMENTS = Path(__file__).parents[1] / "experiments"
TINY_GRID = """
extends = "quick"
description = "tiny synthetic grid"
[grid]
fc_units = [4, 8]
[train]
epochs = 1
base_channels = 2
[replicates]
seeds = 1
"""


def _interruptible() -> None:
    """In the child before it starts: SIGINT back to its default, as in a terminal. A shell
    starts background jobs (``cmd &``, ``nohup``: CI's launcher, say) with SIGINT ignored, the
    children inherit that, and Python then installs no KeyboardInterrupt handler, so Ctrl-C
    would be ignored and the Ctrl-C test would see the session run to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cold:
    """``Warm``'s way of starting ``python argv...``, as a fresh interpreter."""

    def popen(self, argv: list[str], cwd: Path, env: dict[str, str], **streams: int
              ) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, text=True,
                                preexec_fn=_interruptible, **streams)


@pytest.fixture(scope="session")
def warm(tmp_path_factory: pytest.TempPathFactory):
    """How this test process starts the suite's sessions: forked from its warm server
    (``warm.py``), which has imported torch and MLflow. ``NORMCHECK_TESTS_COLD=1``: each a
    fresh interpreter, to check that the two give the same results."""
    if os.environ.get("NORMCHECK_TESTS_COLD") == "1":
        yield Cold()
        return
    server = Warm(tmp_path_factory.mktemp("warm"))
    yield server
    server.stop()


class Suite:
    """A copy of the experiment suite in a pytester folder, on a tiny grid and synthetic data."""

    def __init__(self, pytester: pytest.Pytester, data: Path, store: Path,
                 launcher: Warm | Cold) -> None:
        self.launcher = launcher
        self.path = pytester.path
        self.uri = f"sqlite:///{self.path / 'mlflow.db'}"
        self.experiment = "normcheck"
        self.data = data
        self.store = store

    def with_empty_store(self) -> "Suite":
        """Start from a copy of an empty, already created store (creating one takes seconds)."""
        shutil.copy(self.store, self.path / "mlflow.db")
        return self

    def args(self, *args: str) -> list[str]:
        # without Hypothesis's plugin: it imports Hypothesis (seconds) to print a summary the
        # suite's sessions have no use for
        return ["--grid", "tiny.toml", "--data-dir", str(self.data), "--mlflow-uri", self.uri,
                "--experiment", self.experiment, "--report-dir", "out", "-p", "no:cacheprovider",
                "-p", "no:hypothesispytest", *args]

    def __call__(self, *args: str) -> pytest.RunResult:
        """Run the suite to the end in a subprocess (as ``runpytest_subprocess`` does: its
        own ``--basetemp`` in the folder, the output echoed)."""
        basetemp = tempfile.mkdtemp(prefix="runpytest-", dir=self.path)
        argv = ["-m", "pytest", f"--basetemp={basetemp}", *self.args(*args)]
        print(f"running: {sys.executable} {' '.join(argv)}\n     in: {self.path}")
        started = time.monotonic()
        process = self.launcher.popen(argv, self.path, self._env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"the session did not end within 600 s: {argv}")
        print(out, end="")
        print(err, end="", file=sys.stderr)
        return pytest.RunResult(process.returncode, out.splitlines(), err.splitlines(),
                                time.monotonic() - started)

    def start(self, *args: str, env: dict[str, str] | None = None) -> "subprocess.Popen":
        """Start the suite in a subprocess, its output (stdout and stderr) readable as lines;
        ``env`` adds to the environment."""
        return self.launcher.popen(["-m", "pytest", *self.args(*args)], self.path,
                                   {**self._env(), "PYTHONUNBUFFERED": "1", **(env or {})},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def _env(self) -> dict[str, str]:
        """The environment a subprocess gets: this process's, and this folder importable, as
        pytester gives its subprocesses."""
        path = os.pathsep.join(filter(None, [str(self.path), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path}

    def runs(self) -> list[dict]:
        """The experiment's training runs (the study's own run left out: ``studies``)."""
        return [r for r in self._read() if r["tags"].get("normcheck.kind") != "study"]

    def studies(self) -> list[dict]:
        """The experiment's study runs, each with its artifacts' paths and its metrics'
        histories (``history``: metric -> values logged)."""
        return [r for r in self._read(studies=True) if r["tags"].get("normcheck.kind") == "study"]

    def _read(self, studies: bool = False) -> list[dict]:
        """Read in another process, started as the sessions are (pytester resets imported
        modules, which leaves MLflow's SQLAlchemy half-imported if it is used in the test
        process)."""
        argv = ["-c", READ_RUNS, self.uri, self.experiment, str(int(studies))]
        process = self.launcher.popen(argv, self.path, self._env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        out, err = process.communicate(timeout=300)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, argv, out, err)
        return json.loads(out.splitlines()[-1])


READ_RUNS = """
import json, sys
from normcheck.tracking import Tracker
tracker = Tracker.open(sys.argv[1], sys.argv[2])

def listed(run_id, path=None):
    for f in tracker.client.list_artifacts(run_id, path):
        yield from listed(run_id, f.path) if f.is_dir else [f.path]

def extra(r):
    if sys.argv[3] == "0" or r.data.tags.get("normcheck.kind") != "study":
        return {}
    return {"artifacts": sorted(listed(r.info.run_id)),
            "history": {k: [m.value for m in tracker.client.get_metric_history(r.info.run_id, k)]
                        for k in r.data.metrics}}

print(json.dumps([{"id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                   "params": r.data.params, "tags": r.data.tags, "metrics": r.data.metrics,
                   "inputs": [d.dataset.digest for d in r.inputs.dataset_inputs], **extra(r)}
                  for r in tracker.runs()]))
"""


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables created and no runs."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    subprocess.run([sys.executable, "-c", "import sys; from normcheck.tracking import Tracker; "
                    "Tracker.open(sys.argv[1], 'normcheck')", f"sqlite:///{path}"], check=True,
                   capture_output=True)
    return path


@pytest.fixture
def suite(pytester: pytest.Pytester, seed_batches: Path, empty_store: Path,
          monkeypatch: pytest.MonkeyPatch, warm: Warm | Cold) -> Suite:
    """The experiment suite with a tiny grid (``tiny.toml``: 8 configurations, one replicate) in ``pytester``'s
    folder, and no MLflow store yet (``suite.with_empty_store()`` copies in an empty one). Test
    modules using it load the ``pytester`` plugin."""
    for path in EXPERIMENTS.glob("*.py"):
        (pytester.path / path.name).write_text(path.read_text())
    (pytester.path / "tiny.toml").write_text(TINY_GRID)
    monkeypatch.setenv("NORMCHECK_CACHE", str(pytester.path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Suite(pytester, seed_batches, empty_store, warm)


INTEGRATION_FIXTURES = {"suite", "trained_store", "store_uri"}  # whole sessions, trained stores


def pytest_configure(config: pytest.Config) -> None:
    """Each xdist worker keeps to its own share of the cores, and so does everything it starts
    (the suite's sessions, their workers, the servers): a session sees the cores it may use
    (``normcheck.device.cpu_count`` reads the affinity mask) and trains on as many threads.
    Unpinned, every one-process session took both cores' threads while the other worker's
    tests ran too, and the oversubscribed threads spent 1.6 times the CPU (the tiny grid beside
    a busy core: benchmarks/session_start.py)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cores, index, workers = sorted(os.sched_getaffinity(0)), int(worker[2:]), int(count)
    share = cores[index::workers] if workers <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, share)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run whole pytest sessions in subprocesses or train a store (the engines'
    contract: ``store_uri``) are marked ``integration``: ``pytest tests -m "not integration"``
    is the fast inner loop."""
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
