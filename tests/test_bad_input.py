"""Bad input is reported before any training: a usage error naming the value and what to do.

Also the output folders: a read-only or full one gives a clear error and leaves the MLflow
store intact.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import EXPERIMENTS

from normcheck.options import add_options
from normcheck.settings import SessionError, SessionOptions

pytest_plugins = ["pytester"]

GRIDS = {
    "zero_lr.toml": 'extends = "quick"\n[grid]\nlr = [0.01, 0]\n',
    "negative_lr.toml": 'extends = "quick"\n[grid]\nlr = [0.01, -0.001]\n',
    "layer_norm.toml": 'extends = "quick"\n[grid]\nnorm = ["none", "batchnorm", "layer"]\n',
    "no_units.toml": 'extends = "quick"\n[grid]\nfc_units = [0]\n',
    "empty.toml": 'extends = "quick"\n[grid]\nlr = []\n',
    "broken.toml": 'extends = "quick"\n[grid]\nlr = [0.01,\nfc_units = [8]\n',
    "no_seeds.toml": 'extends = "quick"\n[replicates]\nseeds = 0\n',
    "no_high_lr.toml": 'extends = "quick"\n[grid]\nlr = [0.003, 0.001]\n',
    "one_lr.toml": 'extends = "quick"\n[grid]\nlr = [0.01]\n',
    "bn_only.toml": 'extends = "quick"\n[grid]\nnorm = ["batchnorm"]\n',
    "one_width.toml": 'extends = "quick"\n[grid]\nfc_units = [64]\n',
    "big_dropout.toml": 'extends = "quick"\n[grid]\ndropout = [0.0, 1.0]\n',
}


OPTION_AND_GRID_ERRORS = [
    (("--grid", "fast"), "argument --grid: unknown grid 'fast': use a profile name (dropout, full, norms, quick)"),
    (("--grid", "zero_lr.toml"), "lr=0.0 is invalid: use a positive number"),
    (("--grid", "negative_lr.toml"), "lr=-0.001 is invalid: use a positive number"),
    (("--grid", "layer_norm.toml"), "norm='layer' is invalid: use one of ['none', 'batchnorm', 'layernorm', 'groupnorm']"),
    (("--grid", "no_units.toml"), "fc_units=0 is invalid: use an integer >= 1"),
    (("--grid", "empty.toml"), "grid.lr=[] must be a non-empty list"),
    (("--grid", "broken.toml"), "broken.toml: malformed TOML: "),
    (("--grid", "no_seeds.toml"), "seeds=0 is invalid: use an integer >= 1"),
    (("--seeds", "0"), "argument --seeds: '0' is neither an integer >= 1 nor auto"),
    (("--seeds", "many"), "argument --seeds: 'many' is neither an integer >= 1 nor auto"),
    (("--grid", "no_high_lr.toml"), "H2 needs lr=0.01 and a lower lr; the grid has lr=[0.003,"),
    (("--grid", "one_lr.toml"), "H3 needs two or more learning rates; the grid has lr=[0.01]"),
    (("--grid", "bn_only.toml"), "every hypothesis compares a normalisation with norm='none'; the grid has norm=['batchnorm']"),
    (("--grid", "one_width.toml"), "H4 needs two or more fc_units; the grid has fc_units=[64]"),
    (("--grid", "big_dropout.toml"), "dropout=1.0 is invalid: use a number in [0, 1)"),
    (("--expect-verdicts", "nowhere.toml"), "--expect-verdicts: nowhere.toml: cannot read"),
    (("--engine", "ray", "-n", "2"), "--engine ray with -n 2: with Ray the pytest process is the "
                                     "driver and the cluster trains in parallel; drop -n"),
    (("--engine", "ray", "--ray-address", "127.0.0.1:9"), "a cluster's nodes cannot write this "
                                                          "machine's SQLite file"),
    (("--seeds", "auto", "--max-seeds", "2"), "--seeds auto: a design needs 1 <= first (10) <= "
                                             "max_seeds (2) and round >= 1 (5); pass --first"),
    (("--cpus-per-run", "0"), "argument --cpus-per-run: '0' is not a number > 0"),
    (("--gpus-per-run", "-1"), "argument --gpus-per-run: '-1' is not a number >= 0"),
]


@pytest.mark.parametrize("args, message", OPTION_AND_GRID_ERRORS)
def test_bad_options_and_grids_are_refused_when_parsed(tmp_path: Path, monkeypatch, capsys,
                                                       args: tuple, message: str) -> None:
    """In-process: the options as pytest or the command line parse them, then checked."""
    monkeypatch.chdir(tmp_path)
    for name, text in GRIDS.items():
        (tmp_path / name).write_text(text)
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument)
    parser.add_argument("-n", type=int, default=0)
    try:
        parsed = parser.parse_args(list(args))
        SessionOptions.parse(parsed, [EXPERIMENTS], workers=parsed.n)
    except SystemExit:
        said = capsys.readouterr().err
    except SessionError as exc:
        said = str(exc)
    else:
        pytest.fail(f"{args} was accepted")
    assert message in said


@pytest.mark.parametrize("args, message", [
    (("--grid", "zero_lr.toml"), "lr=0.0 is invalid: use a positive number"),
    (("--grid", "one_width.toml"), "H4 needs two or more fc_units; the grid has fc_units=[64]"),
    (("--data-dir", "/no/such/folder"), "data: /no/such/folder: data folder does not exist"),
    (("--mlflow-uri", "http://127.0.0.1:9"), "MLflow tracking server http://127.0.0.1:9 cannot "
                                             "be reached"),
    (("--report-dir", "blocker/out"), "blocker/out cannot be written"),
    (("--claims-db", "mysql://u:pw@h/db"), "--claims-db mysql://u:***@h/db: not a "
                                           "postgresql:// URI"),
])
def test_bad_input_is_a_usage_error_before_training(suite, args: tuple, message: str) -> None:
    """Whole sessions: the exit code, and what needs the session's start (data, store,
    folders, claims)."""
    for name, text in GRIDS.items():
        (suite.path / name).write_text(text)
    (suite.path / "blocker").write_text("a file where the report folder should be")
    started = time.monotonic()
    result = suite(*args)
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert message in result.stderr.str()
    assert not (suite.path / "out" / "metrics.csv").exists()
    assert elapsed < 120  # seconds, not MLflow's minutes of retries or an hour of training


def test_malformed_toml_names_file_and_line(suite) -> None:
    (suite.path / "broken.toml").write_text(GRIDS["broken.toml"])
    result = suite("--grid", "broken.toml")
    assert "broken.toml: malformed TOML: " in result.stderr.str()
    assert "line 4" in result.stderr.str()


def _mount(size: str, options: str, where: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},size={size}", "normcheck-test",
                    str(where)], check=True, capture_output=True)


@pytest.fixture
def small_folder(tmp_path: Path):
    """Mount a tmpfs with the given options (root only); unmounted afterwards."""
    mounted = []

    def make(name: str, size: str, options: str = "rw") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        try:
            _mount(size, options, folder)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a small file system here ({exc})")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def read_only_folder(folder: Path, make) -> Path:
    """A folder this process cannot write: chmod for a user, a read-only mount for root."""
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return make(folder.name, "1m", "ro")


def test_read_only_report_folder_fails_before_training(suite, small_folder) -> None:
    suite.with_empty_store()
    folder = read_only_folder(suite.path / "readonly", small_folder)
    result = suite("--report-dir", str(folder), "-n", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"report folder {folder} cannot be written (Read-only file system" in \
        result.stderr.str() or "Permission denied" in result.stderr.str()
    assert suite.runs() == []  # nothing trained, store untouched


def test_read_only_store_folder_fails_before_training(suite, small_folder) -> None:
    folder = read_only_folder(suite.path / "readonly", small_folder)
    result = suite("--mlflow-uri", f"sqlite:///{folder}/mlflow.db", "-n", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"sqlite:///{folder}/mlflow.db is read-only" in result.stderr.str()


def test_full_report_folder_keeps_the_store_and_says_how_to_rebuild(suite, small_folder,
                                                                     tmp_path: Path) -> None:
    suite.with_empty_store()
    suite.with_empty_store()
    folder = small_folder("full", "48k")  # room for the CSV files, not for the figures
    result = suite("--report-dir", str(folder), "-n", "0", "-k", "test_configuration")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    text = result.stdout.str()
    assert f"REPORT NOT WRITTEN: reports could not be written to {folder} (No space left" in text
    assert "every file there is whole, old or new" in text
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no half-written file
    for csv in folder.glob("*.csv"):  # those that fitted are complete
        assert len(pd.read_csv(csv)) in (4, 8)
    runs = suite.runs()
    assert len(runs) == 8 and all(r["status"] == "FINISHED" for r in runs)
    # the command it prints rebuilds the reports from the intact store
    command = shlex.split(text.split("rebuild the reports with: ")[1].splitlines()[0])
    out = tmp_path / "rebuilt"
    command[command.index("--report-dir") + 1] = str(out)
    rebuilt = subprocess.run([sys.executable, *command[1:]], cwd=suite.path, capture_output=True,
                             text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(pd.read_csv(out / "metrics.csv")) == 8
    shutil.rmtree(out)
