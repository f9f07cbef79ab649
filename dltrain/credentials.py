"""Hiding the passwords that database URLs carry, in every text dltrain shows or writes.

A ``--storage`` URL may hold a password, and users type URLs that no parser reads the way they
meant: an unescaped ``@`` or ``:`` in the password, a port that is not a number, a missing
``//``. Parsing such a URL to find its password is what leaked it (SQLAlchemy renders what it
could not parse as given, and splits ``pa@ss`` into a password ``pa`` and a host ``ss@host`` that
drivers then quote in their errors). So nothing here parses: the password is taken to run from
the first ``:`` after the user name to the *last* ``@``, which can only hide too much, never too
little, and the pieces of a known URL's password are hidden wherever they turn up.

Light: no SQLAlchemy, no TensorFlow; the error boundary uses it for every message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# Pieces shorter than this are not hidden on their own outside a URL: erasing every "a" or "db"
# from a message would make it unreadable, and such a piece says little about the password.
MIN_PIECE = 3

# user:password@ after a scheme in running text. The password runs to the last "@" before a
# space or a quote, since a password may hold "@", ":" or "/" that parsers split on.
_URL_USERINFO = re.compile(
    r"(?P<lead>\b[A-Za-z][A-Za-z0-9+.\-]*:/*)(?P<user>[^\s:/@'\"]*):(?P<password>[^\s'\"]*)@"
)
# Secrets given as parameters: ?password=…, &sslpassword=…, or password='…' in a driver's
# connection string.
_SECRET_PARAM = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|sslpassword|secret|token|api_?key|access_?key)\s*=)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^&;\s'\"]*)"
)


def mask_credentials(text: str, url: str | None = None) -> str:
    """``text`` with every password hidden: in any URL it quotes, however malformed, in secret
    parameters (``password=…``), and, when ``url`` is given, every piece of ``url``'s password.

    Args:
        text: a message, log line, traceback or file content; or a URL to display.
        url: the URL whose password must not appear, even cut up by a driver's error message
            (``failed to resolve host 'ss@127.0.0.1'`` for the password ``pa@ss``).

    Returns:
        The text, each password replaced by ``***``; the user name, host and database stay.

    Example:
        >>> mask_credentials("postgresql://alice:S3c@ret@db.example:5432/study")
        'postgresql://alice:***@db.example:5432/study'
        >>> url = "postgresql://alice:pa@ss@127.0.0.1/db"
        >>> mask_credentials("failed to resolve host 'ss@127.0.0.1'", url)
        "failed to resolve host '***@127.0.0.1'"
    """
    if url:
        text = text.replace(url, _masked_url(url))
        for piece in _password_pieces(url):
            text = text.replace(piece, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['lead']}{m['user']}:{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


def _split_userinfo(url: str) -> tuple[str, str, str, str] | None:
    """``(before, user, password, after)`` of a URL with a password, else None.

    Without ``scheme://`` the whole text is read as ``user:password@host…`` (a URL missing its
    scheme still carries the password). A ``/`` right after ``://`` starts a path (sqlite), so
    there is no user there.
    """
    head, sep, rest = url.partition("://")
    if sep:
        head += sep
    else:
        head, rest = "", url
    if rest.startswith("/"):
        return None
    at = rest.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return None
    user, _, password = rest[:at].partition(":")
    return head, user, password, rest[at:]


def _masked_url(url: str) -> str:
    parts = _split_userinfo(url)
    if parts is not None:
        head, user, _, after = parts
        url = f"{head}{user}:{MASK}{after}"
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", url)


def _password_pieces(url: str) -> list[str]:
    """The password of ``url`` and its secret parameters, whole, decoded and cut where parsers
    cut them; longest first, so a piece never leaves part of a longer one behind."""
    secrets: list[str] = []
    parts = _split_userinfo(url)
    if parts is not None:
        secrets.append(parts[2])
    secrets += [m["value"].strip("'\"") for m in _SECRET_PARAM.finditer(url)]
    pieces: set[str] = set()
    for secret in secrets:
        for form in (secret, unquote(secret)):
            pieces.add(form)
            pieces.update(re.split(r"[@:/?#&=\s]+", form))
    return sorted((p for p in pieces if len(p) >= MIN_PIECE and p != MASK), key=len, reverse=True)
