"""Where images come from: a folder, a LLaVA json, or a benchmark folder (DESIGN.md: SRC for images).

Bad files never stop the work: a file that is empty, corrupt or not an image is skipped and counted with its reason,
and the caller reports the counts. Only "no usable image at all" is an error.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from raylayers.errors import UserError


@dataclass(frozen=True)
class ImageRef:
    """One image to read: a file path, or encoded bytes (benchmark parquet), and where it was named."""

    key: str
    path: Path | None = None
    data: bytes | None = None


@dataclass
class SkipCounter:
    """Skipped images by reason, with a few examples to name in the warning."""

    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, key: str, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{key} ({reason})")

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"skipped {self.total} image(s): {kinds}; e.g. {'; '.join(self.examples)}"


def _resolve_llava_image(json_path: Path, image: str) -> Path:
    """LLaVA json names images relative to an image folder: try beside the json, then its images/ folder."""
    candidates = [json_path.parent / image, json_path.parent / "images" / image]
    return next((path for path in candidates if path.exists()), candidates[0])


def _llava_refs(json_path: Path) -> list[ImageRef]:
    try:
        records = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read LLaVA json '{json_path}': {err}") from None
    if not isinstance(records, list):
        raise UserError(f"LLaVA json '{json_path}' must hold a list of records, found {type(records).__name__}")
    refs, seen = [], set()
    for index, record in enumerate(records):
        image = record.get("image") if isinstance(record, dict) else None
        if isinstance(image, list):  # multi-image records: take each
            names = image
        elif isinstance(image, str):
            names = [image]
        else:
            continue  # text-only records carry no image
        for name in names:
            if name not in seen:
                seen.add(name)
                refs.append(ImageRef(key=name, path=_resolve_llava_image(json_path, name)))
    return refs


def _benchmark_refs(folder: Path) -> list[ImageRef]:
    import pyarrow.parquet as pq

    table_path = folder / "questions.parquet"
    try:
        table = pq.read_table(table_path, columns=["image"])
    except Exception as err:  # pyarrow raises several types for a bad file or a missing column
        raise UserError(f"cannot read the image column of '{table_path}': {str(err).splitlines()[0]}") from None
    refs, seen = [], set()
    for row, image in enumerate(table.column("image").to_pylist()):
        if isinstance(image, dict):  # HF datasets' Image feature: {"bytes", "path"}
            image = image.get("bytes") or image.get("path")
        if isinstance(image, (bytes, bytearray)):
            refs.append(ImageRef(key=f"{table_path.name}[row {row}]", data=bytes(image)))
        elif isinstance(image, str) and image not in seen:
            seen.add(image)
            refs.append(ImageRef(key=image, path=folder / image))
    return refs


def image_refs(source: str | Path) -> list[ImageRef]:
    """Every image a source names, in a stable order (duplicates dropped)."""
    source = Path(source).expanduser()
    if not source.exists():
        raise UserError(f"image source '{source}' does not exist (give a folder of images, a LLaVA json, "
                        "or a benchmark folder)")
    if source.is_file():
        if source.suffix.lower() != ".json":
            raise UserError(f"image source '{source}' is a file but not a LLaVA .json")
        return _llava_refs(source)
    if (source / "questions.parquet").is_file():
        return _benchmark_refs(source)
    files = sorted(path for path in source.rglob("*")
                   if path.is_file() and not any(part.startswith(".") for part in path.relative_to(source).parts))
    return [ImageRef(key=str(path.relative_to(source)), path=path) for path in files]


def open_image(ref: ImageRef) -> tuple[Image.Image | None, str | None]:
    """Decode one image fully; returns (image, None) or (None, reason it was skipped)."""
    try:
        if ref.data is not None:
            if not ref.data:
                return None, "empty"
            image = Image.open(io.BytesIO(ref.data))
        else:
            if not ref.path.exists():
                return None, "missing"
            if ref.path.stat().st_size == 0:
                return None, "empty"
            image = Image.open(ref.path)
        image.load()
        return image.convert("RGB"), None
    except UnidentifiedImageError:
        return None, "not an image"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None, "corrupt"


def iter_image_batches(refs: list[ImageRef], batch_size: int, max_images: int | None = None,
                       skipped: SkipCounter | None = None, min_last_batch: int = 1
                       ) -> Iterator[list[Image.Image]]:
    """Decoded RGB images in batches of `batch_size`, skipping bad files into `skipped`.

    A last batch smaller than `min_last_batch` is merged into the one before it (CKA needs 4+ images per batch).
    """
    skipped = skipped if skipped is not None else SkipCounter()
    batch: list[Image.Image] = []
    pending: list[Image.Image] | None = None
    taken = 0
    for ref in refs:
        if max_images is not None and taken >= max_images:
            break
        image, reason = open_image(ref)
        if image is None:
            skipped.add(ref.key, reason)
            continue
        batch.append(image)
        taken += 1
        if len(batch) == batch_size:
            if pending is not None:
                yield pending
            pending, batch = batch, []
    if batch and len(batch) < min_last_batch and pending is not None:
        pending, batch = pending + batch, []
    if pending is not None:
        yield pending
    if batch:
        yield batch
