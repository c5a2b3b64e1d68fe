"""``--pack`` in a whole session: xdist workers each pack what they train, every run is still
its own case and MLflow run, and packing is not part of a run's identity, so a session
without it reuses the packed runs (docs/packing.md)."""

import re

from helpers import by_hash

pytest_plugins = ["pytester"]


def test_packed_runs_are_cases_and_runs_and_are_reused_unpacked(suite) -> None:
    first = suite.with_empty_store()("-n", "2", "--pack", "4", "test_grid.py")
    first.assert_outcomes(passed=8)
    runs = suite.runs()
    assert len(runs) == 8 and all(s == ["FINISHED"] for s in by_hash(runs).values())
    sizes = [int(r["tags"]["normcheck.pack"]) for r in runs]
    # the tiny grid's 8 runs are 4 architectures (width x norm) of 2 learning rates each
    assert max(sizes) == 2 and sum(sizes) > 8, sizes
    again = suite("-n", "0", "--pack", "off", "test_grid.py")
    again.assert_outcomes(passed=8)
    assert re.search(r"trained 0\b", again.stdout.str()), again.stdout.str()
    assert len(suite.runs()) == 8
