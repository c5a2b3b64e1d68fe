"""Where a number came from: normcheck's version, the project's git commit, the machine, and
whether the registration that governs a verdict was committed before the checkout that made
it. Reports and benchmarks print these beside every figure, because numbers vary across
machines (the same verdicts, other digits) while one machine repeats them exactly."""

import os
import platform
import subprocess
from pathlib import Path

from normcheck import __version__

ROOT = Path(__file__).resolve().parents[1]  # the checkout, when normcheck runs from one


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit() -> str | None:
    """The checkout's commit (short), ``+changes`` when its tracked files differ from it;
    None outside a git checkout."""
    head = _git("rev-parse", "--short", "HEAD")
    if head is None:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+changes" if dirty else head


def cpu_model() -> str:
    """The CPU's model name, as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> str:
    """One line: CPU model, cores, and the device trained on."""
    return f"{cpu_model()}, {os.cpu_count()} cores, device {device}"


def stamp(device: str = "cpu") -> str:
    """normcheck's version, the commit and the machine, for a figure's caption."""
    return f"normcheck {__version__}, commit {commit() or 'unknown'}, {machine(device)}"


def registration(spec: dict) -> str:
    """Which commit registered the current version of ``hypotheses.toml``, and whether it is
    an ancestor of this checkout (so the registration came before the code that ran)."""
    entry = next((h for h in spec.get("history", []) if h["version"] == spec["version"]), {})
    registered = entry.get("commit")
    if not registered or registered == "pending":
        return "not yet stamped with its registering commit"
    if _git("cat-file", "-e", f"{registered}^{{commit}}") is None:
        return (f"registered in commit {registered} (not checkable here: no git checkout, or "
                "one without that history)")
    head = _git("rev-parse", "--short", "HEAD")
    ancestor = _git("merge-base", "--is-ancestor", registered, "HEAD") is not None
    return (f"registered in commit {registered}, "
            + (f"an ancestor of this checkout ({head})" if ancestor else
               f"NOT an ancestor of this checkout ({head})"))
