"""mask_credentials: a storage URL's password never shows, however the URL is malformed."""

from __future__ import annotations

import pytest

from dltrain.credentials import MASK, mask_credentials

# (URL as a user might type it, the pieces of its password that must never be shown)
MALFORMED = [
    ("postgresql://alice:S3cretPW@127.0.0.1:notaport/db", ["S3cretPW"]),
    ("postgresql://alice:S3c@retPW@127.0.0.1:5432/db", ["S3c@retPW", "retPW", "S3c"]),
    ("postgresql://alice:S3cret:PW42@db.example/db", ["S3cret:PW42", "S3cret", "PW42"]),
    ("postgresql://alice:S3cr/etPW@db.example/db", ["S3cr/etPW", "etPW", "S3cr"]),
    ("postgresql://alice:S3c@ret/PW@db.example/db", ["S3c@ret/PW", "ret/PW", "ret", "S3c"]),
    ("postgresql://:S3cretPW@db.example/db", ["S3cretPW"]),
    ("postgresql://alice:S3cretPW@[::1/db", ["S3cretPW"]),
    ("postgresql://alice:S3cretPW@/db", ["S3cretPW"]),
    ("postgresql://alice:S3cretPW@", ["S3cretPW"]),
    ("postgresql://alice:S3cretPW@@db.example/db", ["S3cretPW"]),
    ("postgres://alice:S3cret PW@db.example/db", ["S3cret PW", "S3cret"]),
    ('postgresql://alice:"S3cretPW"@db.example/db', ["S3cretPW"]),
    ("postgresql://alice:S3cr'etPW@db.example/db", ["S3cr'etPW", "S3cr", "etPW"]),
    ("alice:S3cretPW@db.example/db", ["S3cretPW"]),
    ("postgresql//alice:S3cretPW@db.example/db", ["S3cretPW"]),
    ("postgresql:/alice:S3cretPW@db.example/db", ["S3cretPW"]),
    ("postgresql://alice:S3cr%40etPW@db.example/db", ["S3cr%40etPW", "S3cr@etPW"]),
    ("postgresql+psycopg://alice:S3cret%PW@db.example/db", ["S3cret%PW"]),
    ("postgresql://alice:S3cretPW@db.example:5432/db?options=a@b", ["S3cretPW"]),
    ("mysql+pymysql://alice:S3cretPW@h/db?password=S3cretPW", ["S3cretPW"]),
    ("postgresql://alice@db.example/db?sslmode=require&password=S3cretPW", ["S3cretPW"]),
    ("postgresql://alice@db.example/db?password=S3cretPW;x=1", ["S3cretPW"]),
    ("  postgresql://alice:S3cretPW@db.example/db\n", ["S3cretPW"]),
]


@pytest.mark.parametrize(("url", "pieces"), MALFORMED)
def test_a_malformed_url_never_shows_its_password(url: str, pieces: list[str]) -> None:
    shown = mask_credentials(url, url)
    in_a_message = mask_credentials(f"Cannot open study storage {url}: refused.", url)
    for piece in pieces:
        assert piece not in shown, shown
        assert piece not in in_a_message, in_a_message
    assert MASK in shown


@pytest.mark.parametrize(("url", "pieces"), MALFORMED)
def test_what_a_parser_made_of_the_url_is_hidden_in_a_drivers_words(
    url: str, pieces: list[str]
) -> None:
    """A driver quotes the host, port and database SQLAlchemy read, which for a misparsed URL
    hold the rest of the password (``S3c@retPW@host`` gives the host ``retPW@host``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url.strip())
    except Exception:
        pytest.skip("SQLAlchemy does not read this URL at all, so no driver sees its parts")
    message = (
        f"failed to resolve host {parsed.host!r} port {parsed.port!r} database "
        f"{parsed.database!r} user {parsed.username!r} options {dict(parsed.query)!r}"
    )
    masked = mask_credentials(message, url)
    for piece in pieces:
        assert piece not in masked, masked


def test_the_user_host_and_database_stay_readable() -> None:
    url = "postgresql://alice:S3cretPW@db.example:5432/study"
    assert mask_credentials(url, url) == "postgresql://alice:***@db.example:5432/study"
    url = "postgresql://alice:S3c@retPW@127.0.0.1:5432/db"
    assert mask_credentials(url, url) == "postgresql://alice:***@127.0.0.1:5432/db"
    assert (
        mask_credentials("failed to resolve host 'retPW@127.0.0.1'", url)
        == "failed to resolve host '***@127.0.0.1'"
    )


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:////home/alice/runs/tiny/tune/study.db",
        "sqlite:////tmp/odd@name:1/study.db",
        "postgresql://alice@db.example:5432/study",
        "postgresql://db.example/study",
        "Errno 28: no space left on /data/runs/x.json",
        "see https://sqlalche.me/e/20/e3q8 for details",
    ],
)
def test_text_without_a_password_is_unchanged(text: str) -> None:
    assert mask_credentials(text) == text
    assert mask_credentials(text, text) == text


def test_urls_in_running_text_are_masked_without_being_told_about_them() -> None:
    text = (
        "Could not parse SQLAlchemy URL 'postgresql://alice:S3c@retPW@h/db' (conninfo "
        "host=h password='S3cr etPW' port=5432)"
    )
    masked = mask_credentials(text)
    assert "S3c" not in masked and "retPW" not in masked and "etPW" not in masked
    assert "postgresql://alice:***@h/db" in masked and "host=h" in masked
