"""Recognising which published benchmark a folder of downloaded parquet files holds, from their schemas alone.

A layout fits a download when every parquet file under it has the layout's required columns (GQA's two tables, the
questions and the images, each have their own); of the layouts that fit, the most specific (most required columns)
wins, and a tie is not guessed. Only the parquet footers are read. `detect_layout` answers the question for
`--bench`; `recognise_source` does the same for an import and says, as a UserError, why a folder cannot be imported
(no parquet files, no or several fitting layouts, missing columns, half of GQA).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.importers.layouts import GQA_IMAGE_COLUMNS, GQA_INSTRUCTION_COLUMNS, LAYOUTS, Layout


@dataclass(frozen=True)
class Source:
    """A download as an import reads it: its folder, its layout, the parquet files in reading order and the
    column names of each."""

    folder: Path
    layout: Layout
    files: list[Path]
    schemas: dict[Path, list[str]]


def is_benchmark_folder(path) -> bool:
    """Whether a folder is one of ours: it holds questions.parquet and meta.json."""
    path = Path(path)
    return (path / "questions.parquet").is_file() and (path / "meta.json").is_file()


def _parquet_files(src: Path, exclude: Path | None = None) -> list[Path]:
    """Every .parquet file under src (not in hidden folders, not under `exclude`), sorted."""
    exclude = exclude.resolve() if exclude is not None else None
    files = []
    for path in src.rglob("*.parquet"):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        if exclude is not None and exclude in path.resolve().parents:
            continue
        files.append(path)
    return sorted(files)


def _columns(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError, pa.ArrowException) as err:  # a file that is not parquet, or unreadable
        raise UserError(f"cannot read the parquet schema of '{path}': {str(err).splitlines()[0]}") from None


def gqa_roles(src: Path, files: list[Path], schemas: dict[Path, list[str]]) -> tuple[list[Path], list[Path]]:
    """(instruction files, image files) of a GQA download: testdev_balanced ones when present, told apart by name
    (`..._instructions`, `..._images`) or else by their columns."""
    relative = {path: str(path.relative_to(src)).lower() for path in files}
    chosen = [path for path in files if "testdev_balanced" in relative[path]] or files
    instructions, images = [], []
    for path in chosen:
        columns = set(schemas[path])
        if "instruction" in relative[path]:
            instructions.append(path)
        elif "image" in relative[path]:
            images.append(path)
        elif "question" in columns or "imageId" in columns or "image" not in columns:
            instructions.append(path)
        else:
            images.append(path)
    return instructions, images


def _missing(layout: Layout, src: Path, files: list[Path], schemas: dict[Path, list[str]]
             ) -> tuple[Path, list[str]] | None:
    """The first file that lacks columns the layout needs, with all the columns it lacks; None if none does."""
    if layout.name == "gqa":
        instructions, images = gqa_roles(src, files, schemas)
        checks = [(path, GQA_INSTRUCTION_COLUMNS) for path in instructions]
        checks += [(path, GQA_IMAGE_COLUMNS) for path in images]
    else:
        checks = [(path, layout.required) for path in files]
    for path, required in checks:
        if lacking := [name for name in required if name not in schemas[path]]:
            return path, lacking
    return None


def _matching_layouts(src: Path, files: list[Path], schemas: dict[Path, list[str]]) -> list[str]:
    """Layouts every file fits, most specific (most required columns) first."""
    matches = []
    for layout in LAYOUTS.values():
        if _missing(layout, src, files, schemas) is not None:
            continue
        if layout.name == "gqa" and not all(gqa_roles(src, files, schemas)):
            continue
        matches.append(layout.name)
    return sorted(matches, key=lambda name: -len(LAYOUTS[name].required))


def _best(matches: list[str]) -> str | None:
    """The most specific of the matching layouts; None when there is none or the most specific is tied."""
    if not matches:
        return None
    if len(matches) > 1 and len(LAYOUTS[matches[0]].required) == len(LAYOUTS[matches[1]].required):
        return None
    return matches[0]


def detect_layout(src) -> str | None:
    """The layout whose required columns the parquet files under src fit best; None when none fits or the best
    is tied. Reads only the parquet footers. (A layout fits when every file has its columns; GQA's two tables
    each have their own.) A file that is not parquet is a UserError."""
    src = Path(src).expanduser()
    if not src.is_dir() or is_benchmark_folder(src):
        return None
    files = _parquet_files(src)
    return _best(_matching_layouts(src, files, {path: _columns(path) for path in files})) if files else None


def _detected_layout(src: Path, files: list[Path], schemas: dict[Path, list[str]]) -> str:
    """The layout the files fit best, or a UserError naming the tied layouts (or saying none fits)."""
    matches = _matching_layouts(src, files, schemas)
    if (detected := _best(matches)) is None:
        tied = [name for name in matches if len(LAYOUTS[name].required) == len(LAYOUTS[matches[0]].required)]
        found = f"it fits {', '.join(tied)} equally" if matches else "its columns fit none of them"
        raise UserError(f"cannot tell which benchmark '{src}' holds ({found}); name one of: "
                        f"{', '.join(sorted(LAYOUTS))}")
    return detected


def recognise_source(src: Path, layout: str | None, exclude: Path) -> Source:
    """The download under src as `layout` (a key of LAYOUTS; detected when None), leaving out the files under
    `exclude` (the import's output folder); a UserError says why it cannot be imported so. For GQA the files are
    put in reading order: the instructions, then the images."""
    files = _parquet_files(src, exclude=exclude)
    if not files:
        raise UserError(f"no .parquet files under '{src}' (download the benchmark's parquet files there first)")
    schemas = {path: _columns(path) for path in files}
    spec = LAYOUTS[layout if layout is not None else _detected_layout(src, files, schemas)]
    if (missing := _missing(spec, src, files, schemas)) is not None:
        path, lacking = missing
        raise UserError(f"'{path}' lacks column(s) {', '.join(repr(name) for name in lacking)} that the "
                        f"'{spec.name}' layout needs (it has: {', '.join(schemas[path][:30])})")
    if spec.name == "gqa":
        instructions, images = gqa_roles(src, files, schemas)
        if not instructions or not images:
            raise UserError(f"GQA needs both the instructions and the images parquet files under '{src}' "
                            f"(found {len(instructions)} instruction and {len(images)} image file(s))")
        files = instructions + images
    return Source(folder=src, layout=spec, files=files, schemas=schemas)
