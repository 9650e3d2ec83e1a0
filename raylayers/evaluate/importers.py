"""Turn a local copy of a published benchmark (parquet files from the HF hub) into our benchmark folder.

Our benchmark folder (DESIGN.md) is `questions.parquet` plus `meta.json`. The columns every importer writes:

    question_id  string, unique within the folder
    image        binary, the encoded image bytes copied from the source (never decoded or re-encoded here)
    question     string
    answer       string: an option letter (A, B, ...) for multiple choice, "yes"/"no" for yes/no tasks
    task         string, the layout name (e.g. "mme")
    category     string, one of general, ocr, vision_centric, hallucination
    options      list<string>, empty when the question is not multiple choice

and each layout adds its own extra columns (`subtask`, `image_id`, `group`, `split`, `answers`, ...), listed in its
docstring. `meta.json` holds task, category, metric, answer_type, num_questions and description, plus source,
layout, dataset (the hub id), files (the parquet files read), limit, num_skipped, skipped (reason: count) and
num_renamed_ids (question ids that repeated in the source and got a "#2", "#3", ... suffix).

The source is a folder of parquet files as downloaded from the hub, directly or under `data/` or split-named
subfolders; every `.parquet` file under it (hidden folders aside) is read in sorted order, so point it at one
split of one config. Files are streamed a batch at a time and the output written as it goes, so a benchmark larger
than memory imports fine. Rows that cannot become a question (no image, a video question, an answer that is not
among the options, ...) are skipped and counted by reason; only "nothing left at all" is an error.

Usage: `import_benchmark(src, out)` guesses the layout from the parquet schemas (`detect_layout`); pass
`layout="mme"` (a key of `LAYOUTS`) when the guess is ambiguous.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from raylayers.errors import UserError

METRICS = ("mc_accuracy", "exact_match", "vqa_accuracy", "ocr_contains", "pope", "mme")
BASE_COLUMNS = ("question_id", "image", "question", "answer", "task", "category", "options")

READ_BATCH_ROWS = 64  # source rows per batch: images make rows large, so keep batches small
WRITE_BATCH_ROWS = 256  # rows buffered before a write ...
WRITE_BATCH_BYTES = 64 << 20  # ... or this many image bytes, whichever comes first
MMBENCH_CIRCULAR_OFFSET = 1_000_000  # MMBench's circular copies of question i have index i + k * 1e6

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# A row converter gets one source row (column name -> python value) and the run's context, and returns our row
# (without task/category, which the layout fills) or a string: the reason the row is skipped.
Converter = Callable[[dict, "_Context"], "dict | str"]


@dataclass
class _Context:
    """State of one import run that converters may use."""

    file: Path | None = None  # the parquet file the current row comes from
    row_index: int = 0  # index of the current row among all source rows read so far (0-based)
    seen: Counter = field(default_factory=Counter)  # per-layout occurrence counts (MME: questions per image)


@dataclass(frozen=True)
class Layout:
    """How one published benchmark's parquet files map onto our benchmark folder."""

    name: str
    dataset: str  # the hub id it was written against
    required: tuple[str, ...]  # source columns it needs (exact names)
    category: str
    metric: str
    answer_type: str
    description: str
    convert: Converter | None = None  # None only for layouts with their own row reader (GQA)
    extras: tuple[tuple[str, str], ...] = ()  # extra output columns: (name, "str" | "int" | "list")
    optional: tuple[str, ...] = ()  # source columns read when present (matched case-insensitively)
    # RealWorldQA mixes multiple choice with short answers: when any row has no options, the meta says this
    # (metric, answer_type) instead of the one above.
    short_fallback: tuple[str, str] | None = None


# ------------------------------------------------------------------------------------------------ value helpers
def _text(value) -> str | None:
    """A stripped string, or None for null, NaN and empty values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None


def _int(value) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None


def _texts(value) -> list[str]:
    """A list of non-empty strings from a list value (None -> [])."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        value = [value]
    return [text for text in (_text(item) for item in value) if text is not None]


def _yes_no(value) -> str | None:
    text = (_text(value) or "").lower().rstrip(".")
    return text if text in ("yes", "no") else None


def _with_hint(hint: str | None, question: str | None) -> str | None:
    return f"{hint}\n{question}" if hint and question else question


def _image_bytes(value, ctx: _Context) -> bytes | None:
    """Encoded bytes from an HF image struct {"bytes", "path"}, raw bytes, or a path beside the parquet file."""
    path = None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data)
    elif isinstance(value, (bytes, bytearray)):
        return bytes(value) or None
    elif isinstance(value, str):
        path = value
    if path and ctx.file is not None:
        candidate = ctx.file.parent / path
        if candidate.is_file():
            return candidate.read_bytes() or None
    return None


def _letter_answer(answer, count: int) -> str | None:
    """An option letter from "A", "a", "(A)", "(a)", "A." or "A)"; None unless it names one of `count` options."""
    text = _text(answer)
    match = re.fullmatch(r"\(?\s*([A-Za-z])\s*[).]?", text or "")
    if match is None:
        return None
    letter = match.group(1).upper()
    return letter if LETTERS.index(letter) < count else None


# ------------------------------------------------------------------------------------------------ converters
def _convert_mme(row: dict, ctx: _Context) -> dict | str:
    """MME, lmms-lab/MME. Reads question_id (the image's path, e.g. "code_reasoning/0020.png"), image, question,
    answer ("Yes"/"No") and category (the subtask: existence, count, OCR, code_reasoning, ...).

    Writes answer "yes"/"no", `subtask` = category and `image_id` = question_id (prefixed with "<subtask>/" when it
    lacks it, as image names repeat across subtasks); MME asks two questions per image, so question_id is image_id
    plus "-0", "-1" by occurrence. The whole benchmark is category general."""
    subtask = _text(row["category"])
    image_id = _text(row["question_id"])
    if image_id is None:
        return "missing question_id"
    if subtask and not image_id.startswith(f"{subtask}/"):  # image names repeat across subtasks; keep them apart
        image_id = f"{subtask}/{image_id}"
    answer = _yes_no(row["answer"])
    if answer is None:
        return "answer is not yes/no"
    occurrence = ctx.seen[image_id]
    ctx.seen[image_id] += 1
    return {"question_id": f"{image_id}-{occurrence}", "image": row["image"], "question": _text(row["question"]),
            "answer": answer, "subtask": subtask, "image_id": image_id}


def _convert_mmbench(row: dict, ctx: _Context) -> dict | str:
    """MMBench, lmms-lab/MMBench (en, dev split). Reads index, question, hint, A, B, C, D (missing options are
    null), answer (a letter), image, category and, when present, L2-category.

    question = hint + "\n" + question when there is a hint; options = the non-null A..D; question_id = str(index);
    `group` = index % 1e6, since MMBench's circular copies of question i have index i + k * 1e6 (circular
    evaluation needs them grouped); `subtask` = category, `l2_category` = L2-category, `hint` kept."""
    index = _int(row["index"])
    if index is None:
        return "missing index"
    hint = _text(row["hint"])
    options = [text for text in (_text(row[letter]) for letter in "ABCD") if text is not None]
    return {"question_id": str(index), "image": row["image"], "question": _with_hint(hint, _text(row["question"])),
            "answer": _letter_answer(row["answer"], len(options)) or _text(row["answer"]), "options": options,
            "group": index % MMBENCH_CIRCULAR_OFFSET, "hint": hint, "subtask": _text(row["category"]),
            "l2_category": _text(row.get("l2-category"))}


def _convert_seed_bench(row: dict, ctx: _Context) -> dict | str:
    """SEED-Bench, lmms-lab/SEED-Bench. Reads question_id, question, choice_a..choice_d, answer (a letter), image
    (a list of images: the first is taken), data_type and question_type_id.

    Only data_type "image" rows are kept; video rows are skipped and counted. `question_type_id` kept."""
    data_type = _text(row["data_type"])
    if data_type != "image":
        return f"data_type={data_type} (only image questions are kept)"
    image = row["image"]  # a list of images (several frames for video rows): the question's image is the first
    if isinstance(image, list):
        image = image[0] if image else None
    options = [text for text in (_text(row[f"choice_{x}"]) for x in "abcd") if text is not None]
    return {"question_id": _text(row["question_id"]), "image": image, "question": _text(row["question"]),
            "answer": _letter_answer(row["answer"], len(options)) or _text(row["answer"]), "options": options,
            "question_type_id": _int(row["question_type_id"])}


def _convert_textvqa(row: dict, ctx: _Context) -> dict | str:
    """TextVQA, lmms-lab/textvqa (validation split). Reads question_id, question, image, answers (10 human
    answers) and, when present, image_id.

    answer = the most common of the answers (a tie goes to the one given first); `answers` kept for VQA accuracy.
    Rows without answers (the test split) are skipped."""
    answers = _texts(row["answers"])
    if not answers:
        return "no answers"
    answer = Counter(answers).most_common(1)[0][0]  # ties: the one given first
    return {"question_id": _text(row["question_id"]), "image": row["image"], "question": _text(row["question"]),
            "answer": answer, "answers": answers, "image_id": _text(row.get("image_id"))}


def _convert_ocrbench(row: dict, ctx: _Context) -> dict | str:
    """OCRBench, lmms-lab/OCRBench. Reads question, answer (a list of accepted answers, or one string),
    question_type, dataset and image.

    question_id = the row's index among all rows read; answer = the first accepted answer, `answers` = all of them;
    `question_type` kept (the metric treats "Handwritten Mathematical Expression Recognition" apart) and
    `dataset` kept."""
    answers = _texts(row["answer"])
    if not answers:
        return "no answers"
    return {"question_id": str(ctx.row_index), "image": row["image"], "question": _text(row["question"]),
            "answer": answers[0], "answers": answers, "question_type": _text(row["question_type"]),
            "dataset": _text(row["dataset"])}


def _convert_cv_bench(row: dict, ctx: _Context) -> dict | str:
    """CV-Bench, nyu-visionx/CV-Bench. Reads idx, type ("2D"/"3D"), task (Count, Relation, Depth, Distance), image,
    question, choices, answer ("(A)") and prompt, and source when present.

    question_id = str(idx); options = choices; answer = the letter inside "(A)"; `subtask` = task (our `task` is
    the benchmark's name), `type`, `prompt` and `source` kept (the official score averages 2D and 3D)."""
    options = _texts(row["choices"])
    return {"question_id": _text(row["idx"]), "image": row["image"], "question": _text(row["question"]),
            "answer": _letter_answer(row["answer"], len(options)) or _text(row["answer"]), "options": options,
            "subtask": _text(row["task"]), "type": _text(row["type"]), "prompt": _text(row["prompt"]),
            "source": _text(row.get("source"))}


def _convert_pope(row: dict, ctx: _Context) -> dict | str:
    """POPE, lmms-lab/POPE. Reads question_id, question, answer ("yes"/"no"), image_source, image and category
    (the split: adversarial, popular or random).

    question_id = "<split>-<question_id>", as POPE numbers its questions per split; `split` = category,
    `image_id` = image_source."""
    split = _text(row["category"])
    answer = _yes_no(row["answer"])
    if answer is None:
        return "answer is not yes/no"
    question_id = _text(row["question_id"])  # POPE numbers questions per split: prefix the split to keep them apart
    return {"question_id": f"{split}-{question_id}" if split and question_id else question_id,
            "image": row["image"], "question": _text(row["question"]), "answer": answer, "split": split,
            "image_id": _text(row["image_source"])}


_OPTION_LINE = re.compile(r"\s*\(?([A-Z])[.)]\s*(\S.*?)\s*")


def split_inline_options(text: str) -> tuple[str, list[str], str]:
    """("stem", ["opt A", "opt B", ...], "text after the options") from a question whose options are lines
    "A. ..." (or "A) ...", "(A) ...") in order from A; no options (at least two needed) -> (text, [], "")."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        match = _OPTION_LINE.fullmatch(line)
        if match is None or match.group(1) != "A":
            continue
        options, end = [], start
        while end < len(lines) and (match := _OPTION_LINE.fullmatch(lines[end])) \
                and match.group(1) == LETTERS[len(options)]:
            options.append(match.group(2))
            end += 1
        if len(options) >= 2:
            return "\n".join(lines[:start]).strip(), options, "\n".join(lines[end:]).strip()
    return text, [], ""


def _convert_realworldqa(row: dict, ctx: _Context) -> dict | str:
    """RealWorldQA, lmms-lab/RealWorldQA (xai-org's release). Reads question, answer and image.

    Most questions list their options as lines "A. ...", "B. ..." followed by an instruction line; those become
    options, question = the text before them, and the answer a letter (an answer given as the option's text is
    mapped to its letter). Questions without such lines stay short answers with the whole text as the question.
    question_id = the row's index; `prompt` keeps the original text. The meta's metric is mc_accuracy when every
    question is multiple choice, exact_match otherwise."""
    prompt = _text(row["question"])
    answer = _text(row["answer"])
    if prompt is None:
        return "missing question"
    stem, options, _ = split_inline_options(prompt)
    if options:  # the answer is a letter, or sometimes the option's text
        by_text = {option.casefold(): LETTERS[i] for i, option in enumerate(options)}
        answer = _letter_answer(answer, len(options)) or by_text.get((answer or "").casefold(), answer)
    return {"question_id": str(ctx.row_index), "image": row["image"], "question": stem or prompt,
            "answer": answer, "options": options, "prompt": prompt}


def _convert_mmvp(row: dict, ctx: _Context) -> dict | str:
    """MMVP, MMVP/MMVP (its parquet form). Reads Index (1-based), Question, Options ("(a) Open (b) Closed"),
    Correct Answer ("(a)") and image.

    options parsed from "(a) ... (b) ..."; answer = the upper-case letter; question_id = str(Index);
    `group` = (Index - 1) // 2, the pair of images MMVP scores together (pair accuracy: both right)."""
    index = _int(row["Index"])
    if index is None:
        return "missing Index"
    parts = re.split(r"\(([A-Za-z])\)", _text(row["Options"]) or "")  # ["", "a", " Open ", "b", " Closed"]
    letters, texts = [p.upper() for p in parts[1::2]], [p.strip() for p in parts[2::2]]
    if len(letters) < 2 or letters != list(LETTERS[:len(letters)]) or parts[0].strip() or not all(texts):
        return "options not in the form '(a) ... (b) ...'"
    return {"question_id": str(index), "image": row["image"], "question": _text(row["Question"]),
            "answer": _letter_answer(row["Correct Answer"], len(texts)) or _text(row["Correct Answer"]),
            "options": texts, "group": (index - 1) // 2}


def _convert_scienceqa(row: dict, ctx: _Context) -> dict | str:
    """ScienceQA-IMG, lmms-lab/ScienceQA (config ScienceQA-IMG). Reads question, choices, answer (the index of
    the right choice), hint and image, and subject when present.

    question = hint + "\n" + question when there is a hint; answer = the letter of the answer index; question_id =
    the row's index among all rows read; rows without an image are skipped. `hint` and `subject` kept."""
    options = _texts(row["choices"])
    index = _int(row["answer"])
    if index is None or not 0 <= index < len(options):
        return "answer index not among the choices"
    hint = _text(row["hint"])
    return {"question_id": str(ctx.row_index), "image": row["image"],
            "question": _with_hint(hint, _text(row["question"])), "answer": LETTERS[index], "options": options,
            "hint": hint, "subject": _text(row.get("subject"))}


# ------------------------------------------------------------------------------------------------ the layouts
GQA_INSTRUCTION_COLUMNS = ("id", "imageId", "question", "answer")
GQA_IMAGE_COLUMNS = ("id", "image")

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("mme", "lmms-lab/MME", ("question_id", "image", "question", "answer", "category"),
           "general", "mme", "yes_no",
           "MME: yes/no perception and cognition questions, two per image, in 14 subtasks (scored per image pair).",
           _convert_mme, extras=(("subtask", "str"), ("image_id", "str"))),
    Layout("mmbench", "lmms-lab/MMBench",
           ("index", "question", "hint", "A", "B", "C", "D", "answer", "image", "category"),
           "general", "mc_accuracy", "multiple_choice",
           "MMBench (en dev): multiple-choice perception and reasoning; `group` ties circular copies together.",
           _convert_mmbench, optional=("l2-category",),
           extras=(("group", "int"), ("hint", "str"), ("subtask", "str"), ("l2_category", "str"))),
    Layout("seed_bench", "lmms-lab/SEED-Bench",
           ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "image",
            "data_type", "question_type_id"),
           "general", "mc_accuracy", "multiple_choice",
           "SEED-Bench (image questions only): four-option multiple choice over 9 image dimensions.",
           _convert_seed_bench, extras=(("question_type_id", "int"),)),
    Layout("gqa", "lmms-lab/GQA", GQA_INSTRUCTION_COLUMNS + ("image",),
           "general", "exact_match", "short",
           "GQA testdev-balanced: compositional questions about real scenes with one-word answers.",
           None, extras=(("image_id", "str"),)),
    Layout("textvqa", "lmms-lab/textvqa", ("question_id", "question", "image", "answers"),
           "ocr", "vqa_accuracy", "short",
           "TextVQA (validation): questions that need reading text in the image; 10 human answers each.",
           _convert_textvqa, optional=("image_id",), extras=(("answers", "list"), ("image_id", "str"))),
    Layout("ocrbench", "lmms-lab/OCRBench", ("question", "answer", "question_type", "dataset", "image"),
           "ocr", "ocr_contains", "short",
           "OCRBench: text recognition, scene-text VQA, document VQA, KIE and handwritten math expressions.",
           _convert_ocrbench,
           extras=(("answers", "list"), ("question_type", "str"), ("dataset", "str"))),
    Layout("cv_bench", "nyu-visionx/CV-Bench",
           ("idx", "type", "task", "image", "question", "choices", "answer", "prompt"),
           "vision_centric", "mc_accuracy", "multiple_choice",
           "CV-Bench: vision-centric 2D (count, relation) and 3D (depth, distance) multiple choice.",
           _convert_cv_bench, optional=("source",),
           extras=(("subtask", "str"), ("type", "str"), ("prompt", "str"), ("source", "str"))),
    Layout("pope", "lmms-lab/POPE", ("question_id", "question", "answer", "image_source", "image", "category"),
           "hallucination", "pope", "yes_no",
           "POPE: object-hallucination yes/no probes in random, popular and adversarial splits.",
           _convert_pope, extras=(("split", "str"), ("image_id", "str"))),
    Layout("realworldqa", "lmms-lab/RealWorldQA", ("question", "answer", "image"),
           "vision_centric", "mc_accuracy", "multiple_choice",
           "RealWorldQA: real-world spatial understanding; multiple choice where options are given, else short.",
           _convert_realworldqa, extras=(("prompt", "str"),), short_fallback=("exact_match", "short")),
    Layout("mmvp", "MMVP/MMVP", ("Index", "Question", "Options", "Correct Answer", "image"),
           "vision_centric", "mc_accuracy", "multiple_choice",
           "MMVP: CLIP-blind image pairs; `group` holds each pair (both must be right for pair accuracy).",
           _convert_mmvp, extras=(("group", "int"),)),
    Layout("scienceqa_img", "lmms-lab/ScienceQA", ("question", "choices", "answer", "hint", "image"),
           "general", "mc_accuracy", "multiple_choice",
           "ScienceQA-IMG: multiple-choice science questions with an image context (hint prepended).",
           _convert_scienceqa, optional=("subject",), extras=(("hint", "str"), ("subject", "str"))),
)}


# ------------------------------------------------------------------------------------------------ files, schemas
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


def _gqa_roles(src: Path, files: list[Path], schemas: dict[Path, list[str]]) -> tuple[list[Path], list[Path]]:
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
        instructions, images = _gqa_roles(src, files, schemas)
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
        if layout.name == "gqa" and not all(_gqa_roles(src, files, schemas)):
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


def _table_rows(layout: Layout, src: Path, files: list[Path], schemas: dict, ctx: _Context
                ) -> Iterator[dict | str]:
    """Converted rows (or skip reasons) of a single-table layout, file after file."""
    for path in files:
        ctx.file = path
        columns, keys = _read_columns(layout, schemas[path], layout.required)
        for row in _iter_rows(path, columns, keys):
            yield layout.convert(row, ctx)
            ctx.row_index += 1


def _gqa_rows(layout: Layout, src: Path, files: list[Path], schemas: dict, ctx: _Context) -> Iterator[dict | str]:
    """GQA, lmms-lab/GQA (testdev_balanced_instructions and testdev_balanced_images). Reads id, imageId, question
    and answer from the instructions, id and image from the images; question_id = id, `image_id` = imageId.

    GQA keeps questions and images in separate tables joined on imageId. The questions (text only) are held in
    memory, grouped by image; the images are streamed and each one's questions emitted as it passes, so the output
    follows the images' order. Questions whose image never comes are skipped."""
    instructions, images = _gqa_roles(src, files, schemas)
    by_image: dict[str, list[dict]] = {}
    for path in instructions:
        for row in _iter_rows(path, list(GQA_INSTRUCTION_COLUMNS), {name: name for name in GQA_INSTRUCTION_COLUMNS}):
            image_id = _text(row["imageId"])
            by_image.setdefault(image_id, []).append(
                {"question_id": _text(row["id"]), "question": _text(row["question"]), "answer": _text(row["answer"]),
                 "image_id": image_id})
    for path in images:
        ctx.file = path
        for row in _iter_rows(path, list(GQA_IMAGE_COLUMNS), {name: name for name in GQA_IMAGE_COLUMNS}):
            for question in by_image.pop(_text(row["id"]), []):  # pop: an image listed twice is used once
                yield question | {"image": row["image"]}
                ctx.row_index += 1
    for questions in by_image.values():
        for _ in questions:
            yield "image not in the images files"


# ------------------------------------------------------------------------------------------------ writing
def _schema(layout: Layout):
    import pyarrow as pa

    kinds = {"str": pa.string(), "int": pa.int64(), "list": pa.list_(pa.string())}
    fields = [(name, pa.string()) for name in ("question_id",)] + [("image", pa.binary())]
    fields += [(name, pa.string()) for name in ("question", "answer", "task", "category")]
    fields += [("options", pa.list_(pa.string()))]
    fields += [(name, kinds[kind]) for name, kind in layout.extras]
    return pa.schema(fields)


def _finish_row(layout: Layout, converted: dict, ctx: _Context) -> dict | str:
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
        if _letter_answer(row["answer"], len(row["options"])) != row["answer"]:
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


def import_benchmark(src, out, layout: str | None = None, limit: int | None = None) -> dict:
    """Write `out/questions.parquet` and `out/meta.json` from the parquet files of a published benchmark under
    `src`; returns the meta. `layout` is a key of LAYOUTS (guessed from the schemas when None); `limit` keeps only
    the first that many questions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, out = Path(src).expanduser(), Path(out).expanduser()
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
    files = _parquet_files(src, exclude=out)
    if not files:
        raise UserError(f"no .parquet files under '{src}' (download the benchmark's parquet files there first)")
    schemas = {path: _columns(path) for path in files}
    if layout is None:
        matches = _matching_layouts(src, files, schemas)
        if (detected := _best(matches)) is None:
            tied = [name for name in matches if len(LAYOUTS[name].required) == len(LAYOUTS[matches[0]].required)]
            found = f"it fits {', '.join(tied)} equally" if matches else "its columns fit none of them"
            raise UserError(f"cannot tell which benchmark '{src}' holds ({found}); name one of: "
                            f"{', '.join(sorted(LAYOUTS))}")
        layout = detected
    spec = LAYOUTS[layout]
    if (missing := _missing(spec, src, files, schemas)) is not None:
        path, lacking = missing
        raise UserError(f"'{path}' lacks column(s) {', '.join(repr(name) for name in lacking)} that the "
                        f"'{spec.name}' layout needs (it has: {', '.join(schemas[path][:30])})")
    if spec.name == "gqa":
        instructions, images = _gqa_roles(src, files, schemas)
        if not instructions or not images:
            raise UserError(f"GQA needs both the instructions and the images parquet files under '{src}' "
                            f"(found {len(instructions)} instruction and {len(images)} image file(s))")
        files = instructions + images

    out.mkdir(parents=True, exist_ok=True)
    schema = _schema(spec)
    partial = out / ".questions.parquet.partial"
    ctx = _Context()
    skipped: Counter = Counter()
    seen_ids: Counter = Counter()
    renamed = num_questions = with_options = 0
    reader = _gqa_rows if spec.name == "gqa" else _table_rows
    buffer, buffered_bytes = [], 0
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for converted in reader(spec, src, files, schemas, ctx):
                row = converted if isinstance(converted, str) else _finish_row(spec, converted, ctx)
                if isinstance(row, str):
                    skipped[row] += 1
                    continue
                seen_ids[row["question_id"]] += 1
                if (count := seen_ids[row["question_id"]]) > 1:
                    row["question_id"] = f"{row['question_id']}#{count}"
                    renamed += 1
                buffer.append(row)
                buffered_bytes += len(row["image"])
                num_questions += 1
                with_options += bool(row["options"])
                if len(buffer) >= WRITE_BATCH_ROWS or buffered_bytes >= WRITE_BATCH_BYTES:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                    buffer, buffered_bytes = [], 0
                if limit is not None and num_questions >= limit:
                    break
            if buffer:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
        if num_questions == 0:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "no rows"
            raise UserError(f"no usable question in '{src}' as layout '{spec.name}' (skipped: {reasons})")
        os.replace(partial, out / "questions.parquet")
    finally:
        partial.unlink(missing_ok=True)

    metric, answer_type = spec.metric, spec.answer_type
    if spec.short_fallback is not None and with_options < num_questions:
        metric, answer_type = spec.short_fallback
    meta = {"task": spec.name, "category": spec.category, "metric": metric, "answer_type": answer_type,
            "num_questions": num_questions, "description": spec.description, "source": str(src),
            "layout": spec.name, "dataset": spec.dataset,
            "files": [str(path.relative_to(src)) for path in files], "limit": limit,
            "num_skipped": sum(skipped.values()), "skipped": dict(sorted(skipped.items())),
            "num_renamed_ids": renamed}
    (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta
