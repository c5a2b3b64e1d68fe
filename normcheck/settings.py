"""A session's settings: the parsed options checked once, every environment fallback applied.

``SessionOptions.parse`` takes the pytest plugin's or the command line's parsed options (the
same names, ``normcheck.options``) and the paths whose hypotheses form the family. Every
check that can fail before anything trains happens here, with a ``SessionError`` that names
the input and what to do; the defaults live in the options table alone.
"""

import os
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normcheck import regression
from normcheck.cluster import RayOptions
from normcheck.family import Family, load
from normcheck.grid import Grid
from normcheck.options import CLAIMS_ENV, OPTIONS, RAY_ENV, data_dir
from normcheck.registration import RegistrationError
from normcheck.sequential import Design
from normcheck.tracking import default_tracking_uri
from normcheck.uris import is_postgres


class SessionError(ValueError):
    """The session cannot start: bad options, data, store or report folder. The message names
    the input and what to do."""


def _get(options: Namespace, name: str) -> Any:
    """An option's value; its default from the options table where this parser lacks it."""
    keywords = OPTIONS[name][1]
    default = False if keywords.get("action") == "store_true" else None
    return getattr(options, name, keywords.get("default", default))


def _check_record_file(path: str | None) -> None:
    """``--record-verdicts``: a file that can be read (if it exists) and written."""
    if path is None:
        return
    target = Path(path)
    try:
        if target.exists():
            regression.load(target)
    except ValueError as exc:
        raise SessionError(f"--record-verdicts: {exc}") from exc
    folder = target.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or \
            (target.exists() and not os.access(target, os.W_OK)):
        raise SessionError(f"--record-verdicts {path}: cannot write there; pass a writable "
                           "path for the record")


def _ray(options: Namespace, uri: str, workers: int) -> RayOptions | None:
    """``--engine ray`` and its options, checked: None for the local engine."""
    if _get(options, "engine") != "ray":
        return None
    if workers:
        raise SessionError(f"--engine ray with -n {workers}: with Ray the pytest process is "
                           "the driver and the cluster trains in parallel; drop -n")
    address = _get(options, "ray_address") or os.environ.get(RAY_ENV) or None
    if address and uri.startswith("sqlite:"):
        raise SessionError(f"--engine ray --ray-address {address} with --mlflow-uri {uri}: a "
                           "cluster's nodes cannot write this machine's SQLite file; pass an "
                           "MLflow server (http://...) or a postgresql:// store")
    return RayOptions(address, _get(options, "cpus_per_run"), _get(options, "gpus_per_run"))


def _design(options: Namespace) -> Design | None:
    if _get(options, "seeds") != "auto":
        return None
    try:
        return Design.declared(first=_get(options, "first"), round=_get(options, "round"),
                               max_seeds=_get(options, "max_seeds"),
                               base_seed=_get(options, "base_seed"))
    except ValueError as exc:
        raise SessionError(f"--seeds auto: {exc}") from None


def _family(paths: Iterable[str | Path]) -> Family:
    paths = list(paths)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise SessionError(f"--experiments {' '.join(missing)}: no such file or folder; pass "
                           "the folder of the test files that define the hypotheses")
    try:
        return load(paths)
    except (RegistrationError, ValueError) as exc:
        raise SessionError(f"hypotheses: {exc}") from None


@dataclass(frozen=True)
class SessionOptions:
    """Everything a session is told, checked."""

    grid: Grid | None  # None: every run of the experiment (a rebuild of its reports)
    family: Family  # every hypothesis the session collects
    data_dir: str | None
    report_dir: Path
    uri: str
    experiment: str
    log_model: bool = False
    retrain: bool = False
    expect_verdicts: str | None = None
    recorded: tuple[dict, ...] = ()
    record_verdicts: str | None = None
    inconclusive: str = "fail"
    workers: int = 0
    ray: RayOptions | None = None  # --engine ray; None: local
    claims_db: str | None = None  # PostgreSQL claims; None: file locks
    design: Design | None = None  # --seeds auto: rounds of replicates; None: a fixed number
    pack: str | int = "auto"  # --pack: runs trained together (normcheck.packs)
    paths: tuple[str, ...] = ()  # the test files or folders the family was loaded from

    @classmethod
    def parse(cls, options: Namespace, paths: Iterable[str | Path],
              workers: int = 0) -> "SessionOptions":
        """Options from pytest or the command line, and the hypotheses under ``paths``."""
        paths = tuple(str(Path(p).resolve()) for p in paths)
        design, family = _design(options), _family(paths)
        seeds, base_seed = _get(options, "seeds"), _get(options, "base_seed")
        grid = options.grid and options.grid.with_replicates(
            design.max_seeds if design else seeds, design.base_seed if design else base_seed,
            _get(options, "resample_split"))
        if design and not family.hypotheses:
            raise SessionError("--seeds auto: the session collects no hypothesis, so no look "
                               "could decide anything; collect the hypotheses' test files too "
                               "(pytest experiments)")
        problems = grid and family.hypotheses and family.problems(grid.lr, grid.fc_units,
                                                                  grid.norm)
        if problems:
            raise SessionError(f"--grid {grid.name}: " + "; ".join(problems))
        expect = _get(options, "expect_verdicts")
        try:
            recorded = tuple(regression.load(expect)) if expect else ()
        except ValueError as exc:
            raise SessionError(f"--expect-verdicts: {exc}") from exc
        record = _get(options, "record_verdicts")
        _check_record_file(record)
        uri = _get(options, "mlflow_uri") or default_tracking_uri()
        claims = _get(options, "claims_db") or os.environ.get(CLAIMS_ENV) or (
            uri if is_postgres(uri) else None)
        return cls(grid=grid, family=family,
                   data_dir=data_dir(_get(options, "data_dir")),
                   report_dir=Path(_get(options, "report_dir")).resolve(), uri=uri,
                   experiment=_get(options, "experiment"), log_model=_get(options, "log_model"),
                   retrain=_get(options, "retrain"), expect_verdicts=expect, recorded=recorded,
                   record_verdicts=record, inconclusive=_get(options, "inconclusive"),
                   workers=workers, ray=_ray(options, uri, workers), claims_db=claims,
                   design=design, paths=paths, pack=_get(options, "pack"))
