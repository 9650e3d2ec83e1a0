"""Where images come from: a folder, a LLaVA json, or a benchmark folder (ARCHITECTURE.md: SRC for images).

Bad files never stop the work: a file that is missing, empty, corrupt, not an image, not a regular file (a FIFO would
block the reader), unreadable (permission denied), or too large (PIL's decompression-bomb limit), and a sub-folder
that cannot be listed, are skipped and counted with their reason, and the caller reports the counts. Only "no usable
image at all" is an error. PIL's own DecompressionBombWarning (an image over its soft pixel limit, still decoded) is
silenced here, once: the caller reports what it skipped.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from raylayers.errors import UserError

warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageRef:
    """One image to read: a file path, or encoded bytes (benchmark parquet), and where it was named."""

    key: str
    path: Path | None = None
    data: bytes | None = None
    problem: str | None = None  # known before reading (a sub-folder that could not be listed)

    @classmethod
    def of(cls, key: str, source: str | Path | bytes) -> ImageRef:
        """A reference to a path or to encoded bytes, whichever `source` is."""
        if isinstance(source, (bytes, bytearray)):
            return cls(key, data=bytes(source))
        return cls(key, path=Path(source))


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


def llava_image_path(json_path: str | Path, image: str, image_folder: str | Path | None = None) -> Path:
    """Where a LLaVA record's image lives (the one rule, for LRS and training): in `image_folder` when given, else
    beside the json, else in the json's `images/` folder."""
    if image_folder:
        return Path(image_folder) / image
    json_path = Path(json_path)
    candidates = [json_path.parent / image, json_path.parent / "images" / image]
    return next((path for path in candidates if path.exists()), candidates[0])


def _llava_refs(json_path: Path) -> list[ImageRef]:
    from raylayers.files import read_user_json

    records = read_user_json(json_path, "LLaVA json")
    if not isinstance(records, list):
        raise UserError(f"LLaVA json '{json_path}' must hold a list of records, found {type(records).__name__}")
    refs, seen = [], set()
    for index, record in enumerate(records):
        image = record.get("image") if isinstance(record, dict) else None
        names = image if isinstance(image, list) else [image] if image is not None else []  # text-only: none
        if not all(isinstance(name, str) and name for name in names):
            record_id = record.get("id", f"#{index}") if isinstance(record, dict) else f"#{index}"
            raise UserError(f"record {record_id} in '{json_path}': 'image' must be a path string (or a list of "
                            f"them), got {image!r}")
        for name in names:
            if name not in seen:
                seen.add(name)
                refs.append(ImageRef(key=name, path=llava_image_path(json_path, name)))
    return refs


def image_cell(value, folder: str | Path | None = None) -> str | bytes | None:
    """What an `image` cell of a benchmark or parquet table names (the one reading of it): encoded bytes, or a path
    (resolved against `folder` when given). HF datasets' Image struct {"bytes", "path"}: its bytes when it has them,
    else its path. None when the cell names nothing."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        return str(Path(folder) / value) if folder is not None else value
    return None


def _benchmark_refs(folder: Path) -> list[ImageRef]:
    import pyarrow.parquet as pq

    table_path = folder / "questions.parquet"
    try:
        table = pq.read_table(table_path, columns=["image"])
    except Exception as err:  # pyarrow raises several types for a bad file or a missing column
        raise UserError(f"cannot read the image column of '{table_path}': {str(err).splitlines()[0]}") from None
    refs, seen = [], set()
    for row, cell in enumerate(table.column("image").to_pylist()):
        image = image_cell(cell)
        if isinstance(image, bytes):
            refs.append(ImageRef(key=f"{table_path.name}[row {row}]", data=image))
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
    return _folder_refs(source)


def _folder_refs(source: Path) -> list[ImageRef]:
    """Every file under a folder (hidden ones aside; linked folders followed, each once), sorted; a sub-folder that
    cannot be listed is a ref of its own, with its reason, so it is counted among the skipped instead of vanishing."""
    refs, unlisted, seen = [], [], set()
    for root, folders, names in os.walk(source, onerror=unlisted.append, followlinks=True):
        if os.path.realpath(root) in seen:  # a link back up the tree: listed once
            folders[:] = []
            continue
        seen.add(os.path.realpath(root))
        folders[:] = [name for name in folders if not name.startswith(".")]
        refs += [Path(root) / name for name in names if not name.startswith(".")]
    refs = [ImageRef(key=str(path.relative_to(source)), path=path) for path in sorted(refs)]
    for err in unlisted:
        folder = Path(err.filename)
        reason = "permission denied" if isinstance(err, PermissionError) else "unreadable"
        refs.append(ImageRef(key=f"{folder.relative_to(source)}/", path=folder, problem=f"folder {reason}"))
    return refs


def file_problem(path: str | Path) -> str | None:
    """Why a file cannot be read as an image before opening it, or None: missing, a folder or another non-regular
    file (a FIFO blocks whoever opens it), permission denied, empty."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "permission denied"
    except OSError:
        return "unreadable"
    if stat.S_ISDIR(status.st_mode):
        return "a folder"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return "empty" if status.st_size == 0 else None


def _read(ref: ImageRef, use) -> str | None:
    """Open `ref` and call `use(image)` on it; the reason it cannot be used (missing, empty, not a regular file,
    permission denied, not an image, corrupt, too large), or None. The one place a bad file is told apart from a
    good one."""
    if ref.problem:
        return ref.problem
    try:
        if ref.data is not None:
            if not ref.data:
                return "empty"
            with Image.open(io.BytesIO(ref.data)) as image:
                use(image)
            return None
        problem = file_problem(ref.path)
        if problem:
            return problem
        with Image.open(ref.path) as image:  # closed here: `use` keeps what it needs (a decoded copy)
            use(image)
        return None
    except UnidentifiedImageError:
        return "not an image"
    except PermissionError:
        return "permission denied"
    except Image.DecompressionBombError:
        return "too large"
    except (OSError, SyntaxError, ValueError):
        return "corrupt"


def check_image(ref: ImageRef) -> str | None:
    """Why an image cannot be used, or None: its structure is checked without decoding the pixels (PIL's
    `verify`), for callers that decode it later anyway."""
    return _read(ref, lambda image: image.verify())


def open_image(ref: ImageRef) -> tuple[Image.Image | None, str | None]:
    """Decode one image fully; returns (image, None) or (None, reason it was skipped)."""
    decoded = []
    reason = _read(ref, lambda image: decoded.append(image.convert("RGB")))  # convert loads every pixel
    return (decoded[0], None) if reason is None else (None, reason)


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
