"""Grids as data: named TOML profiles, and user TOML files that define or extend one."""

import itertools
import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from normcheck import norms
from normcheck.records import PROTOCOLS, ConfigError, DataSpec, TrainConfig

AXES = {"lr": float, "fc_units": int, "norm": str}
OPTIONAL_AXES = {"dropout": float}  # an axis when [grid] lists it, else fixed in [train]
FIXED = {f.name: f.type for f in fields(TrainConfig) if f.name not in AXES.keys() | {"split_seed"}}
REPLICATE_KEYS = {"seeds": int, "resample_split": bool}
DATA_KEYS = {f.name for f in fields(DataSpec)}
TOP_KEYS = {"description", "extends", "grid", "train", "data", "replicates"}


class GridError(ValueError):
    """A grid profile or file is invalid; the message names it, the key and the allowed values."""


@dataclass(frozen=True)
class Grid:
    """The configurations one session trains, and the data they train on."""

    name: str
    description: str
    lr: tuple[float, ...]
    fc_units: tuple[int, ...]
    norm: tuple[str, ...]
    dropout: tuple[float, ...]
    base: TrainConfig  # the fixed settings and first seed; each configuration sets the axes
    data: DataSpec
    seeds: int = 1  # replicates per cell: seeds base, base+1, ...
    resample_split: bool = False  # each replicate also draws its own train/validation split

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise GridError(f"seeds={self.seeds!r} is invalid: use an integer >= 1")

    @property
    def base_seed(self) -> int:
        return self.base.seed

    @property
    def arms(self) -> list[str]:
        """The normalisations the hypotheses compare with none."""
        return norms.arms(self.norm)

    def configs(self) -> list[TrainConfig]:
        """Every (lr, fc_units, dropout, norm, replicate), in the order the profile lists them.

        Replicate i uses seed base+i (and split split_seed+i when splits resample); every cell
        and norm sees the same split and batch order, so runs are compared pair by pair.
        """
        return [replace(self.base, lr=lr, fc_units=fc, norm=norm, dropout=dropout,
                        seed=self.base_seed + i,
                        split_seed=self.data.split_seed + (i if self.resample_split else 0))
                for lr, fc, dropout, norm, i in itertools.product(
                    self.lr, self.fc_units, self.dropout, self.norm, range(self.seeds))]

    def replicate(self, config: TrainConfig) -> int:
        """Which replicate of this grid ``config`` is (0 for the first seed)."""
        return config.seed - self.base_seed

    def with_replicates(self, seeds: int | None = None, base_seed: int | None = None,
                        resample_split: bool | None = None) -> "Grid":
        """This grid with command-line overrides of the replicate settings."""
        base = self.base if base_seed is None else replace(self.base, seed=base_seed)
        return replace(self, base=base,
                       seeds=self.seeds if seeds is None else seeds,
                       resample_split=(self.resample_split if resample_split is None
                                       else resample_split))


def profile_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml")
                  for p in resources.files("normcheck.profiles").iterdir()
                  if p.name.endswith(".toml"))


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{origin}: malformed TOML: {exc}") from exc


def _raw_profile(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The merged raw tables of a profile or file, following ``extends`` (default: ``full``)."""
    path = Path(name_or_path)
    if name_or_path in profile_names():
        origin = f"profile {name_or_path!r}"
        text = resources.files("normcheck.profiles").joinpath(f"{name_or_path}.toml").read_text()
    elif path.suffix == ".toml":
        origin = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise GridError(f"{path}: cannot read the grid file ({exc.strerror})") from exc
    else:
        raise GridError(f"unknown grid {name_or_path!r}: use a profile name "
                        f"({', '.join(profile_names())}) or a path to a .toml file")
    if name_or_path in seen:
        raise GridError(f"{origin}: 'extends' forms a cycle: {' -> '.join(seen + (name_or_path,))}")
    raw = _read_toml(text, origin)
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise GridError(f"{origin}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    for table in ("grid", "train", "data", "replicates"):
        if not isinstance(raw.get(table, {}), dict):
            raise GridError(f"{origin}: [{table}] must be a table")
    if not isinstance(raw.get("description", ""), str):
        raise GridError(f"{origin}: description={raw['description']!r} must be a string")
    parent_name = raw.get("extends", None if name_or_path == "full" else "full")
    if parent_name is None:
        return raw, origin
    if not isinstance(parent_name, str):
        raise GridError(f"{origin}: extends={parent_name!r} must be a profile name or a path")
    if parent_name not in profile_names():
        if not parent_name.endswith(".toml"):
            raise GridError(f"{origin}: extends={parent_name!r} is not a profile name "
                            f"({', '.join(profile_names())}) or a path to a .toml file")
        if path.suffix == ".toml":  # relative to the extending file
            parent_name = str(path.parent / parent_name)
    try:
        parent, _ = _raw_profile(parent_name, seen + (name_or_path,))
    except GridError as exc:
        raise GridError(f"{origin}: extends={parent_name!r}: {exc}") from exc
    merged = {key: {**parent.get(key, {}), **raw.get(key, {})}
              for key in ("grid", "train", "data", "replicates")}
    merged["description"] = raw.get("description", parent.get("description", ""))
    return merged, origin


def _axis(values: Any, key: str, kind: type, origin: str) -> tuple:
    if not isinstance(values, list) or not values:
        raise GridError(f"{origin}: grid.{key}={values!r} must be a non-empty list")
    out = []
    for v in values:
        ok = isinstance(v, str) if kind is str else (
            isinstance(v, (int, float)) and not isinstance(v, bool) and
            (kind is float or float(v).is_integer()))
        if not ok:
            raise GridError(f"{origin}: grid.{key} value {v!r} is not a {kind.__name__}")
        out.append(kind(v))
    if len(set(out)) != len(out):
        raise GridError(f"{origin}: grid.{key}={values!r} lists a value twice")
    return tuple(out)


def load_grid(name_or_path: str) -> Grid:
    """Load a named profile or a TOML file, validating every value before anything trains."""
    raw, origin = _raw_profile(name_or_path)
    grid, train, data = raw.get("grid", {}), dict(raw.get("train", {})), raw.get("data", {})
    replicates = raw.get("replicates", {})
    for table, keys, allowed in (("grid", grid, AXES | OPTIONAL_AXES), ("train", train, FIXED),
                                 ("data", data, DATA_KEYS), ("replicates", replicates,
                                                             REPLICATE_KEYS)):
        unknown = set(keys) - set(allowed)
        if unknown:
            raise GridError(f"{origin}: unknown keys {sorted(unknown)} in [{table}]; "
                            f"allowed: {sorted(allowed)}")
    for key, value in train.items():
        kind = FIXED[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind is int and not float(value).is_integer()):
            wanted = "an integer" if kind is int else "a number"
            raise GridError(f"{origin}: train.{key}={value!r} must be {wanted}")
        train[key] = kind(value)
    missing = set(AXES) - set(grid)
    if missing:
        raise GridError(f"{origin}: [grid] needs {sorted(missing)}")
    axes = {key: _axis(grid[key], key, kind, origin) for key, kind in AXES.items()}
    for key, kind in OPTIONAL_AXES.items():  # a [grid] list wins over a fixed [train] value
        fixed = train.pop(key, getattr(TrainConfig, key))
        axes[key] = _axis(grid[key], key, kind, origin) if key in grid else (kind(fixed),)
    if "classes" in data:
        if not isinstance(data["classes"], list) or \
                not all(isinstance(c, str) for c in data["classes"]):
            raise GridError(f"{origin}: data.classes={data['classes']!r} must be a list of names")
        data = {**data, "classes": tuple(data["classes"])}
    if "protocol" in data and (not isinstance(data["protocol"], str) or
                               data["protocol"] not in PROTOCOLS):
        raise GridError(f"{origin}: data.protocol={data['protocol']!r} is invalid: use one of "
                        f"{sorted(PROTOCOLS)}")
    for key, kind in REPLICATE_KEYS.items():
        if key in replicates and type(replicates[key]) is not kind:
            raise GridError(f"{origin}: replicates.{key}={replicates[key]!r} must be "
                            f"{'true or false' if kind is bool else 'an integer'}")
    try:
        base = TrainConfig(lr=axes["lr"][0], fc_units=axes["fc_units"][0],
                           norm=axes["norm"][0], dropout=axes["dropout"][0], **train)
        result = Grid(name=name_or_path, description=str(raw.get("description", "")),
                      base=base, data=DataSpec(**data), **axes, **replicates)
        result.configs()  # validates every value through TrainConfig
    except (ConfigError, GridError, TypeError) as exc:
        raise GridError(f"{origin}: {exc}") from exc
    return result
