"""The CI workflow a user can copy: valid YAML that runs what the README says CI runs."""

import configparser
from pathlib import Path

import pytest
import yaml

from normcheck.data import default_cache_dir

ROOT = Path(__file__).parents[1]


def test_the_workflow_runs_the_unit_tests_and_the_regression_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NORMCHECK_CACHE", raising=False)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    commands = [s.get("run", "") for s in steps]
    assert "tox -e unit" in commands and "tox -e quick" in commands
    assert "tox -e record" in commands
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert Path(cache["with"]["path"]).expanduser() == default_cache_dir() / "cifar10"
    envs = configparser.ConfigParser()
    envs.read(ROOT / "tox.ini")
    for env in ("unit", "quick", "record"):
        assert f"testenv:{env}" in envs
    assert "--expect-verdicts experiments/recorded_verdicts.toml" in envs["testenv:quick"]["commands"]
    assert "--record-verdicts experiments/recorded_verdicts.toml" in envs["testenv:record"]["commands"]
