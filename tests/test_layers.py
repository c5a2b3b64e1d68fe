"""The layers hold: import-linter's contract in pyproject.toml passes, fails when a lower layer
imports an upper one, and an xdist worker joining a session on a server store loads no torch."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from helpers import EXPERIMENTS

ROOT = Path(__file__).parents[1]
LINT = Path(sysconfig.get_path("scripts")) / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT)], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_layer_contract_is_kept() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_lower_layer_importing_an_upper_one_breaks_it(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "normcheck", tmp_path / "normcheck")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    stats = tmp_path / "normcheck" / "stats.py"
    stats.write_text(stats.read_text() + "\nfrom normcheck import session  # noqa\n")
    out = lint(tmp_path)
    assert out.returncode != 0 and "normcheck.stats is not allowed to import" in out.stdout


JOIN = """
import argparse, sys
from normcheck.options import add_options
from normcheck.session import StudySession
from normcheck.settings import SessionOptions
parser = argparse.ArgumentParser()
add_options(parser.add_argument)
args = parser.parse_args(["--grid", "quick", "--mlflow-uri", "http://127.0.0.1:9"])
session = StudySession(SessionOptions.parse(args, [sys.argv[1]], workers=2))
session.join({"results_dir": sys.argv[2], "experiment_id": "1",
              "fingerprints": {"42": "f" * 16}}, 0, 2)
session.plan.cases()
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_a_worker_joining_a_server_store_loads_no_torch(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", JOIN, str(EXPERIMENTS), str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                              "NORMCHECK_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
