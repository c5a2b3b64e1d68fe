"""Reports: the per-run and per-configuration tables, their CSV files, and ``report.md``."""

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from normcheck import figures
from normcheck.atomic import atomic_path
from normcheck.hypotheses import Verdict
from normcheck.train import RunResult

# metrics.csv columns (one row per run), documented in the README.
PARAM_COLUMNS = ["case_id", "lr", "fc_units", "norm", "seed", "split_seed", "epochs",
                 "batch_size", "weight_decay", "dropout", "base_channels"]
METRIC_COLUMNS = ["best_val_acc", "best_epoch", "final_val_acc", "final_val_loss",
                  "final_train_acc", "final_train_loss", "test_acc", "epochs_run",
                  "initial_train_loss", "diverged", "collapsed", "loss_up", "unstable",
                  "volatility", "max_grad_norm", "loss_range", "grad_change", "beta_smoothness",
                  "train_seconds"]
META_COLUMNS = ["n_val", "num_classes", "device", "mlflow_run_id"]
COLUMNS = PARAM_COLUMNS + METRIC_COLUMNS + META_COLUMNS
FLAGS = ["diverged", "collapsed", "loss_up", "unstable"]
# summary.csv aggregates these per configuration (lr, fc_units, norm) over seeds
SUMMARY_METRICS = ["best_val_acc", "final_val_acc", "test_acc", "final_train_acc", "unstable",
                   "volatility", "max_grad_norm", "beta_smoothness", "train_seconds"]
CELL = ["lr", "fc_units", "norm"]
NORM_ORDER = {"none": 0, "batchnorm": 1}


def _sort(frame: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    return frame.sort_values(CELL + extra, ascending=[False, True, True] + [True] * len(extra),
                             key=lambda c: c.map(NORM_ORDER) if c.name == "norm" else c,
                             ignore_index=True)


def results_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run, ordered lr (high first), fc_units, norm, seed."""
    rows = []
    for r in results:
        summary = r.summary()
        row = {"case_id": r.config.case_id, **r.config.as_dict(), **summary, "n_val": r.n_val,
               "num_classes": r.num_classes, "device": r.device, "mlflow_run_id": r.run_id}
        for flag in FLAGS:
            if not math.isnan(row[flag]):
                row[flag] = bool(row[flag])
        row["epochs_run"], row["best_epoch"] = int(row["epochs_run"]), int(row["best_epoch"])
        rows.append(row)
    return _sort(pd.DataFrame(rows, columns=COLUMNS), ["seed"])


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean, sd and n of each metric over its seeds."""
    numeric = table[CELL + SUMMARY_METRICS].astype({"unstable": float})
    grouped = numeric.groupby(CELL, sort=False)[SUMMARY_METRICS]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "n", grouped.size())
    return _sort(out.reset_index(), [])


def write_tables(table: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> list[Path]:
    """``metrics.csv`` (one row per run) and ``summary.csv`` (one per configuration)."""
    return [_write_csv(table, folder / "metrics.csv"), _write_csv(summary, folder / "summary.csv")]


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def format_table(summary: pd.DataFrame) -> str:
    """The configurations (mean +- sd over seeds) as a fixed-width text table."""
    shown = pd.DataFrame({
        "lr": summary["lr"].map("{:g}".format), "fc": summary["fc_units"],
        "norm": summary["norm"], "n": summary["n"],
        "best_val": [f"{m:.3f}±{s:.3f}" for m, s in
                     zip(summary["best_val_acc_mean"], summary["best_val_acc_std"].fillna(0),
                         strict=True)],
        "final_val": summary["final_val_acc_mean"].map("{:.3f}".format),
        "test": summary["test_acc_mean"].map("{:.3f}".format),
        "unstable": [f"{round(u * n)}/{n}" for u, n in
                     zip(summary["unstable_mean"], summary["n"], strict=True)],
        "beta": summary["beta_smoothness_mean"].map("{:.2f}".format),
        "seconds": summary["train_seconds_mean"].map("{:.1f}".format),
    })
    return shown.to_string(index=False)


def format_verdict_table(verdicts: list[Verdict]) -> str:
    """The verdicts as a fixed-width text table: verdict, estimate, CI, margin, statistic."""
    rows = [("hypothesis", "verdict", "estimate", "95% CI", "margin", "statistic")]
    for v in verdicts:
        est = v.estimate
        rows.append((v.name, v.verdict, f"{est.value:+.4f}" if est else "-",
                     f"[{est.low:+.4f}, {est.high:+.4f}]" if est else "-", f"{v.margin:g}",
                     v.statistic))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) +
                     "  " + row[-1] for row in rows)


def format_verdicts(verdicts: list[Verdict]) -> str:
    """One markdown table row per hypothesis: statistic, CI, margin, verdict."""
    lines = ["| hypothesis | statistic | estimate | 95% CI | margin | verdict |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        est = v.estimate
        ci = f"[{est.low:+.4f}, {est.high:+.4f}]" if est else "-"
        lines.append(f"| {v.name}: {v.statement} | {v.statistic} | "
                     f"{f'{est.value:+.4f}' if est else '-'} | {ci} | {v.margin:g} | "
                     f"**{v.verdict}** |")
    return "\n".join(lines)


def _pivot(summary: pd.DataFrame, norm: str, column: str) -> pd.DataFrame:
    rows = summary[summary["norm"] == norm]
    return rows.pivot(index="lr", columns="fc_units", values=column).sort_index(ascending=False)


class ReportError(OSError):
    """The report folder cannot be written; the message names it and what to do."""


def check_writable(folder: Path) -> None:
    """Create the folder and write a probe file in it, so a read-only or full folder is found
    before training, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ".normcheck-probe") as tmp:
            tmp.write_bytes(b"0" * 4096)
        (folder / ".normcheck-probe").unlink()
    except OSError as exc:
        raise ReportError(f"report folder {folder} cannot be written ({exc.strerror or exc}); "
                          f"free space there or pass a writable --report-dir") from exc


def write_reports(results: list[RunResult], folder: Path, verdicts: list[Verdict] | None = None,
                  context: dict[str, str] | None = None) -> list[Path]:
    """Write metrics.csv, summary.csv, the figures and report.md; return the paths written.

    Each file is replaced whole or not at all; a write that fails raises :class:`ReportError`.
    """
    try:
        return _write_all(results, folder, verdicts, context)
    except ReportError:
        raise
    except OSError as exc:
        raise ReportError(f"reports could not be written to {folder} ({exc.strerror or exc}); "
                          f"every file there is whole, old or new") from exc


def _write_all(results: list[RunResult], folder: Path, verdicts: list[Verdict] | None,
               context: dict[str, str] | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = results_table(results)
    summary = summary_table(table)
    written = write_tables(table, summary, folder)
    norms = list(dict.fromkeys(summary["norm"]))
    for norm in norms:
        written.append(figures.heatmap(
            _pivot(summary, norm, "best_val_acc_mean"), _pivot(summary, norm, "best_val_acc_std"),
            f"best validation accuracy, norm={norm}\n(mean ± sd over seeds)",
            folder / f"heatmap_{norm}.png"))
    if {"none", "batchnorm"} <= set(norms):
        diff = (_pivot(summary, "batchnorm", "best_val_acc_mean") -
                _pivot(summary, "none", "best_val_acc_mean"))
        written.append(figures.heatmap(diff, None, "batchnorm minus none\n(mean best val acc)",
                                       folder / "heatmap_batchnorm_minus_none.png",
                                       diverging=True))
    written.append(figures.learning_curves(results, folder / "learning_curves.png"))
    written.append(figures.instability(table, folder / "instability.png"))
    written.append(figures.smoothness(table, folder / "smoothness.png"))
    written.append(_write_markdown(folder / "report.md", summary, verdicts or [], context or {},
                                   [p.name for p in written]))
    return written


def _write_markdown(path: Path, summary: pd.DataFrame, verdicts: list[Verdict],
                    context: dict[str, str], files: list[str]) -> Path:
    def image(name: str, alt: str) -> str:
        return f"![{alt}]({name})" if name in files else ""

    h5 = next((v for v in verdicts if v.name == "H5"), None)
    sections = [
        "# normcheck report",
        "**Question.** Does BatchNorm make a compact CNN less sensitive to learning rate and "
        "model capacity, and does it stabilize training? CIFAR-10 classes "
        f"{context.get('classes', 'cat, dog, horse')}.",
        "## Setup",
        "\n".join(f"- **{key}**: {value}" for key, value in context.items()),
        "## Verdicts",
        format_verdicts(verdicts) if verdicts else
        "_Hypotheses not evaluated: the grid is incomplete._",
        "\n".join(f"<details><summary>{v.name}: the numbers</summary>\n\n```\n{v.message}\n```\n"
                  "</details>" for v in verdicts),
        "## Accuracy (mean ± sd over seeds)",
        image("heatmap_none.png", "no normalization") + " " +
        image("heatmap_batchnorm.png", "batchnorm"),
        image("heatmap_batchnorm_minus_none.png", "difference"),
        "```\n" + format_table(summary) + "\n```",
        "## Learning curves",
        image("learning_curves.png", "validation accuracy per epoch"),
        "## Instability",
        "Every run: diverged (X), collapsed to chance (v) and loss-went-up (^) runs are marked.",
        image("instability.png", "instability"),
        "## Loss-landscape smoothness (H5)",
        "Measured once per epoch on a fixed batch of 128 training images, stepping along the "
        "gradient by 0.5, 1 and 2 times the learning rate (Santurkar et al. 2018).",
        image("smoothness.png", "smoothness"),
        f"```\n{h5.message}\n```" if h5 else "",
        "Columns of `metrics.csv` and `summary.csv` are described in the README.",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n\n".join(s for s in sections if s) + "\n")
    return path
