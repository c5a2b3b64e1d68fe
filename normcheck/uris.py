"""Store and database URIs as people see them: never with their password."""

from urllib.parse import unquote, urlsplit, urlunsplit


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
