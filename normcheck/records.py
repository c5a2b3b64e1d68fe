"""The plain records every layer shares: what a run is, what data it runs on, what it produced.

Frozen dataclasses with no torch import, so grids, tables and reports load without PyTorch.
"""

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from normcheck.norms import NORMS
from normcheck.probe import SHIFT_METRICS

# Part of every configuration's hash. Bump it when a change alters what training produces
# (then no stored run is reused); a release that leaves training alone keeps it.
RESULTS_VERSION = "0.4.0"  # 0.4.0: the internal covariate shift probe
COLLAPSE_MARGIN = 0.05  # a run has collapsed if its final accuracy is this close to chance


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one training run. Defaults are the original study's."""

    lr: float
    fc_units: int
    norm: str = "none"
    epochs: int = 5
    batch_size: int = 64
    weight_decay: float = 1e-4
    dropout: float = 0.0  # the original study's; a dropout axis may vary it
    base_channels: int = 16
    seed: int = 42  # weight init, batch order and dropout
    split_seed: int = 42  # which train/validation split (a replicate may resample it)

    def __post_init__(self) -> None:
        checks = [
            ("lr", self.lr > 0, "a positive number"),
            ("fc_units", self.fc_units >= 1, "an integer >= 1"),
            ("norm", self.norm in NORMS, f"one of {list(NORMS)}"),
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("weight_decay", self.weight_decay >= 0, "a number >= 0"),
            ("dropout", 0 <= self.dropout < 1, "a number in [0, 1)"),
            ("base_channels", self.base_channels >= 1, "an integer >= 1"),
            ("seed", self.seed >= 0, "an integer >= 0"),
            ("split_seed", self.split_seed >= 0, "an integer >= 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: use {allowed}")

    @property
    def case_id(self) -> str:
        """A readable test id, e.g. ``lr=0.01-fc=32-norm=batchnorm-seed=42``."""
        return f"{self.cell_id}-seed={self.seed}"

    @property
    def cell_id(self) -> str:
        """The grid cell, without the replicate: ``lr=0.01-fc=32-norm=batchnorm``, with
        ``-dropout=0.2`` after it when the run uses dropout (the original study did not)."""
        dropout = f"-dropout={self.dropout:g}" if self.dropout else ""
        return f"lr={self.lr:g}-fc={self.fc_units}-norm={self.norm}{dropout}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SplitProtocol:
    """Images per class for each split. Validation always comes from CIFAR-10's training split."""

    name: str
    train_per_class: int
    val_per_class: int
    test_per_class: int | None  # None: the whole test split


PROTOCOLS: dict[str, SplitProtocol] = {
    "seed": SplitProtocol("seed", train_per_class=800, val_per_class=160, test_per_class=160),
    "full": SplitProtocol("full", train_per_class=4000, val_per_class=1000, test_per_class=None),
}


@dataclass(frozen=True)
class DataSpec:
    """Which classes and which split protocol; the source is chosen separately."""

    classes: tuple[str, ...] = ("cat", "dog", "horse")
    protocol: str = "seed"
    split_seed: int = 42

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise ConfigError(
                f"classes={list(self.classes)!r} is invalid: name at least two classes")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes={list(self.classes)!r} is invalid: a class is named twice")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or \
                self.split_seed < 0:
            raise ConfigError(f"split_seed={self.split_seed!r} is invalid: use an integer >= 0")


def config_hash(config: TrainConfig, data_fingerprint: str,
                version: str = RESULTS_VERSION) -> str:
    """A stable hash of every parameter, the seed, the data and the results version."""
    payload = json.dumps(
        {"config": config.as_dict(), "data": data_fingerprint, "version": version},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    # landscape probe at the end of the epoch (see normcheck.stability); NaN once diverged
    loss_range: float = math.nan
    grad_change: float = math.nan
    beta_smoothness: float = math.nan
    # internal covariate shift at the end of the epoch (see normcheck.shift); NaN once diverged
    # and after the epochs it is not measured (normcheck.probe.measures_shift)
    ics_l2: float = math.nan
    ics_cosine: float = math.nan
    input_mean_shift: float = math.nan
    input_var_shift: float = math.nan

    def metrics(self) -> dict[str, float]:
        """Everything but the epoch number, as logged to MLflow per step."""
        return {k: v for k, v in asdict(self).items() if k != "epoch"}


def run_signals(history: Sequence[EpochMetrics], initial_train_loss: float, diverged: bool,
                num_classes: int) -> dict[str, float]:
    """Instability signals of one run: diverged, collapsed, loss going up, and volatility."""
    if not history:
        return {"collapsed": math.nan, "loss_up": math.nan, "volatility": math.nan,
                "unstable": float(diverged)}
    last = history[-1]
    collapsed = abs(last.val_acc - 1 / max(num_classes, 1)) <= COLLAPSE_MARGIN
    loss_up = not last.train_loss < initial_train_loss  # NaN counts as up
    accs = [m.val_acc for m in history]
    volatility = (sum(abs(b - a) for a, b in zip(accs, accs[1:], strict=False)) /
                  (len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"collapsed": float(collapsed), "loss_up": float(loss_up), "volatility": volatility,
            "unstable": float(diverged or collapsed or loss_up)}


@dataclass(frozen=True)
class RunResult:
    """What one configuration's training produced."""

    config: TrainConfig
    history: tuple[EpochMetrics, ...] = ()
    test_acc: float = math.nan
    initial_train_loss: float = math.nan  # the loss of the first batch, before any update
    diverged: bool = False
    max_grad_norm: float = 0.0
    train_seconds: float = 0.0
    device: str = "cpu"
    n_val: int = 0
    num_classes: int = 0
    run_id: str = ""  # the MLflow run, once logged

    @property
    def best_val_acc(self) -> float:
        return max((m.val_acc for m in self.history), default=math.nan)

    @property
    def best_epoch(self) -> int:
        return max(self.history, key=lambda m: m.val_acc).epoch if self.history else 0

    @property
    def final(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None

    def summary(self) -> dict[str, float]:
        """The final metrics, as logged to MLflow and written to metrics.csv."""
        last = self.final

        def mean(key: str) -> float:
            values = [getattr(m, key) for m in self.history if math.isfinite(getattr(m, key))]
            return sum(values) / len(values) if values else math.nan

        return {
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "final_val_acc": last.val_acc if last else math.nan,
            "final_val_loss": last.val_loss if last else math.nan,
            "final_train_acc": last.train_acc if last else math.nan,
            "final_train_loss": last.train_loss if last else math.nan,
            "test_acc": self.test_acc,
            "diverged": float(self.diverged),
            "epochs_run": len(self.history),
            "max_grad_norm": self.max_grad_norm,
            "initial_train_loss": self.initial_train_loss,
            **run_signals(self.history, self.initial_train_loss, self.diverged,
                          self.num_classes),
            "loss_range": mean("loss_range"),
            "grad_change": mean("grad_change"),
            "beta_smoothness": mean("beta_smoothness"),
            **{key: mean(key) for key in SHIFT_METRICS},
            "train_seconds": self.train_seconds,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        return cls(**{**d, "config": TrainConfig(**d["config"]),
                      "history": tuple(EpochMetrics(**m) for m in d["history"])})
