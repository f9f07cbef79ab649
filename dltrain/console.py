"""Where output goes: people read Rich on stderr, machines read JSON on stdout.

No global console: commands make one and pass it down.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console


def make_console(*, quiet: bool = False) -> Console:
    """Make the stderr console for human output.

    Rich already honours ``NO_COLOR`` and drops colour and live displays when stderr is not a
    terminal, which is what CI logs need.
    """
    # soft_wrap: sentences stay one line in CI logs instead of being cut at 80 columns.
    return Console(stderr=True, quiet=quiet, soft_wrap=True)


def write_json(document: Any) -> None:
    """Write one JSON document to stdout (the only thing dltrain ever writes there)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
