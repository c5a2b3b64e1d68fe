"""metrics.csv, summary.csv, the figures and report.md."""

import os
import stat
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAMILY, results

from normcheck.assertions import Part
from normcheck.report import FIGURES_STAMP, explanation, format_table, write_reports
from normcheck.stats import Median
from normcheck.tables import COLUMNS, results_table, summary_table
from normcheck.verdicts import Verdict


def test_reports_are_written(tmp_path: Path) -> None:
    verdicts = FAMILY.evaluate(results_table(results()))
    written = write_reports(results(), tmp_path / "out", verdicts, {"data": "synthetic"},
                            family=FAMILY)
    names = {p.name for p in written}
    assert names == {"metrics.csv", "summary.csv", "heatmap_none.png", "heatmap_batchnorm.png",
                     "heatmap_batchnorm_minus_none.png", "learning_curves.png",
                     "instability.png", "smoothness.png", "covariate_shift.png",
                     "variance_shares.png", "report.md"}
    for path in written:
        assert path.stat().st_size > 500
    assert (tmp_path / "out" / "heatmap_none.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (tmp_path / "out").glob(".*")] == [FIGURES_STAMP]  # no temp files
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "![internal covariate shift](covariate_shift.png)" in markdown
    assert "## Which factor matters most" in markdown and "| batchnorm - none |" in markdown
    assert markdown.startswith("# normcheck report\n\n**Answer.** Over 3 replicates of 8 "
                               "configurations")
    answer = markdown.split("\n\n")[1]
    for v in verdicts:
        assert f"**{v.outcome}**" in markdown and f"(**{v.name} {v.outcome}**)" in answer
    assert "Caveats: one data set" in answer and "5 epochs" in answer
    assert "| hypothesis | verdict | estimate | interval | level | holds if | adjusted p | " \
           "contrast |" in markdown
    assert "`hypotheses.toml` version 7 (registered 2026-12-01" in markdown
    assert "H1, H2, H3, H4, H5 are the primary family (the original study's observations). " \
           "E1, E2, E3 are the explanatory family, with its own error rate. What is " \
           "controlled: in each family, the chance that any claim made" in markdown
    assert "**The original's explanation** (BatchNorm reduces internal covariate shift)" \
           in markdown
    assert "## Sensitivity" in markdown and "without replicate 0 (seed" in markdown
    assert "One run's validation accuracy is measured on 480 images" in markdown
    assert "original study's metric" in markdown
    assert "![instability](instability.png)" in markdown and "**data**: synthetic" in markdown


def test_metrics_csv_has_one_row_per_run(tmp_path: Path) -> None:
    write_reports(results(), tmp_path)
    csv = pd.read_csv(tmp_path / "metrics.csv")
    assert list(csv.columns) == COLUMNS and len(csv) == 24
    assert list(csv["lr"][:12]) == [0.01] * 12  # high lr first
    assert list(csv["norm"][:3]) == ["none"] * 3 and list(csv["seed"][:3]) == [1, 2, 3]
    row = csv[(csv.lr == 0.01) & (csv.fc_units == 64) & (csv.norm == "batchnorm") &
              (csv.seed == 2)].iloc[0]
    assert row.best_val_acc == 0.5 + 0.1 + 0.064 + 0.02 and row.epochs_run == 2
    assert row.mlflow_run_id == "run-0.01-64-batchnorm-2" and not row.diverged
    assert row.beta_smoothness == 9.0 and round(row.volatility, 6) == 0.05 and not row.unstable


def test_metrics_and_summary_round_trip_through_pandas(tmp_path: Path) -> None:
    write_reports(results(), tmp_path)
    table = results_table(results())
    csv = pd.read_csv(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    summary = pd.read_csv(tmp_path / "summary.csv")
    pd.testing.assert_frame_equal(summary, summary_table(table), check_dtype=False)


def test_summary_has_mean_sd_and_n_per_configuration() -> None:
    summary = summary_table(results_table(results()))
    assert len(summary) == 8 and set(summary["n"]) == {3}
    row = summary[(summary.lr == 0.01) & (summary.fc_units == 32) & (summary.norm == "none")]
    assert row["best_val_acc_mean"].iloc[0] == 0.5 + 0.032 + 0.02
    assert round(row["best_val_acc_std"].iloc[0], 6) == 0.01


def test_terminal_table_shows_every_configuration() -> None:
    text = format_table(summary_table(results_table(results())))
    assert len(text.splitlines()) == 9 and "batchnorm" in text and "0.684±0.010" in text


def test_figures_are_drawn_again_only_when_what_they_show_changed(tmp_path: Path) -> None:
    write_reports(results(), tmp_path)
    figure = tmp_path / "learning_curves.png"
    os.utime(figure, (0, 0))
    write_reports(results(), tmp_path)  # the same runs: a rebuild
    assert figure.stat().st_mtime == 0
    changed = results()
    changed[0] = replace(changed[0], test_acc=0.1)
    write_reports(changed, tmp_path)
    assert figure.stat().st_mtime > 0
    os.utime(figure, (0, 0))
    (tmp_path / "smoothness.png").unlink()  # a figure gone: all drawn again
    write_reports(changed, tmp_path)
    assert figure.stat().st_mtime > 0 and (tmp_path / "smoothness.png").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_reports_are_as_readable_as_the_umask_says(tmp_path: Path, umask: int,
                                                   mode: int) -> None:
    old = os.umask(umask)
    try:
        written = write_reports(results(), tmp_path)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {mode}


@pytest.mark.parametrize("e1, h5, says", [
    ("refuted", "holds", "does not survive: BatchNorm increased internal covariate shift here, "
                         "as Santurkar et al. found (E1 refuted); its landscape was smoother "
                         "(H5 holds): smoothness, not reduced covariate shift, is the mechanism"),
    ("holds", "holds", "survives: BatchNorm reduced internal covariate shift here (E1 holds); "
                       "its landscape was smoother too (H5 holds): these runs do not tell"),
    ("inconclusive", "inconclusive", "is not supported: these runs cannot tell whether "
                                     "BatchNorm changed internal covariate shift (E1 "
                                     "inconclusive); smoothness is not supported either"),
])
def test_the_answer_says_whether_the_explanation_survives(e1: str, h5: str, says: str) -> None:
    def verdict(name: str, outcome: str) -> Verdict:
        measured = (Part("x", Median.of([0.1, 0.2, 0.3]), "> 0"),)
        return Verdict(name, "", outcome, measured, 1.0, "", hypothesis=name, arm="batchnorm")

    assert says in explanation([verdict("H5", h5), verdict("E1", e1)])
    assert explanation([verdict("H5", h5)]) == ""  # E1 not asked


def test_runs_without_the_shift_probe_do_not_test_the_explanation() -> None:
    unmeasured = Median.of([])  # every pair's ics_cosine NaN: no replicate has a contrast
    e1 = Verdict("E1", "", "inconclusive", (Part("x", unmeasured, "> 0"),), 1.0, "",
                 hypothesis="E1", arm="batchnorm")
    assert "is not tested: these runs are from before the covariate-shift probe" in \
        explanation([e1])
