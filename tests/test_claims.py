"""Claims on one machine (file locks) and URIs shown without their passwords. PostgreSQL
claims are tested against a real server in test_cluster.py."""

from pathlib import Path

from normcheck.claims import FileClaims
from normcheck.uris import is_postgres, redact, redact_text


def test_a_file_claim_is_held_by_one_holder_until_released(tmp_path: Path) -> None:
    first, second = FileClaims(tmp_path, "1"), FileClaims(tmp_path, "1")
    elsewhere = FileClaims(tmp_path, "2")
    assert first.try_claim("abc")
    assert not second.try_claim("abc")
    assert elsewhere.try_claim("abc")  # the same configuration in another experiment
    assert second.try_claim("other")
    first.release("abc")
    assert second.try_claim("abc")
    second.close()
    with first.hold("abc"), first.hold("other"):
        assert not second.try_claim("abc")
    assert second.try_claim("abc")


def test_passwords_never_shown() -> None:
    uri = "postgresql+psycopg://user:p%40ss@db.example:5432/mlflow"
    assert redact(uri) == "postgresql+psycopg://user:***@db.example:5432/mlflow"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert redact_text("login p@ss refused (p%40ss)", uri) == "login *** refused (***)"
    assert is_postgres(uri) and is_postgres("postgres://h/db")
    assert not is_postgres("sqlite:///x") and not is_postgres(None)
