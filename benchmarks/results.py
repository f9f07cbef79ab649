"""benchmarks/RESULTS.md: each benchmark owns one section, replaced in place when it runs again."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Measured with the scripts in `benchmarks/`; each section says how to reproduce it.\n"
)


def write_section(section: str, title: str) -> None:
    """Replace the section whose heading starts with ``title`` (or append it), keeping the others.

    Args:
        section: the Markdown, its first line the heading.
        title: the heading's fixed part (a heading may end in a date that changes).
    """
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else HEADER
    lines = text.splitlines()
    new = section.rstrip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
    if start is None:
        lines = [*lines, "", *new]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        after = lines[end:]
        lines = [*lines[:start], *new, *([""] + after if after else [])]
    RESULTS.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
