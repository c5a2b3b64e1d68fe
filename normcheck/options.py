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
from normcheck.packs import pack_option
from normcheck.tracking import DEFAULT_EXPERIMENT

DATA_ENV = "NORMCHECK_DATA"
CLAIMS_ENV = "NORMCHECK_CLAIMS_DB"
RAY_ENV = "RAY_ADDRESS"


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


def seeds_option(value: str) -> int | str:
    """``--seeds``: an integer >= 1, or ``auto`` (replicates in rounds until decided)."""
    if value == "auto":
        return value
    try:
        return at_least(1)(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither an integer >= 1 nor auto") \
            from None


seeds_option.__name__ = "integer >= 1 or auto"


def _number(value: str, minimum: float, strict: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number > minimum if strict else number >= minimum):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number {'>' if strict else '>='} {minimum:g}")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a number > 0 (``--cpus-per-run``)."""
    return _number(value, 0, strict=True)


def non_negative_float(value: str) -> float:
    """An argparse type: a number >= 0 (``--gpus-per-run``)."""
    return _number(value, 0, strict=False)


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
        type=seeds_option, default=None, metavar="N|auto",
        help="replicates (seeds) per configuration (default: the grid's); auto: in rounds "
             "until every hypothesis is decided (docs/statistics.md)")),
    "max_seeds": (("--max-seeds",), dict(
        type=at_least(1), default=None, metavar="N",
        help="--seeds auto: the budget of replicates (default: hypotheses.toml's, 40)")),
    "first": (("--first",), dict(
        type=at_least(1), default=None, metavar="N",
        help="--seeds auto: replicates at the first look (default: hypotheses.toml's, 10)")),
    "round": (("--round",), dict(
        type=at_least(1), default=None, metavar="K",
        help="--seeds auto: replicates per round after the first (default: hypotheses.toml's, "
             "5)")),
    "base_seed": (("--base-seed",), dict(
        type=at_least(0), default=None, metavar="SEED",
        help="first replicate seed (default: the grid's train.seed; with --seeds auto, "
             "hypotheses.toml's, 100000: fresh replicates)")),
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
    "engine": (("--engine",), dict(
        choices=["local", "ray"], default="local",
        help="where configurations train: in this machine's pytest processes (local; spread "
             "them with -n), or as tasks on a Ray cluster, the pytest process its driver [local]")),
    "ray_address": (("--ray-address",), dict(
        default=None, metavar="ADDR",
        help="--engine ray: the cluster's head, host:port (default: $RAY_ADDRESS, else start "
             "Ray on this machine)")),
    "cpus_per_run": (("--cpus-per-run",), dict(
        type=positive_float, default=1.0, metavar="N",
        help="--engine ray: CPUs a training task asks for, and the threads it uses [1]")),
    "gpus_per_run": (("--gpus-per-run",), dict(
        type=non_negative_float, default=0.0, metavar="F",
        help="--engine ray: GPUs a training run asks for; a fraction (0.25) lets four tasks "
             "share one GPU, and a pack (--pack) asks for its runs' shares together [0]")),
    "pack": (("--pack",), dict(
        type=pack_option, default="auto", metavar="auto|off|N",
        help="train up to N runs of one architecture together, as one module (each run still "
             "its own case and MLflow run; docs/packing.md); auto: 16 on a GPU, off on the CPU, "
             "where packing is no faster [auto]")),
    "claims_db": (("--claims-db",), dict(
        default=None, metavar="URI",
        help="PostgreSQL database (postgresql://...) where each configuration is claimed, so "
             f"sessions on several machines train it once (default: ${CLAIMS_ENV}, else the "
             "--mlflow-uri if it is PostgreSQL, else file locks on this machine)")),
    "experiments": (("--experiments",), dict(
        default=["experiments"], metavar="PATH", nargs="+",
        help="python -m normcheck report: the test files or folders whose hypotheses form the "
             "family, as pytest would collect them [experiments]")),
    "inconclusive": (("--inconclusive",), dict(
        choices=["fail", "warn"], default="fail",
        help="an inconclusive verdict fails the check, or only warns [fail]")),
}
SESSION_OPTIONS = tuple(o for o in OPTIONS if o != "experiments")  # the pytest plugin's
# python -m normcheck report's
REPORT_OPTIONS = ("grid", "seeds", "max_seeds", "first", "round", "base_seed", "resample_split",
                  "report_dir", "mlflow_uri", "experiment", "record_verdicts", "experiments")


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
