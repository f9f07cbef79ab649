"""Sniffing a delimited file: what the recipe's ``data.csv`` leaves on ``auto``.

``sniff_csv`` works out, from the file's first lines, the encoding (UTF-8, else Windows-1252),
the delimiter, whether there is a header row, whether quotes are CSV quoting at all (SMS spam has
stray ``"`` inside messages), and a UTF-8 byte-order mark.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.errors import DataError
from dltrain.recipe.data import CsvSpec

SAMPLE_BYTES = 256 * 1024
_DELIMITERS = [",", "\t", ";", "|"]
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|infinity|nan)$", re.I)


@dataclass(frozen=True)
class CsvOptions:
    """How a delimited file is read, with every ``auto`` resolved."""

    delimiter: str
    header: bool
    column_names: list[str]
    skip_rows: int  # lines skipped before the first data row (header included)
    quoting: bool
    encoding: str
    missing_values: list[str]
    strip: bool = True
    notes: list[str] = field(default_factory=list)


_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def sniff_csv(path: Path, spec: CsvSpec, skip_rows: int) -> CsvOptions:
    """Resolve the ``auto`` settings of ``spec`` from the first lines of ``path``.

    Raises:
        DataError: the file is empty or holds no data rows.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(SAMPLE_BYTES)
            truncated = bool(handle.read(1))
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}. Check the path and its permissions.") from None
    if spec.encoding == "auto" and b"\x00" in head[:4096] and not head.startswith(_UTF16_MARKS):
        # text in UTF-8 or Windows-1252 never holds a NUL byte: this is not a table
        raise DataError(
            f"{path} is not a text table: it holds NUL bytes, as binary files (.npz, .xlsx, "
            f"images) do. Point `data.source` at the table, set `data.format` to the file's real "
            f"format, or name its encoding in `data.csv.encoding` if it is UTF-16 or UTF-32 text."
        )
    notes = []
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
        notes.append("removed a UTF-8 byte-order mark")
    encoding, text = _decode(path, head, spec.encoding, truncated)
    if spec.encoding == "auto" and encoding != "utf-8":
        notes.append(
            f"not UTF-8: read as {encoding} (set `data.csv.encoding` if that is not the file's)"
        )
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the sample may end inside a line
    lines = lines[skip_rows:]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError(
            f"{path} holds no rows{f' after skipping {skip_rows} line(s)' if skip_rows else ''}. "
            f"Expected a table with a header row and data rows; check that the export or "
            f"download finished."
        )
    delimiter = spec.delimiter if spec.delimiter != "auto" else _sniff_delimiter(lines)
    if spec.delimiter == "auto":
        notes.append(f"delimiter {delimiter!r}")
    quoting = spec.quoting and not _stray_quotes(lines[:2000], delimiter)
    if spec.quoting and not quoting:
        notes.append('quotes appear inside fields, so " is read as an ordinary character')
    rows = list(
        csv.reader(
            lines[:200],
            delimiter=delimiter,
            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        )
    )
    header = spec.header if spec.header is not None else _looks_like_header(rows)
    width = len(rows[0])
    if spec.column_names is not None:
        names = list(spec.column_names)
        if len(names) != width:
            raise DataError(
                f"`data.csv.column_names` names {len(names)} columns but {path} has {width} "
                f"fields per row (first row: {lines[0][:100]!r}). Name every column, in order."
            )
    elif header:
        names = _unique_names([name.strip() for name in rows[0]])
    else:
        names = [f"column_{i + 1}" for i in range(width)]
        notes.append(f"no header row: columns named column_1 … column_{width}")
    if header and len(rows) == 1 and not truncated:
        raise DataError(
            f"{path} has a header row ({', '.join(names[:6])}{'…' if len(names) > 6 else ''}) "
            f"but no data rows. Expected at least one row of data below it."
        )
    return CsvOptions(
        delimiter=delimiter,
        header=header,
        column_names=names,
        skip_rows=skip_rows + (1 if header else 0),
        quoting=quoting,
        encoding=encoding,
        missing_values=list(spec.missing_values),
        notes=notes,
    )


# Tried in order for `encoding: auto`: UTF-8, then Windows-1252 (what Excel and most Western
# European exports write, and a superset of Latin-1's printable characters), then Latin-1, which
# decodes any byte sequence.
_AUTO_ENCODINGS = ("utf-8", "cp1252", "latin-1")


def _decode(path: Path, head: bytes, encoding: str, truncated: bool) -> tuple[str, str]:
    """The sample as text, and the encoding that read it.

    Raises:
        DataError: the recipe's encoding is unknown or does not read the file.
    """
    errors = "ignore" if truncated else "strict"  # the sample may end inside a character
    candidates = _AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    for candidate in candidates:
        try:
            return candidate, head.decode(
                candidate, errors=errors if candidate == "utf-8" else "strict"
            )
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(
                f"`data.csv.encoding: {encoding}` is not an encoding Python knows. Expected a "
                f"codec name such as utf-8, cp1252, latin-1 or utf-16, or auto."
            ) from None
    raise DataError(
        f"{path} is not {encoding} text. Set `data.csv.encoding` to the file's encoding (for "
        f"example latin-1 or cp1252), or auto to detect UTF-8 and Windows-1252."
    )


def _sniff_delimiter(lines: list[str]) -> str:
    sample = lines[:200]
    best, best_score = ",", -1.0
    for delimiter in _DELIMITERS:
        counts = [line.count(delimiter) for line in sample]
        if not counts or max(counts) == 0:
            continue
        common = max(set(counts), key=counts.count)
        consistency = counts.count(common) / len(counts)
        score = consistency * (1 + min(common, 50) / 100) if common else 0.0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _stray_quotes(lines: list[str], delimiter: str) -> bool:
    """True when quote characters sit inside fields, which CSV quoting never produces."""
    for line in lines:
        if '"' not in line:
            continue
        for match in re.finditer('"+', line):
            start, end = match.span()
            run = end - start
            at_start = start == 0 or line[start - 1] == delimiter
            at_end = end == len(line) or line[end] == delimiter
            if not (at_start or at_end or run % 2 == 0):
                return True
    return False


def _looks_like_header(rows: list[list[str]]) -> bool:
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:51]
    votes_header = 0
    for j, value in enumerate(first):
        below = [row[j].strip() for row in rest if j < len(row)]
        value = value.strip()
        if _NUMBER.match(value):
            return False  # a header is names, not numbers
        numeric_below = sum(bool(_NUMBER.match(v)) for v in below if v)
        if below and numeric_below >= 0.8 * len([v for v in below if v]) and numeric_below:
            votes_header += 1
        elif value in below:
            return False  # the first value repeats in its column: it is data
    return votes_header > 0 or len(set(first)) == len(first)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def is_number(value: str) -> bool:
    """Whether a cell reads as a number (the same rule the profile uses)."""
    return bool(_NUMBER.match(value.strip()))
