"""Store, database and cluster addresses: shown to people never with their password, and
checked for a listener in seconds rather than after a client library's retries."""

import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

CONNECT_TIMEOUT_S = 5


def sqlite_path(uri: str) -> Path | None:
    """The file of an ``sqlite:///`` URI (None for any other store, or an in-memory one)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***``: for messages, logs and reports."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname or ''}" + \
        (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str, uri: str) -> str:
    """``text`` (e.g. a driver's error message) with ``uri``'s password replaced by ``***``."""
    password = urlsplit(uri).password
    if not password:
        return text
    return text.replace(password, "***").replace(unquote(password), "***")


def is_postgres(uri: str | None) -> bool:
    """A PostgreSQL URI, with or without a SQLAlchemy driver (``postgresql+psycopg://``)."""
    return bool(uri) and urlsplit(uri).scheme.split("+")[0] in ("postgresql", "postgres")


def unreachable(host: str, port: int) -> OSError | None:
    """Why nothing answers at ``host:port`` within ``CONNECT_TIMEOUT_S``; None if something
    does."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return exc
    return None
