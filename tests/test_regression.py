"""The CI regression check: recorded verdicts, the judge, and writing a record."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

from normcheck import regression
from normcheck.assertions import Part
from normcheck.stats import Median
from normcheck.verdicts import Verdict


def verdict(v: str, name: str = "H2") -> Verdict:
    return Verdict(name, "s", v, (), 1.0, "numbers")


def test_judge_without_a_record() -> None:
    assert regression.judge(verdict("holds"), None)[0] == "pass"
    outcome, message = regression.judge(verdict("refuted"), None)
    assert outcome == "fail" and "H2 REFUTED" in message and "numbers" in message
    assert regression.judge(verdict("inconclusive"), None)[0] == "fail"
    assert regression.judge(verdict("inconclusive"), None, inconclusive="warn")[0] == "warn"
    assert regression.judge(verdict("refuted"), None, inconclusive="warn")[0] == "fail"


def test_judge_against_records() -> None:
    assert regression.judge(verdict("holds"), "holds", "r.toml")[0] == "pass"
    assert regression.judge(verdict("refuted"), "refuted", "r.toml")[0] == "xfail"
    assert regression.judge(verdict("inconclusive"), "inconclusive", "r.toml")[0] == "xfail"
    for got, recorded in (("holds", "refuted"), ("refuted", "holds"), ("inconclusive", "holds")):
        outcome, message = regression.judge(verdict(got), recorded, "r.toml")
        assert outcome == "fail" and f"H2 changed: recorded as {recorded} in r.toml" in message


def test_recorded_verdicts_file(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "superior"\n'
                    'H2-layernorm = "refuted"\nnote = "x"\n')
    records = regression.load(path)
    assert regression.recorded_for(records, "quick", "abc") == {
        "H1": "superior", "H2-layernorm": "refuted"}
    assert regression.recorded_for(records, "quick", "other data") == {}
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "yes"\n')
    with pytest.raises(ValueError, match=r"verdicts must be one of .*got \{'H1': 'yes'\}"):
        regression.load(path)
    with pytest.raises(ValueError, match=r"cannot read recorded verdicts"):
        regression.load(tmp_path / "missing.toml")


def with_numbers(name: str, outcome: str, value: float) -> Verdict:
    values = value + 0.01 * (np.arange(12) - 5.5) / 5.5  # median value, 12 replicates
    part = Part("median paired difference", Median.of(values, 0.99), "> 0")
    return Verdict(name, "s", outcome, (part,), 0.01, "numbers")


def test_record_verdicts_writes_then_replaces_its_own_record_only(tmp_path: Path) -> None:
    path = tmp_path / "recorded.toml"
    first = [with_numbers("H1", "superior", 0.05), with_numbers("H2", "inconclusive", 0.01)]
    done = regression.record_verdicts(path, "mine.toml", "abc", first, "by hand", "my data")
    assert done.startswith("added the record of grid 'mine.toml' on data abc")
    text = path.read_text()
    assert text.startswith("# Verdicts the study has produced")
    assert 'H1 = "superior" # median paired difference: +0.050 [+0.042, +0.058] (99.00%)' in text
    regression.record_verdicts(path, "quick", "abc", first, "by hand")  # another grid
    path.write_text(path.read_text().replace('grid = "quick"', '# kept\ngrid = "quick"'))
    done = regression.record_verdicts(path, "mine.toml", "abc",
                                      [with_numbers("H1", "non-inferior", 0.0)], "by hand")
    assert done.startswith("replaced the record")
    records = tomllib.loads(path.read_text())["record"]
    assert [(r["grid"], r.get("H1")) for r in records] == [("mine.toml", "non-inferior"),
                                                           ("quick", "superior")]
    assert "H2" not in records[0] and "# kept" in path.read_text()
    assert regression.recorded_for(regression.load(path), "mine.toml", "abc") == {
        "H1": "non-inferior"}


def test_record_verdicts_rejects_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[record]\n")
    with pytest.raises(ValueError, match=r"broken.toml: cannot read recorded verdicts"):
        regression.record_verdicts(path, "quick", "abc", [verdict("holds", "H1")], "by hand")
