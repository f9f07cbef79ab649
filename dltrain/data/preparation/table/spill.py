"""Pass 1's parsed batches, kept for pass 2 so the text is parsed once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (pa.ipc)

SPILL_BUDGET = 64 << 20  # bytes of parsed rows kept in memory between the two passes
SPILL_FILE = ".pass1.arrow"


class Spill:
    """Pass 1's parsed batches, replayed in pass 2 instead of parsing the text again.

    Held in memory up to ``budget`` bytes; beyond that every batch goes to an uncompressed Arrow
    file (written at ~1 GB/s, read back a batch at a time), so memory stays flat for any size.
    """

    def __init__(self, path: Path, budget: int = SPILL_BUDGET) -> None:
        self.path = path
        self.budget = budget
        self.held: list[tuple[int, pa.RecordBatch]] = []
        self.files: list[int] = []  # file index of each spilled batch
        self.bytes = 0
        self._sink: Any = None
        self._writer: Any = None

    def add(self, index: int, columns: dict[str, pa.Array]) -> None:
        """Keep one batch of file ``index``: in memory while within budget, else on disk."""
        batch = pa.RecordBatch.from_pydict(columns)
        if self._writer is None and self.bytes + batch.nbytes <= self.budget:
            self.held.append((index, batch))
            self.bytes += batch.nbytes
            return
        if self._writer is None:
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, batch.schema)
            for held_index, held in self.held:
                self._write(held_index, held)
            self.held = []
        self._write(index, batch)

    def _write(self, index: int, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.files.append(index)

    def replay(self) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        """(file index, columns) of every batch kept, in the order they were added."""
        if self._writer is None:
            for index, batch in self.held:
                yield index, dict(zip(batch.schema.names, batch.columns, strict=True))
            return
        self._writer.close()
        self._sink.close()
        self._writer = None
        with pa.OSFile(str(self.path), "rb") as source:
            reader = pa.ipc.open_file(source)
            for i, index in enumerate(self.files):
                batch = reader.get_batch(i)
                yield index, dict(zip(batch.schema.names, batch.columns, strict=True))

    def close(self) -> None:
        """Drop what is held and remove the spill file."""
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        self.held = []
        self.path.unlink(missing_ok=True)


def spilled(
    batches: Iterator[tuple[int, dict[str, pa.Array]]], spill: Spill | None
) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    """``batches``, each also kept for pass 2 (on the prefetch thread, beside the parsing)."""
    for index, columns in batches:
        if spill is not None:
            spill.add(index, columns)
        yield index, columns
