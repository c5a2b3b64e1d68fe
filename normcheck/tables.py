"""The tables the hypotheses and the reports read: one row per run (``metrics.csv``), one
per configuration (``summary.csv``), and each arm's headline accuracy over replicates."""

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.contrasts import Paired, estimate
from normcheck.probe import SHIFT_METRICS
from normcheck.records import RunResult
from normcheck.stats import Median, t_half_width

# metrics.csv columns (one row per run), documented in docs/reports.md.
PARAM_COLUMNS = ["case_id", "lr", "fc_units", "norm", "seed", "split_seed", "epochs",
                 "batch_size", "weight_decay", "dropout", "base_channels"]
METRIC_COLUMNS = ["best_val_acc", "best_epoch", "final_val_acc", "final_val_loss",
                  "final_train_acc", "final_train_loss", "test_acc", "epochs_run",
                  "initial_train_loss", "diverged", "collapsed", "loss_up", "unstable",
                  "volatility", "max_grad_norm", "loss_range", "grad_change", "beta_smoothness",
                  *SHIFT_METRICS, "train_seconds"]
META_COLUMNS = ["n_val", "num_classes", "device", "mlflow_run_id"]
COLUMNS = PARAM_COLUMNS + METRIC_COLUMNS + META_COLUMNS
FLAGS = ["diverged", "collapsed", "loss_up", "unstable"]
# summary.csv aggregates these per configuration (lr, fc_units, dropout, norm) over replicates
SUMMARY_METRICS = ["final_val_acc", "test_acc", "best_val_acc", "final_train_acc", "unstable",
                   "volatility", "max_grad_norm", "beta_smoothness", "ics_cosine", "train_seconds"]
CI_METRICS = ["final_val_acc", "test_acc"]  # also given a 95% t interval over replicates
CELL = ["lr", "fc_units", "dropout", "norm"]


def _sort(frame: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    order = {name: i for i, name in enumerate(norms.ordered(frame["norm"].unique()))}
    return frame.sort_values(CELL + extra,
                             ascending=[False, True, True, True] + [True] * len(extra),
                             key=lambda c: c.map(order) if c.name == "norm" else c,
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
    """One row per configuration: n, and mean and sd of each metric over its replicates; for
    the headline metrics also a 95% t interval of the mean."""
    numeric = table[CELL + SUMMARY_METRICS].astype({"unstable": float})
    grouped = numeric.groupby(CELL, sort=False)[SUMMARY_METRICS]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    n = grouped.size()
    out.insert(0, "n", n)
    for metric in CI_METRICS:
        half = t_half_width(out[f"{metric}_std"] / np.sqrt(n), n - 1)
        out[f"{metric}_ci_low"] = out[f"{metric}_mean"] - half
        out[f"{metric}_ci_high"] = out[f"{metric}_mean"] + half
    return _sort(out.reset_index(), [])


def headline(table: pd.DataFrame) -> dict[str, dict[str, Median]]:
    """Per norm, each replicate's mean final validation and test accuracy over every cell,
    as a median with its 95% interval: the study's metric with nothing selected on the
    validation set."""
    paired = Paired(table)
    return {norm: {metric: estimate(paired.metric(metric)[norm].mean().values)
                   for metric in ("final_val_acc", "test_acc")}
            for norm in paired.norms}
