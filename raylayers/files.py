"""Files a run writes while others may read them (`results.parquet`, the summaries): written whole, read whole.

A writer replaces a file atomically: it writes a temporary file beside it, then `os.replace`s it over the name,
so the name always points at one complete version. A reader of a Parquet file reads all its bytes from one open
handle and parses them from memory: an open handle keeps the version it opened even when the name is replaced
meanwhile. (A path-based `pyarrow.parquet.read_table` may take the file's size when it lists it and read the
file after, so a reader racing a replace parsed a stale length: "Couldn't deserialize thrift".) JSON and text
files need nothing special to read: `Path.read_text` reads from one handle.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _replace_with(path: Path, write) -> None:
    """Call `write(temporary_path)`, then move the temporary file over `path` (same folder, so same filesystem)."""
    path = Path(path)
    # one temporary name per process and thread, created with the user's usual permissions (mkstemp's are 0600)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` so that a concurrent reader sees the old file or the new one, never a part of either."""
    _replace_with(Path(path), lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_parquet_atomic(path: str | Path, table) -> None:
    """Write a pyarrow Table the same way."""
    import pyarrow.parquet as pq

    _replace_with(Path(path), lambda temporary: pq.write_table(table, temporary))


def read_parquet_snapshot(path: str | Path):
    """A pyarrow Table of one complete version of `path`, even while a writer replaces it (see the docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as handle:
        data = handle.read()
    return pq.read_table(pa.BufferReader(data))
