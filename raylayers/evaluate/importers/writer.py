"""Writing our benchmark folder from a recognised download: rows read in batches, converted by the layout, checked,
and streamed into `questions.parquet`, then `meta.json`.

The source files are read a batch at a time and the output written as it goes (a `ParquetWriter` on a hidden
partial file, renamed into place only once at least one question was written), so a benchmark larger than memory
imports fine and a failed import leaves no half-written `questions.parquet`. Rows that cannot become a question are
skipped and counted by reason; question ids that repeat get a "#2", "#3", ... suffix and are counted too.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.importers.detect import Source, gqa_roles, is_benchmark_folder, recognise_source
from raylayers.evaluate.importers.layouts import (
    GQA_IMAGE_COLUMNS,
    GQA_INSTRUCTION_COLUMNS,
    LAYOUTS,
    ImportContext,
    Layout,
)
from raylayers.evaluate.importers.values import letter_answer, text_value
from raylayers.evaluate.schema import REQUIRED_COLUMNS
from raylayers.image_source import image_cell

BASE_COLUMNS = REQUIRED_COLUMNS + ("options",)  # every importer writes options, empty when not multiple choice

READ_BATCH_ROWS = 64  # source rows per batch: images make rows large, so keep batches small
WRITE_BATCH_ROWS = 256  # rows buffered before a write ...
WRITE_BATCH_BYTES = 64 << 20  # ... or this many image bytes, whichever comes first


@dataclass
class _Tally:
    """What an import wrote and skipped, for meta.json."""

    num_questions: int = 0
    with_options: int = 0  # questions with options: RealWorldQA's meta depends on whether all of them have some
    num_renamed: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows


# ------------------------------------------------------------------------------------------------ reading rows
def _read_columns(layout: Layout, columns: list[str], required: tuple[str, ...]) -> tuple[list[str], dict]:
    """(columns to read, {source name: key in the row dict}): the required ones plus the optional ones present."""
    wanted = {name.lower(): name for name in layout.optional}
    read, keys = list(required), {name: name for name in required}
    for name in columns:
        if name not in keys and name.lower() in wanted:
            read.append(name)
            keys[name] = wanted[name.lower()]
    return read, keys


def _iter_rows(path: Path, columns: list[str], keys: dict) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns)
        for batch in batches:
            rows = batch.to_pylist()
            yield from ({keys[name]: value for name, value in row.items()} for row in rows)
    except (OSError, ValueError, pa.ArrowException) as err:  # a corrupt file shows only when its pages are read
        raise UserError(f"cannot read '{path}': {str(err).splitlines()[0]}") from None


def _table_rows(source: Source, ctx: ImportContext) -> Iterator[dict | str]:
    """Converted rows (or skip reasons) of a single-table layout, file after file."""
    layout = source.layout
    for path in source.files:
        ctx.file = path
        columns, keys = _read_columns(layout, source.schemas[path], layout.required)
        for row in _iter_rows(path, columns, keys):
            yield layout.convert(row, ctx)
            ctx.row_index += 1


def _gqa_rows(source: Source, ctx: ImportContext) -> Iterator[dict | str]:
    """GQA, lmms-lab/GQA (testdev_balanced_instructions and testdev_balanced_images). Reads id, imageId, question
    and answer from the instructions, id and image from the images; question_id = id, `image_id` = imageId.

    GQA keeps questions and images in separate tables joined on imageId. The questions (text only) are held in
    memory, grouped by image; the images are streamed and each one's questions emitted as it passes, so the output
    follows the images' order. Questions whose image never comes are skipped."""
    instructions, images = gqa_roles(source.folder, source.files, source.schemas)
    by_image: dict[str, list[dict]] = {}
    for path in instructions:
        for row in _iter_rows(path, list(GQA_INSTRUCTION_COLUMNS), {name: name for name in GQA_INSTRUCTION_COLUMNS}):
            image_id = text_value(row["imageId"])
            by_image.setdefault(image_id, []).append(
                {"question_id": text_value(row["id"]), "question": text_value(row["question"]),
                 "answer": text_value(row["answer"]), "image_id": image_id})
    for path in images:
        ctx.file = path
        for row in _iter_rows(path, list(GQA_IMAGE_COLUMNS), {name: name for name in GQA_IMAGE_COLUMNS}):
            for question in by_image.pop(text_value(row["id"]), []):  # pop: an image listed twice is used once
                yield question | {"image": row["image"]}
                ctx.row_index += 1
    for questions in by_image.values():
        for _ in questions:
            yield "image not in the images files"


# ------------------------------------------------------------------------------------------------ finishing rows
def _image_bytes(value, ctx: ImportContext) -> bytes | None:
    """Encoded bytes from an HF image struct {"bytes", "path"}, raw bytes, or a path beside the parquet file."""
    image = image_cell(value, ctx.file.parent if ctx.file is not None else None)
    if isinstance(image, bytes):
        return image or None
    if image is not None and ctx.file is not None and Path(image).is_file():
        return Path(image).read_bytes() or None
    return None


def _finish_row(layout: Layout, converted: dict, ctx: ImportContext) -> dict | str:
    """Our row from a converter's output, or why it is skipped (checks every layout shares)."""
    row = dict(converted)
    if not row.get("question_id"):
        return "missing question_id"
    if not row.get("question"):
        return "missing question"
    if not row.get("answer"):
        return "missing answer"
    row["options"] = list(row.get("options") or [])
    if row["options"]:
        if len(row["options"]) < 2:
            return "fewer than 2 options"
        if letter_answer(row["answer"], len(row["options"])) != row["answer"]:
            return "answer not among the options"
    elif layout.answer_type == "multiple_choice" and layout.short_fallback is None:
        return "no options"
    image = _image_bytes(row.get("image"), ctx)
    if image is None:
        return "missing image"
    row["image"] = image
    row["task"] = layout.name
    row["category"] = layout.category
    return {name: row.get(name) for name in BASE_COLUMNS + tuple(name for name, _ in layout.extras)}


def _make_id_unique(row: dict, seen_ids: Counter, tally: _Tally) -> None:
    """Suffix a question id seen before with "#<its count>", as ids must be unique within the folder."""
    seen_ids[row["question_id"]] += 1
    if (count := seen_ids[row["question_id"]]) > 1:
        row["question_id"] = f"{row['question_id']}#{count}"
        tally.num_renamed += 1


# ------------------------------------------------------------------------------------------------ writing
def _schema(layout: Layout):
    import pyarrow as pa

    kinds = {"str": pa.string(), "int": pa.int64(), "list": pa.list_(pa.string())}
    fields = [(name, pa.string()) for name in ("question_id",)] + [("image", pa.binary())]
    fields += [(name, pa.string()) for name in ("question", "answer", "task", "category")]
    fields += [("options", pa.list_(pa.string()))]
    fields += [(name, kinds[kind]) for name, kind in layout.extras]
    return pa.schema(fields)


def _stream_questions(source: Source, path: Path, limit: int | None) -> _Tally:
    """Write the source's questions (the first `limit` of them) to the parquet file `path`, a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    layout, schema = source.layout, _schema(source.layout)
    tally, seen_ids, ctx = _Tally(), Counter(), ImportContext()
    reader = _gqa_rows if layout.name == "gqa" else _table_rows
    buffer, buffered_bytes = [], 0
    with pq.ParquetWriter(path, schema) as writer:
        for converted in reader(source, ctx):
            row = converted if isinstance(converted, str) else _finish_row(layout, converted, ctx)
            if isinstance(row, str):
                tally.skipped[row] += 1
                continue
            _make_id_unique(row, seen_ids, tally)
            buffer.append(row)
            buffered_bytes += len(row["image"])
            tally.num_questions += 1
            tally.with_options += bool(row["options"])
            if len(buffer) >= WRITE_BATCH_ROWS or buffered_bytes >= WRITE_BATCH_BYTES:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                buffer, buffered_bytes = [], 0
            if limit is not None and tally.num_questions >= limit:
                break
        if buffer:
            writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
    return tally


def _write_questions(source: Source, out: Path, limit: int | None) -> _Tally:
    """`out/questions.parquet`, written through a partial file that replaces it only when it holds a question."""
    partial = out / ".questions.parquet.partial"
    try:
        tally = _stream_questions(source, partial, limit)
        if tally.num_questions == 0:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(tally.skipped.items())) or "no rows"
            raise UserError(f"no usable question in '{source.folder}' as layout '{source.layout.name}' "
                            f"(skipped: {reasons})")
        os.replace(partial, out / "questions.parquet")
    finally:
        partial.unlink(missing_ok=True)
    return tally


def _meta(source: Source, tally: _Tally, limit: int | None) -> dict:
    """meta.json's content (the package docstring lists its keys)."""
    layout = source.layout
    metric, answer_type = layout.metric, layout.answer_type
    if layout.short_fallback is not None and tally.with_options < tally.num_questions:
        metric, answer_type = layout.short_fallback
    return {"task": layout.name, "category": layout.category, "metric": metric, "answer_type": answer_type,
            "num_questions": tally.num_questions, "description": layout.description, "source": str(source.folder),
            "layout": layout.name, "dataset": layout.dataset,
            "files": [str(path.relative_to(source.folder)) for path in source.files], "limit": limit,
            "num_skipped": sum(tally.skipped.values()), "skipped": dict(sorted(tally.skipped.items())),
            "num_renamed_ids": tally.num_renamed}


# ------------------------------------------------------------------------------------------------ importing
def _check_arguments(src: Path, out: Path, layout: str | None, limit: int | None) -> None:
    """UserErrors for arguments that cannot work, before any file is read."""
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"unknown benchmark layout '{layout}'; valid layouts: {', '.join(sorted(LAYOUTS))}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1, got {limit}")
    if not src.is_dir():
        raise UserError(f"benchmark source '{src}' is not a folder (give the folder holding the downloaded "
                        "parquet files)")
    if is_benchmark_folder(src):
        raise UserError(f"'{src}' is already a benchmark folder (questions.parquet and meta.json); nothing to import")
    if out.resolve() == src.resolve():
        raise UserError(f"the output folder must not be the source folder '{src}'")


def import_benchmark(src, out, layout: str | None = None, limit: int | None = None) -> dict:
    """Write `out/questions.parquet` and `out/meta.json` from the parquet files of a published benchmark under
    `src`; returns the meta. `layout` is a key of LAYOUTS (guessed from the schemas when None); `limit` keeps only
    the first that many questions."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    _check_arguments(src, out, layout, limit)
    source = recognise_source(src, layout, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    meta = _meta(source, _write_questions(source, out, limit), limit)
    (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta
