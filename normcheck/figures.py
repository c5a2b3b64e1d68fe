"""The report's figures, drawn with matplotlib's object API (no global state, no display)."""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.atomic import atomic_path
from normcheck.records import RunResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from normcheck.variance import Decomposition


def _norms(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(name, colour) of each normalisation in ``frame``, in the vocabulary's order."""
    return [(name, norms.get(name).color) for name in norms.ordered(frame["norm"].unique())]


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.figure import Figure  # imported when drawing: workers never draw

    return Figure(figsize=(width, height))


def _save(fig: "Figure", path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def heatmap(mean: pd.DataFrame, sd: pd.DataFrame | None, title: str, path: Path,
            diverging: bool = False) -> Path:
    """An lr x fc_units map with the value (and ``+- sd`` when given) written in each cell."""
    fig = _figure(2.6 + 1.5 * len(mean.columns), 1.6 + 0.9 * len(mean.index))
    ax = fig.add_subplot()
    values = mean.to_numpy(dtype=float)
    if diverging:
        bound = max(float(np.nanmax(np.abs(values))), 1e-3)
        image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound)
    else:
        bound = 1.0
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=bound)
    ax.set_xticks(range(len(mean.columns)), [str(c) for c in mean.columns])
    ax.set_yticks(range(len(mean.index)), [f"{lr:g}" for lr in mean.index])
    ax.set_xlabel("fc_units")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=9)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = f"{values[i, j]:+.3f}" if diverging else f"{values[i, j]:.3f}"
            if sd is not None:
                text += f"\n±{sd.to_numpy(dtype=float)[i, j]:.3f}"
            dark = (abs(values[i, j]) > 0.6 * bound) if diverging else values[i, j] < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def learning_curves(results: list[RunResult], path: Path) -> Path:
    """Validation accuracy per epoch: a panel per (fc_units, dropout) row and lr column, a line
    per norm, the mean over replicates with a band from the lowest to the highest."""
    rows = [{"lr": r.config.lr, "fc_units": r.config.fc_units, "dropout": r.config.dropout,
             "norm": r.config.norm, "seed": r.config.seed, "epoch": m.epoch, "val_acc": m.val_acc}
            for r in results for m in r.history]
    frame = pd.DataFrame(rows)
    lrs = sorted(frame["lr"].unique(), reverse=True)
    lines = sorted(frame[["fc_units", "dropout"]].drop_duplicates().itertuples(index=False))
    fig = _figure(3.6 * len(lrs), 2.8 * len(lines))
    axes = fig.subplots(len(lines), len(lrs), sharex=True, sharey=True, squeeze=False)
    for row, (fc, dropout) in enumerate(lines):
        for col, lr in enumerate(lrs):
            ax = axes[row][col]
            for norm, color in _norms(frame):
                runs = frame[(frame["lr"] == lr) & (frame["fc_units"] == fc) &
                             (frame["dropout"] == dropout) & (frame["norm"] == norm)]
                if runs.empty:
                    continue
                stats = runs.groupby("epoch")["val_acc"].agg(["mean", "min", "max"])
                ax.plot(stats.index, stats["mean"], color=color, label=f"{norm}, mean")
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color,
                                alpha=0.2, label=f"{norm}, replicate range")
            ax.set_title(f"lr={lr:g}, fc={fc}" + (f", dropout={dropout:g}" if dropout else ""),
                         fontsize=9)
            ax.grid(alpha=0.3)
            if row == len(lines) - 1:
                ax.set_xlabel("epoch")
            if col == 0:
                ax.set_ylabel("validation accuracy")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def instability(table: pd.DataFrame, path: Path) -> Path:
    """Every run: final against best validation accuracy, diverged and collapsed runs marked."""
    lrs = sorted(table["lr"].unique(), reverse=True)
    fig = _figure(4.2 * len(lrs), 3.8)
    axes = fig.subplots(1, len(lrs), sharex=True, sharey=True, squeeze=False)[0]
    for ax, lr in zip(axes, lrs, strict=True):
        for norm, color in _norms(table):
            runs = table[(table["lr"] == lr) & (table["norm"] == norm)]
            stable = runs[~runs["unstable"].astype(bool)]
            ax.scatter(stable["best_val_acc"], stable["final_val_acc"].fillna(0), color=color,
                       alpha=0.7, label=norm)
            for flag, marker in (("diverged", "X"), ("collapsed", "v"), ("loss_up", "^")):
                hit = runs[runs[flag].fillna(0).astype(bool)]
                if len(hit):
                    ax.scatter(hit["best_val_acc"].fillna(0), hit["final_val_acc"].fillna(0),
                               color=color, marker=marker, s=90, edgecolor="black",
                               label=f"{norm} {flag}")
        chance = 1 / table["num_classes"].iloc[0]
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
        ax.set_title(f"lr={lr:g}")
        ax.set_xlabel("best validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final validation accuracy")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def smoothness(table: pd.DataFrame, path: Path) -> Path:
    """The landscape probe per lr and norm: beta-smoothness, loss range, gradient change.
    Runs that collapsed or diverged (left out of H5) are drawn hollow."""
    metrics = ["beta_smoothness", "loss_range", "grad_change"]
    fig = _figure(4.2 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    lrs = sorted(table["lr"].unique())
    dead = table[["collapsed", "diverged"]].fillna(0).astype(bool).any(axis=1)
    present = _norms(table)
    offsets = (np.arange(len(present)) - (len(present) - 1) / 2) * 0.3 / max(
        1, len(present) - 1)
    for ax, metric in zip(axes, metrics, strict=True):
        for offset, (norm, color) in zip(offsets, present, strict=True):
            for k, lr in enumerate(lrs):
                here = (table["lr"] == lr) & (table["norm"] == norm)
                for hollow in (False, True):
                    values = table[here & (dead == hollow)][metric].dropna()
                    ax.scatter(np.full(len(values), k + offset), values, alpha=0.6,
                               facecolors="none" if hollow else color, edgecolors=color,
                               label=(f"{norm}, collapsed or diverged" if hollow else norm)
                               if k == 0 else None)
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_xlabel("learning rate")
        ax.set_yscale("log")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def covariate_shift(results: list[RunResult], path: Path) -> Path:
    """Internal covariate shift per epoch, a panel per measure and a line per norm and lr:
    the mean over the runs that did not diverge."""
    measures = {"ics_cosine": "gradient cosine before/after earlier layers' step (1: no shift)",
                "ics_l2": "gradient change, L2", "input_mean_shift": "input mean shift (sd)"}
    rows = [{"lr": r.config.lr, "norm": r.config.norm, "epoch": m.epoch,
             **{k: getattr(m, k) for k in measures}}
            for r in results if not r.diverged for m in r.history]
    frame = pd.DataFrame(rows)
    fig = _figure(4.2 * len(measures), 3.4)
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    lrs = sorted(frame["lr"].unique(), reverse=True) if len(frame) else []
    styles = ["-", "--", ":", "-."]
    for ax, (metric, title) in zip(axes, measures.items(), strict=True):
        for norm, color in (_norms(frame) if len(frame) else []):
            for lr, style in zip(lrs, styles, strict=False):
                runs = frame[(frame["norm"] == norm) & (frame["lr"] == lr)]
                means = runs.groupby("epoch")[metric].mean().dropna()  # measured epochs
                ax.plot(means.index, means.values, color=color, linestyle=style, marker="o",
                        label=f"{norm}, lr={lr:g}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def variance_shares(decomposition: "Decomposition", path: Path) -> Path:
    """The shares of variance per arm, with their intervals."""
    from normcheck.variance import FACTORS

    arms = decomposition.arms
    fig = _figure(1.6 + 1.4 * len(FACTORS), 3.4)
    ax = fig.subplots()
    width = 0.8 / len(arms)
    for k, arm in enumerate(arms):
        x = np.arange(len(FACTORS)) + (k - (len(arms) - 1) / 2) * width
        point = decomposition.point[k]
        errors = [point - decomposition.low[k], decomposition.high[k] - point]
        ax.bar(x, point, width, color=norms.get(arm).color, label=arm, yerr=errors,
               capsize=3)
    ax.set_xticks(range(len(FACTORS)), FACTORS)
    ax.set_ylabel(f"share of the variance of {decomposition.metric.replace('_', ' ')}")
    ax.set_ylim(0, 1)
    ax.set_title(f"which factor matters most ({decomposition.replicates} replicates, 95% "
                 "intervals)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _save(fig, path)
