"""What a session says about itself: the setup for report.md, and lines for the terminal.

Reporting only: nothing here imports torch or trains; versions come from package metadata,
devices from the runs themselves.
"""

import platform
import resource
import sys
from importlib import metadata
from typing import TYPE_CHECKING

import pandas as pd

from normcheck import __version__, provenance
from normcheck.plans import RoundsPlan
from normcheck.report import format_table, format_verdict_table
from normcheck.sequential import Rounds
from normcheck.tables import summary_table
from normcheck.uris import redact

if TYPE_CHECKING:
    from normcheck.session import StudySession

ALARMS = ("REPORT NOT WRITTEN", "VERDICTS NOT RECORDED", "STUDY RUN NOT WRITTEN",
          "MLFLOW STORE LOST")  # summary lines shown in red


def peak_mib() -> float:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def context(session: "StudySession", table: pd.DataFrame) -> dict[str, str]:
    """The setup, for report.md: grid, data, environment, tracking."""
    from normcheck.device import cpu_count

    o, splits = session.options, session.splits.split()
    grid, design = o.grid, o.design
    axes = {"lr", "fc_units", "norm", "dropout", "seed", "split_seed"}
    training = ", ".join(f"{k}={v}" for k, v in sorted(grid.base.as_dict().items())
                         if k not in axes)
    devices = ", ".join(sorted({str(d) for d in table["device"] if d}))
    return {
        "grid": f"`{grid.name}`: {grid.description}; lr {list(grid.lr)} x fc_units "
                f"{list(grid.fc_units)} x norm {list(grid.norm)}"
                + (f" x dropout {list(grid.dropout)}" if len(grid.dropout) > 1 else "")
                + (f", up to {grid.seeds} replicates in rounds" if design else
                   f", {grid.seeds} replicates") + f": seeds from {grid.base_seed}"
                + (f", each with its own split (split seeds from {splits.split_seed})"
                   if grid.resample_split else f", all on split {splits.split_seed}"),
        "training": training + (f", dropout={grid.dropout[0]}" if len(grid.dropout) == 1
                                else ""),
        "data": f"{splits.source}, protocol `{splits.protocol}` ({len(splits.train_y)} "
                f"train, {len(splits.val_y)} validation, {len(splits.test_y)} test per "
                f"replicate), fingerprint of split {splits.split_seed} `{splits.fingerprint}`",
        "classes": ", ".join(splits.classes),
        "environment": f"normcheck {__version__}, commit {provenance.commit() or 'unknown'}, "
                       f"Python {platform.python_version()}, torch {_version('torch')}, "
                       f"{provenance.cpu_model()} ({platform.machine()}), {cpu_count()} cores, "
                       + (f"engine: {o.ray.describe()}" if o.ray else
                          f"xdist workers: {o.workers}") + f", runs trained on {devices}",
        **({"rounds": f"--seeds auto, {design.describe()}"} if design else {}),
        "MLflow": f"{redact(o.uri)}, experiment `{o.experiment}`"
                  + (f", claims in {redact(o.claims_db)}" if o.claims_db else ""),
    }


def rounds_line(rounds: Rounds) -> str:
    """``--seeds auto`` in one line: where each hypothesis was decided, where and why the
    study stopped, and the rough need of those left."""
    needed = rounds.needed()
    at = {name: rounds.decided_at(name) for name in rounds.names}
    why = f"stopped after {rounds.looks[-1].replicates} replicates" + (
        f" (futility: every hypothesis left would likely stay undecided; saved "
        f"{rounds.saved} replicates of the budget)" if rounds.stopped_for_futility else "")
    return ("rounds (--seeds auto): " + ", ".join(
        f"{name} decided after {n}" if n else f"{name} undecided" for name, n in at.items())
        + f"; {why}" + "".join(f"; {name} would need about {needed[name] or '-'} "
                                "replicates (rough)" for name in rounds.undecided))


def lines(session: "StudySession") -> list[str]:
    """The session in lines for the terminal: runs, grid, data, table, verdicts, files."""
    o, out = session.options, session.outcome
    if out.table is None:
        return []
    splits = session.splits.split()
    shown = [f"runs: reused {out.origins.get('reused', 0)}, trained "
             f"{out.origins.get('trained', 0)}" +
             (f", {out.missing} missing" if out.missing else ""),
             f"grid {o.grid.name!r}: {o.grid.description}",
             f"data: {splits.source} (protocol {splits.protocol}, fingerprint "
             f"{splits.fingerprint})",
             format_table(summary_table(out.table))]
    if out.missing:
        shown.append(f"hypotheses not evaluated: {out.missing} runs of the grid have no "
                     "result")
    elif not o.family.hypotheses:
        shown.append("no hypotheses collected: the session decided nothing")
    else:
        shown.append(format_verdict_table(out.verdicts))
        rounds = session.plan.rounds if isinstance(session.plan, RoundsPlan) else None
        if rounds and rounds.looks:
            shown.append(rounds_line(rounds))
        if o.expect_verdicts:
            recorded = session.expected()
            shown.append(f"recorded verdicts ({o.expect_verdicts}): " + (
                ", ".join(f"{k} {v}" for k, v in sorted(recorded.items())) if recorded
                else "none for this grid and data fingerprint, so failing verdicts fail"))
    shown += out.notes + out.errors
    if out.written:
        shown.append(f"report: {o.report_dir / 'report.md'} ({len(out.written)} files in "
                     f"{o.report_dir})")
    if session.peak:
        shown.append("peak memory: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in
                                                 sorted(session.peak.items())))
    shown.append(f"MLflow: {redact(o.uri)}, experiment {o.experiment!r}")
    if o.uri.startswith("sqlite:"):
        shown.append(f"  view it with: mlflow ui --backend-store-uri {o.uri}")
    return shown
