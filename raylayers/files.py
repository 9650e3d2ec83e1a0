"""Files a run writes while others may read them (`results.parquet`, the summaries): written whole, read whole.

A writer replaces a file atomically: it writes a temporary file beside it, then `os.replace`s it over the name,
so the name always points at one complete version. A reader of a Parquet file reads all its bytes from one open
handle and parses them from memory: an open handle keeps the version it opened even when the name is replaced
meanwhile. (A path-based `pyarrow.parquet.read_table` may take the file's size when it lists it and read the
file after, so a reader racing a replace parsed a stale length: "Couldn't deserialize thrift".) JSON and text
files need nothing special to read: `Path.read_text` reads from one handle.

Text files the user gives (a train or space YAML, a LLaVA json, predictions, a benchmark's meta.json, an lrs.json, a
checkpoint's metadata) are read by `read_user_text` / `read_user_json`: a file that is missing, unreadable, not a
regular file (a FIFO would block), not UTF-8 or not valid JSON is one `UserError` naming it, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from raylayers.errors import UserError


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


def read_user_text(path: str | Path, what: str = "file") -> str:
    """The text of a file the user gave, as UTF-8; anything wrong with it is one `UserError` naming `what` and the
    file: missing, a folder or another non-regular file, unreadable, not UTF-8 (with the byte offset)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise UserError(f"{what} '{path}' is not a regular file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} '{path}' is not UTF-8 text (byte {err.start})") from None
    except FileNotFoundError:
        raise UserError(f"{what} '{path}' does not exist") from None
    except OSError as err:
        raise UserError(f"cannot read {what} '{path}': {err.strerror or err}") from None


def read_user_json(path: str | Path, what: str = "file"):
    """A JSON file the user gave (`read_user_text`'s rules), parsed; invalid JSON names the line and column."""
    text = read_user_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what} '{path}' is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
                        ) from None
