"""Reading single values out of a published benchmark's rows, as the layouts' converters and the writer need them.

Hub parquet files are loose about their values: text may be null, NaN, bytes or padded with spaces, numbers may come
as strings or floats, and answer letters may be written "A", "(a)" or "A.". These helpers turn such values into
what our benchmark folder holds, or None when there is nothing usable, so that a converter can say why it skips a row.
"""

from __future__ import annotations

import math
import re

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def text_value(value) -> str | None:
    """A stripped string, or None for null, NaN and empty values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None


def int_value(value) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None


def text_list(value) -> list[str]:
    """A list of non-empty strings from a list value (None -> [])."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        value = [value]
    return [text for text in (text_value(item) for item in value) if text is not None]


def yes_no(value) -> str | None:
    text = (text_value(value) or "").lower().rstrip(".")
    return text if text in ("yes", "no") else None


def with_hint(hint: str | None, question: str | None) -> str | None:
    return f"{hint}\n{question}" if hint and question else question


def letter_answer(answer, count: int) -> str | None:
    """An option letter from "A", "a", "(A)", "(a)", "A." or "A)"; None unless it names one of `count` options."""
    text = text_value(answer)
    match = re.fullmatch(r"\(?\s*([A-Za-z])\s*[).]?", text or "")
    if match is None:
        return None
    letter = match.group(1).upper()
    return letter if LETTERS.index(letter) < count else None
