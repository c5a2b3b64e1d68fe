"""Claims: who trains a configuration, so that every configuration is trained once.

A process claims a configuration before it looks it up in the store and trains it; a second
process asking for it waits (or, asking without waiting, is told no) until the first is done,
then finds the finished run. A claim dies with its holder, so a killed session leaves nothing
claimed, and a run it left RUNNING is known to be dead.

- ``FileClaims``: file locks, seen by the processes of one machine (the default).
- ``PostgresClaims``: PostgreSQL session advisory locks, seen by every machine that reaches the
  database. A claim is held by the claimer's connection: when the process dies, even by
  SIGKILL, the server closes the connection and frees its claims at once.
"""

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock, Timeout

from normcheck.paths import default_cache_dir
from normcheck.uris import CONNECT_TIMEOUT_S, is_postgres, redact, sqlite_path


class ClaimsError(RuntimeError):
    """The claims database cannot be used; the message names it (without its password)."""


class Claims(Protocol):
    def hold(self, key: str) -> contextlib.AbstractContextManager:
        """Claim ``key``, waiting while another process holds it; freed on exit."""

    def try_claim(self, key: str) -> bool:
        """Claim ``key`` if nobody holds it; True if this process now holds it."""

    def release(self, key: str) -> None:
        """Free a claim taken with ``try_claim``."""

    def close(self) -> None:
        """Free every claim this process holds."""


class FileClaims:
    """Claims as file locks in one folder: for the processes of one machine. ``namespace``
    (the MLflow experiment's id) keeps two experiments of one store apart."""

    def __init__(self, folder: Path, namespace: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.namespace = folder, namespace
        self._held: dict[str, FileLock] = {}

    def _lock(self, key: str) -> FileLock:
        return FileLock(self.folder / f"{self.namespace}-{key}.lock")

    def hold(self, key: str) -> contextlib.AbstractContextManager:
        return self._lock(key)

    def try_claim(self, key: str) -> bool:
        lock = self._lock(key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self._held[key] = lock
        return True

    def release(self, key: str) -> None:
        lock = self._held.pop(key, None)
        if lock is not None:
            lock.release()

    def close(self) -> None:
        for key in list(self._held):
            self.release(key)


class PostgresClaims:
    """Claims as PostgreSQL session advisory locks, held by this process's connection.

    ``namespace`` (the MLflow experiment) keeps two studies sharing a database apart. A key
    is the first 8 bytes of a hash: a collision makes two configurations wait for each other,
    never train twice.
    """

    def __init__(self, uri: str, namespace: str) -> None:
        import psycopg

        self.uri, self.namespace = uri, namespace
        parts = urlsplit(uri)
        dsn = urlunsplit(parts._replace(scheme="postgresql"))  # drop a SQLAlchemy "+driver"
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                         application_name="normcheck-claims")
        except psycopg.Error as exc:
            raise ClaimsError(f"PostgreSQL {redact(uri)} cannot be used for claims: "
                              f"{str(exc).strip()}") from None  # the cause may quote the DSN

    def _id(self, key: str) -> int:
        digest = hashlib.sha256(f"{self.namespace}/{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        self._conn.execute("SELECT pg_advisory_lock(%s)", (self._id(key),))
        try:
            yield
        finally:
            self.release(key)

    def try_claim(self, key: str) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._id(key),)).fetchone()
        return bool(row[0])

    def release(self, key: str) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._id(key),))

    def close(self) -> None:
        # Unlock first: the server frees a closed connection's locks only once its backend
        # has noticed, a moment later, and a claim must be free when close() returns.
        with contextlib.suppress(Exception):  # a broken connection holds nothing any more
            self._conn.execute("SELECT pg_advisory_unlock_all()")
        self._conn.close()


def lock_folder(uri: str) -> Path:
    """Where a store's file claims live: beside an SQLite file, else in normcheck's cache,
    one folder per store."""
    db = sqlite_path(uri)
    if db is not None:
        return Path(f"{db}.normcheck-locks")
    return default_cache_dir() / "locks" / hashlib.sha256(uri.encode()).hexdigest()[:16]


def open_claims(claims_uri: str | None, experiment_id: str, lock_folder: Path) -> Claims:
    """PostgreSQL claims for ``claims_uri`` (a ``postgresql://`` URI), else file locks in
    ``lock_folder``."""
    if claims_uri is None:
        return FileClaims(lock_folder, experiment_id)
    if not is_postgres(claims_uri):
        raise ClaimsError(f"--claims-db {redact(claims_uri)}: not a postgresql:// URI")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ClaimsError("--claims-db needs psycopg: pip install 'normcheck[cluster]'") from None
    return PostgresClaims(claims_uri, f"experiment {experiment_id}")
