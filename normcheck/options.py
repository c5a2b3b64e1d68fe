"""The options of a normcheck session, defined once for the pytest plugin and the command line.

Each option is argparse keywords; ``add_options`` adds them to a pytest option group or an
argparse parser, so both spell and validate them the same way. Types validate when the
command line is parsed: a bad value is a usage error that names the option.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

from normcheck.grid import Grid, GridError, load_grid
from normcheck.tracking import DEFAULT_EXPERIMENT

DATA_ENV = "NORMCHECK_DATA"


def grid_option(value: str) -> Grid:
    """``--grid``: a profile name or a TOML file, loaded and validated."""
    try:
        return load_grid(value)
    except GridError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``--seeds``: 1, ``--base-seed``: 0)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer >= {minimum}")
        return number

    parse.__name__ = f"integer >= {minimum}"
    return parse


OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "grid": (("--grid",), dict(
        type=grid_option, default="full", metavar="NAME|TOML",
        help="grid profile name (full, quick, norms, dropout) or path to a .toml file [full]")),
    "data_dir": (("--data-dir",), dict(
        default=None, metavar="PATH",
        help=f"data: image-folder tree, cifar-10-batches-py folder or cifar-10-python.tar.gz "
             f"(default: ${DATA_ENV}, else download CIFAR-10)")),
    "report_dir": (("--report-dir",), dict(
        default="reports", metavar="DIR", help="where reports go [reports]")),
    "mlflow_uri": (("--mlflow-uri",), dict(
        default=None, metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in "
             "the working folder)")),
    "experiment": (("--experiment",), dict(
        default=DEFAULT_EXPERIMENT, help=f"MLflow experiment name [{DEFAULT_EXPERIMENT}]")),
    "seeds": (("--seeds",), dict(
        type=at_least(1), default=None, metavar="N",
        help="replicates (seeds) per configuration (default: the grid's)")),
    "base_seed": (("--base-seed",), dict(
        type=at_least(0), default=None, metavar="SEED",
        help="first replicate seed (default: the grid's train.seed)")),
    "resample_split": (("--resample-split",), dict(
        action=argparse.BooleanOptionalAction, default=None,
        help="each replicate draws its own train/validation split (default: the grid's; "
             "full and quick do)")),
    "log_model": (("--log-model",), dict(
        action="store_true", help="also log each trained model to MLflow as an artifact")),
    "retrain": (("--retrain",), dict(
        action="store_true",
        help="train every configuration, even one with a FINISHED run of the same "
             "configuration hash in the experiment (default: reuse it)")),
    "expect_verdicts": (("--expect-verdicts",), dict(
        default=None, metavar="TOML",
        help="regression mode: compare each hypothesis's verdict with the one recorded in "
             "TOML for this grid and data; a recorded refutation then reports as xfail, and "
             "any change fails")),
    "record_verdicts": (("--record-verdicts",), dict(
        default=None, metavar="TOML",
        help="write (or update) this grid and data's record of verdicts in TOML, with the "
             "numbers as comments, for --expect-verdicts to check later")),
    "inconclusive": (("--inconclusive",), dict(
        choices=["fail", "warn"], default="fail",
        help="an inconclusive verdict fails the check, or only warns [fail]")),
}
SESSION_OPTIONS = tuple(OPTIONS)  # the pytest plugin's
REPORT_OPTIONS = ("grid", "seeds", "base_seed", "resample_split", "report_dir", "mlflow_uri",
                  "experiment", "record_verdicts")  # python -m normcheck report's


def add_options(add: Callable[..., Any], names: tuple[str, ...] = SESSION_OPTIONS,
                **overrides: dict[str, Any]) -> None:
    """Call ``add(*flags, **keywords)`` for each option named (a pytest group's ``addoption``
    or an argparse parser's ``add_argument``); ``overrides`` replace an option's keywords,
    e.g. ``grid={"default": None, "help": ...}``."""
    for name in names:
        flags, keywords = OPTIONS[name]
        add(*flags, **{**keywords, **overrides.get(name, {})})


def data_dir(value: str | None) -> str | None:
    """``--data-dir``, else ``$NORMCHECK_DATA``, else None (torchvision's download)."""
    return value or os.environ.get(DATA_ENV) or None
