"""The registration can be verified from git: every version of hypotheses.toml names the
commit that registered it, that commit is in the history, and the current version's commit is
an ancestor of the checkout, so it was committed before the code that runs under it. Commit
times cannot order a registration against runs (the commits of one push share a time); only
ancestry can."""

import subprocess

import pytest

from normcheck import provenance
from normcheck.registration import declared

SPEC = declared()


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(provenance.ROOT), *args], capture_output=True,
                          text=True)


def full_history() -> bool:
    done = git("rev-parse", "--is-shallow-repository")
    return done.returncode == 0 and done.stdout.strip() == "false"


needs_git = pytest.mark.skipif(not full_history(), reason="needs a git checkout with its full "
                               "history (not an installed package or a shallow clone)")


@pytest.mark.parametrize("entry", SPEC["history"], ids=lambda h: f"version {h['version']}")
@needs_git
def test_every_version_names_a_commit_in_the_history(entry: dict) -> None:
    assert entry["commit"] and entry["commit"] != "pending", entry["version"]
    assert git("cat-file", "-e", f"{entry['commit']}^{{commit}}").returncode == 0, entry


@needs_git
def test_the_current_version_was_registered_before_this_checkout() -> None:
    current = next(h for h in SPEC["history"] if h["version"] == SPEC["version"])
    assert git("merge-base", "--is-ancestor", current["commit"], "HEAD").returncode == 0
    assert "an ancestor of this checkout" in provenance.registration(SPEC)


def test_versions_are_in_order_with_their_dates() -> None:
    versions = [h["version"] for h in SPEC["history"]]
    assert versions == list(range(SPEC["version"] + 1))
    assert SPEC["history"][-1]["date"] == SPEC["registered"]
