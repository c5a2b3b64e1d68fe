"""Where hypotheses are registered: statements, margins, the family's error rate and history.

The study's own hypotheses, the family and the sequential design are registered in
``normcheck/hypotheses.toml``. A hypothesis a researcher adds to ``experiments/`` is registered
beside it, in a ``hypotheses.toml`` in its folder, in the same form: a ``[name]`` table with its
``statement`` (``{norm}`` is the arm's label), its margins and other constants, the date it was
``registered`` and the ``commit`` that registered it, committed before any run it governs.
"""

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

REGISTRATION = "hypotheses.toml"
REQUIRED = ("statement", "registered", "commit")  # of a hypothesis registered beside its code


class RegistrationError(ValueError):
    """A hypothesis is not registered, or registered twice or without what it needs."""


def declared() -> dict:
    """The study's registration: family, hypotheses, design and history."""
    return tomllib.loads(resources.files("normcheck").joinpath(REGISTRATION).read_text())


def texts(beside: list[Path]) -> dict[str, str]:
    """The registrations as files to keep with a study: the study's own, and each one beside
    the experiments (under ``registrations/<folder>/``)."""
    own = {REGISTRATION: resources.files("normcheck").joinpath(REGISTRATION).read_text()}
    return own | {f"registrations/{p.parent.name}/{REGISTRATION}": p.read_text() for p in beside}


@lru_cache(maxsize=32)
def _beside(folder: Path) -> dict:
    path = folder / REGISTRATION
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistrationError(f"{path}: cannot read the registration ({exc})") from exc


def entry(name: str, source: Path) -> tuple[dict, Path | None]:
    """The registration of hypothesis ``name`` defined in ``source``: from the study's
    registration, or from ``hypotheses.toml`` beside ``source`` (then also its path)."""
    own = declared()
    local = _beside(source.resolve().parent)
    where = source.resolve().parent / REGISTRATION
    if name in own and name in local:
        raise RegistrationError(f"{name} is registered twice: in normcheck's {REGISTRATION} "
                                f"and in {where}; rename the new one")
    if name in own:
        return own[name], None
    if name not in local:
        raise RegistrationError(
            f"hypothesis {name} ({source.name}) is not registered: add a [{name}] table with "
            f"{', '.join(REQUIRED)} (and its margins) to {where}, and commit it before any run "
            "it governs (docs/hypotheses.md)")
    missing = [key for key in REQUIRED if key not in local[name]]
    if missing:
        raise RegistrationError(f"{where}: [{name}] needs {', '.join(missing)} "
                                "(docs/hypotheses.md)")
    return local[name], where


class Registered:
    """What a hypothesis reads of its registration: its own entry's keys (``h.margin``) and
    the family's (``h.metric``, ``h.metric_label``, ``h.alpha``)."""

    def __init__(self, own: dict, family: dict) -> None:
        self._own, self._family = own, family

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        for source in (self._own, self._family):
            if key in source:
                return source[key]
        raise AttributeError(f"{key!r} is not registered for this hypothesis; add it to its "
                             f"entry in {REGISTRATION}")
