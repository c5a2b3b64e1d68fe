"""The CI regression check: verdicts recorded per grid and data, and the judge of new ones.

A record is a ``[[record]]`` table in a TOML file with ``grid``, ``data_fingerprint`` and one
``<name> = "<verdict>"`` entry per hypothesis (``H1``, or ``H1-layernorm`` when a grid compares
several normalisations). ``record_verdicts`` writes or updates the record of one grid and data
with the numbers as comments, so adopting the check on one's own data is one command.
"""

import datetime
import re
import tomllib
from pathlib import Path

import tomlkit

from normcheck import __version__, norms
from normcheck.atomic import atomic_path
from normcheck.registration import declared
from normcheck.verdicts import VERDICTS, Verdict

NAME = re.compile(r"^([A-Z][A-Za-z0-9_.]*?)(?:-(\w+))?$")  # normcheck.family.NAME, -<arm>
HEADER = """\
Verdicts the study has produced, recorded per grid and data (the fingerprint of the base
split). Run the grid with `--expect-verdicts` on this file: a verdict that matches its record
passes (a recorded verdict that does not hold shows as xfail, with its numbers), and any
change, either way, fails. `--record-verdicts` on this file writes or updates the record of a
grid and data; update one only when a change to the study is meant to change its answer, and
say why in the commit. Never to make CI pass."""


def is_verdict_name(key: str) -> bool:
    """Whether ``key`` names a hypothesis (``H1``) or a hypothesis of an arm (``H1-layernorm``)."""
    match = NAME.match(key)
    return bool(match) and (match[2] is None or match[2] in norms.NORMS)


def load(path: str | Path) -> list[dict]:
    """The records of a TOML file; a ValueError naming the file and the problem otherwise."""
    try:
        with open(path, "rb") as f:
            records = tomllib.load(f).get("record", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read recorded verdicts ({exc})") from exc
    for record in records:
        if not {"grid", "data_fingerprint"} <= set(record):
            raise ValueError(f"{path}: every [[record]] needs grid and data_fingerprint")
        bad = {k: v for k, v in record.items() if is_verdict_name(k) and v not in VERDICTS}
        if bad:
            raise ValueError(f"{path}: verdicts must be one of {sorted(VERDICTS)}, got {bad}")
    return records


def recorded_for(records: list[dict], grid: str, fingerprint: str) -> dict[str, str]:
    """The verdicts recorded for this grid and data (empty when no record matches)."""
    for record in records:
        if record["grid"] == grid and record["data_fingerprint"] == fingerprint:
            return {k: v for k, v in record.items() if is_verdict_name(k)}
    return {}


def judge(verdict: Verdict, recorded: str | None, source: str | None = None,
          inconclusive: str = "fail") -> tuple[str, str]:
    """How a test reports a verdict: ``("pass" | "fail" | "xfail" | "warn", message)``.

    Without a record, a refuted hypothesis fails, and so does an inconclusive one unless
    ``inconclusive="warn"``. With a record, the verdict must match it: a recorded failing
    verdict is an expected failure (xfail), and any change fails.
    """
    got = verdict.outcome
    if recorded is None:
        if verdict.passed:
            return "pass", verdict.message
        if got == "inconclusive" and inconclusive == "warn":
            return "warn", verdict.message
        return "fail", verdict.message
    if recorded != got:
        return "fail", (f"{verdict.name} changed: recorded as {recorded} in {source}, "
                        f"now {got}.\n{verdict.message}")
    if not verdict.passed:
        return "xfail", f"{got}, as recorded in {source}.\n{verdict.message}"
    return "pass", verdict.message


def _numbers(verdict: Verdict) -> str:
    """A verdict's contrasts as a comment: estimate [interval] (level), label."""
    if not verdict.parts:
        return "not estimated: " + verdict.details.strip()
    return "; ".join(f"{p.label}: {p.estimate.format(3)} ({p.estimate.level:.2%})"
                     for p in verdict.parts)


def record_verdicts(path: str | Path, grid: str, fingerprint: str, verdicts: list[Verdict],
                    how: str, data: str | None = None) -> str:
    """Write the record of ``grid`` on data ``fingerprint`` into ``path``, replacing that
    grid and data's earlier record and keeping every other one (and its comments) as it was.
    The record says when, with which normcheck and registration, and ``how`` (replicates, or
    where it was rebuilt from); ``data`` names the source. Returns what was done."""
    path = Path(path)
    try:
        text = path.read_text() if path.exists() else ""
        doc = tomlkit.parse(text) if text else tomlkit.document()
    except (OSError, tomlkit.exceptions.ParseError) as exc:
        raise ValueError(f"{path}: cannot read recorded verdicts ({exc})") from exc
    if not text:
        for line in HEADER.splitlines():
            doc.add(tomlkit.comment(line))
        doc.add(tomlkit.nl())
    table = tomlkit.table()
    table.add("grid", grid)
    table.add("data_fingerprint", fingerprint)
    if data:
        table.add("data", data)
    table.add("recorded", f"{datetime.date.today().isoformat()}, normcheck {__version__}, "
                          f"hypotheses.toml version {declared()['version']}, {how}")
    for verdict in verdicts:
        table.add(verdict.name, verdict.outcome)
        table[verdict.name].comment(_numbers(verdict))
    records = doc.setdefault("record", tomlkit.aot())
    index = next((i for i, r in enumerate(records)
                  if r.get("grid") == grid and r.get("data_fingerprint") == fingerprint), None)
    if index is None:
        records.append(table)
        done = f"added the record of grid {grid!r} on data {fingerprint} to {path}"
    else:
        records[index] = table
        done = f"replaced the record of grid {grid!r} on data {fingerprint} in {path}"
    text = re.sub(r"(?<!\n)\n\[\[record\]\]", "\n\n[[record]]", tomlkit.dumps(doc))
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    load(path)  # what was written reads back
    return done
