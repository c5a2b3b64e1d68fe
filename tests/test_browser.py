"""The study as a user finds it in MLflow's UI: a real ``mlflow server`` on loopback on the
session's store, its pages rendered by headless Chromium (Debian's ``chromium``).

Without Chromium this skips, unless ``NORMCHECK_REQUIRE_BROWSER=1`` (CI, once it has installed
Chromium), where it fails.
"""

import json
import subprocess
import urllib.parse
import urllib.request

import pytest
from services import MlflowServer, require_chromium

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration


def rendered(browser: str, url: str) -> str:
    """The page's DOM once its scripts have run (MLflow's UI is a single-page app)."""
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=20000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120, check=True).stdout


def test_the_study_run_shows_its_verdicts_and_report_in_the_ui(suite, tmp_path) -> None:
    browser = require_chromium()
    suite.with_empty_store()
    result = suite("-n", "0", "--inconclusive", "warn")
    assert result.ret == 0, result.stdout.str()
    (study,) = suite.studies()
    server = MlflowServer(tmp_path / "server", suite.uri)
    try:
        query = urllib.parse.quote(suite.experiment)
        with urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/experiments/get-by-name?"
                                    f"experiment_name={query}", timeout=10) as answer:
            experiment = json.loads(answer.read())["experiment"]["experiment_id"]
        page = f"{server.uri}/#/experiments/{experiment}/runs/{study['id']}"
        overview = rendered(browser, page)
        assert study["name"] in overview, overview[-3000:]
        for key, verdict in study["tags"].items():
            if key.startswith("verdict."):
                assert key in overview and verdict in overview, key
        assert "Finished" in overview and "Child runs" in overview
        report = rendered(browser, f"{page}/artifacts/report.md")
        for shown in ("report.md", "metrics.csv", "hypotheses.toml", "normcheck report",
                      "Verdicts"):
            assert shown in report, shown
    finally:
        server.process.stop()
