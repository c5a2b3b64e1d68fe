"""Reports: the metrics table, ``metrics.csv``, heatmaps and the terminal summary."""

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from normcheck.atomic import atomic_path
from normcheck.train import RunResult

# metrics.csv columns, documented in the README.
PARAM_COLUMNS = ["case_id", "lr", "fc_units", "norm", "epochs", "batch_size", "weight_decay",
                 "dropout", "base_channels", "seed"]
METRIC_COLUMNS = ["best_val_acc", "best_epoch", "final_val_acc", "final_val_loss",
                  "final_train_acc", "final_train_loss", "test_acc", "diverged", "epochs_run",
                  "max_grad_norm", "train_seconds"]
META_COLUMNS = ["n_val", "num_classes", "device", "mlflow_run_id"]
COLUMNS = PARAM_COLUMNS + METRIC_COLUMNS + META_COLUMNS


def results_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per configuration, ordered lr (high first), fc_units, norm."""
    rows = []
    for r in results:
        summary = r.summary()
        rows.append({"case_id": r.config.case_id, **r.config.as_dict(), **summary,
                     "diverged": bool(summary["diverged"]),
                     "epochs_run": int(summary["epochs_run"]),
                     "best_epoch": int(summary["best_epoch"]), "n_val": r.n_val,
                     "num_classes": r.num_classes, "device": r.device, "mlflow_run_id": r.run_id})
    table = pd.DataFrame(rows, columns=COLUMNS)
    norm_order = {"none": 0, "batchnorm": 1}
    return table.sort_values(["lr", "fc_units", "norm"], ascending=[False, True, True],
                             key=lambda c: c.map(norm_order) if c.name == "norm" else c,
                             ignore_index=True)


def _heatmap(grid: pd.DataFrame, title: str, path: Path, diverging: bool) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 + 1.3 * len(grid.columns), 1.4 + 0.9 * len(grid.index)))
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=float)
    if diverging:
        bound = max(float(abs(pd.Series(values.ravel())).max()), 1e-3)
        image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound)
    else:
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{lr:g}" for lr in grid.index])
    ax.set_xlabel("fc_units")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = f"{values[i, j]:+.3f}" if diverging else f"{values[i, j]:.3f}"
            ax.text(j, i, text, ha="center", va="center",
                    color="black" if diverging or values[i, j] > 0.6 else "white")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_heatmaps(table: pd.DataFrame, folder: Path) -> list[Path]:
    """lr x fc_units maps of best validation accuracy: one per norm, and BatchNorm minus none."""
    acc = table.pivot_table(index="lr", columns=["norm", "fc_units"], values="best_val_acc",
                            aggfunc="first").sort_index(ascending=False)
    paths = []
    norms = list(dict.fromkeys(table["norm"]))
    for norm in norms:
        path = folder / f"heatmap_{norm}.png"
        _heatmap(acc[norm], f"best validation accuracy, norm={norm}", path, diverging=False)
        paths.append(path)
    if {"none", "batchnorm"} <= set(norms):
        path = folder / "heatmap_batchnorm_minus_none.png"
        _heatmap(acc["batchnorm"] - acc["none"], "batchnorm minus none (best val acc)", path,
                 diverging=True)
        paths.append(path)
    return paths


def write_reports(results: Iterable[RunResult], folder: Path) -> list[Path]:
    """Write ``metrics.csv`` and the heatmaps into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    table = results_table(results)
    csv = folder / "metrics.csv"
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    return [csv, *write_heatmaps(table, folder)] if len(table) else [csv]


def format_table(table: pd.DataFrame) -> str:
    """The configurations as a fixed-width text table for the terminal."""
    shown = table[["lr", "fc_units", "norm", "best_val_acc", "final_val_acc", "test_acc",
                   "diverged", "max_grad_norm", "train_seconds"]].copy()
    shown.columns = ["lr", "fc", "norm", "best_val", "final_val", "test", "diverged",
                     "max_grad", "seconds"]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                           formatters={"lr": "{:g}".format, "seconds": "{:.1f}".format,
                                       "max_grad": "{:.2f}".format})
