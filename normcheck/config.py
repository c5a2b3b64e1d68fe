"""Frozen configuration records: one training run, and the data it runs on."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from normcheck.model import NORM_LAYERS


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
            ("norm", self.norm in NORM_LAYERS, f"one of {sorted(NORM_LAYERS)}"),
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


def config_hash(config: TrainConfig, data_fingerprint: str, version: str) -> str:
    """A stable hash of every parameter, the seed, the data and the code version."""
    payload = json.dumps(
        {"config": config.as_dict(), "data": data_fingerprint, "version": version},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
