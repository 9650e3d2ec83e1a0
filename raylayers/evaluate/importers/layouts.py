"""What each published benchmark maps to: the `Layout` of its parquet files, its row converter, and the `LAYOUTS`
table that names them all.

A layout says which source columns a benchmark's hub parquet files have (`required`, and `optional` ones read when
present), which hub dataset it was written against, and what the imported folder's meta.json will say (category,
metric, answer type, description). Its converter turns one source row into one of our rows, or into the reason the
row is skipped; each converter's docstring lists the columns it reads and what it writes, so this file is the one
place to read how a benchmark becomes our benchmark folder. Recognising a layout is in `detect.py`, reading and
writing the files in `writer.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raylayers.evaluate.importers.values import (
    LETTERS,
    int_value,
    letter_answer,
    text_list,
    text_value,
    with_hint,
    yes_no,
)
from raylayers.evaluate.metrics import METRICS as SCORERS

METRICS = tuple(SCORERS)  # the metric names a layout may give its meta.json: the scoring registry's
MMBENCH_CIRCULAR_OFFSET = 1_000_000  # MMBench's circular copies of question i have index i + k * 1e6

# A row converter gets one source row (column name -> python value) and the run's context, and returns our row
# (without task/category, which the layout fills) or a string: the reason the row is skipped.
Converter = Callable[[dict, "ImportContext"], "dict | str"]


@dataclass
class ImportContext:
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
    convert: Converter | None = None  # None only for layouts with their own row reader (GQA, in writer.py)
    extras: tuple[tuple[str, str], ...] = ()  # extra output columns: (name, "str" | "int" | "list")
    optional: tuple[str, ...] = ()  # source columns read when present (matched case-insensitively)
    # RealWorldQA mixes multiple choice with short answers: when any row has no options, the meta says this
    # (metric, answer_type) instead of the one above (its metric scores each question by its own kind).
    short_fallback: tuple[str, str] | None = None


# ------------------------------------------------------------------------------------------------ converters
def _convert_mme(row: dict, ctx: ImportContext) -> dict | str:
    """MME, lmms-lab/MME. Reads question_id (the image's path, e.g. "code_reasoning/0020.png"), image, question,
    answer ("Yes"/"No") and category (the subtask: existence, count, OCR, code_reasoning, ...).

    Writes answer "yes"/"no", `subtask` = category and `image_id` = question_id (prefixed with "<subtask>/" when it
    lacks it, as image names repeat across subtasks); MME asks two questions per image, so question_id is image_id
    plus "-0", "-1" by occurrence. The whole benchmark is category general."""
    subtask = text_value(row["category"])
    image_id = text_value(row["question_id"])
    if image_id is None:
        return "missing question_id"
    if subtask and not image_id.startswith(f"{subtask}/"):  # image names repeat across subtasks; keep them apart
        image_id = f"{subtask}/{image_id}"
    answer = yes_no(row["answer"])
    if answer is None:
        return "answer is not yes/no"
    occurrence = ctx.seen[image_id]
    ctx.seen[image_id] += 1
    return {"question_id": f"{image_id}-{occurrence}", "image": row["image"], "question": text_value(row["question"]),
            "answer": answer, "subtask": subtask, "image_id": image_id}


def _convert_mmbench(row: dict, ctx: ImportContext) -> dict | str:
    """MMBench, lmms-lab/MMBench (en, dev split). Reads index, question, hint, A, B, C, D (missing options are
    null), answer (a letter), image, category and, when present, L2-category.

    question = hint + "\n" + question when there is a hint; options = the non-null A..D; question_id = str(index);
    `group` = index % 1e6, since MMBench's circular copies of question i have index i + k * 1e6 (circular
    evaluation needs them grouped); `subtask` = category, `l2_category` = L2-category, `hint` kept."""
    index = int_value(row["index"])
    if index is None:
        return "missing index"
    hint = text_value(row["hint"])
    options = [text for text in (text_value(row[letter]) for letter in "ABCD") if text is not None]
    return {"question_id": str(index), "image": row["image"], "question": with_hint(hint, text_value(row["question"])),
            "answer": letter_answer(row["answer"], len(options)) or text_value(row["answer"]), "options": options,
            "group": index % MMBENCH_CIRCULAR_OFFSET, "hint": hint, "subtask": text_value(row["category"]),
            "l2_category": text_value(row.get("l2-category"))}


def _convert_seed_bench(row: dict, ctx: ImportContext) -> dict | str:
    """SEED-Bench, lmms-lab/SEED-Bench. Reads question_id, question, choice_a..choice_d, answer (a letter), image
    (a list of images: the first is taken), data_type and question_type_id.

    Only data_type "image" rows are kept; video rows are skipped and counted. `question_type_id` kept."""
    data_type = text_value(row["data_type"])
    if data_type != "image":
        return f"data_type={data_type} (only image questions are kept)"
    image = row["image"]  # a list of images (several frames for video rows): the question's image is the first
    if isinstance(image, list):
        image = image[0] if image else None
    options = [text for text in (text_value(row[f"choice_{x}"]) for x in "abcd") if text is not None]
    return {"question_id": text_value(row["question_id"]), "image": image, "question": text_value(row["question"]),
            "answer": letter_answer(row["answer"], len(options)) or text_value(row["answer"]), "options": options,
            "question_type_id": int_value(row["question_type_id"])}


def _convert_textvqa(row: dict, ctx: ImportContext) -> dict | str:
    """TextVQA, lmms-lab/textvqa (validation split). Reads question_id, question, image, answers (10 human
    answers) and, when present, image_id.

    answer = the most common of the answers (a tie goes to the one given first); `answers` kept for VQA accuracy.
    Rows without answers (the test split) are skipped."""
    answers = text_list(row["answers"])
    if not answers:
        return "no answers"
    answer = Counter(answers).most_common(1)[0][0]  # ties: the one given first
    return {"question_id": text_value(row["question_id"]), "image": row["image"],
            "question": text_value(row["question"]), "answer": answer, "answers": answers,
            "image_id": text_value(row.get("image_id"))}


def _convert_ocrbench(row: dict, ctx: ImportContext) -> dict | str:
    """OCRBench, lmms-lab/OCRBench. Reads question, answer (a list of accepted answers, or one string),
    question_type, dataset and image.

    question_id = the row's index among all rows read; answer = the first accepted answer, `answers` = all of them;
    `question_type` kept and `dataset` kept (the metric compares the "HME100k" formulas without spaces)."""
    answers = text_list(row["answer"])
    if not answers:
        return "no answers"
    return {"question_id": str(ctx.row_index), "image": row["image"], "question": text_value(row["question"]),
            "answer": answers[0], "answers": answers, "question_type": text_value(row["question_type"]),
            "dataset": text_value(row["dataset"])}


def _convert_cv_bench(row: dict, ctx: ImportContext) -> dict | str:
    """CV-Bench, nyu-visionx/CV-Bench. Reads idx, type ("2D"/"3D"), task (Count, Relation, Depth, Distance), image,
    question, choices, answer ("(A)") and prompt, and source when present.

    question_id = str(idx); options = choices; answer = the letter inside "(A)"; `subtask` = task (our `task` is
    the benchmark's name), `type`, `prompt` and `source` kept (CV-Bench's own overall weighs the sources ADE20K,
    COCO and Omni3D)."""
    options = text_list(row["choices"])
    return {"question_id": text_value(row["idx"]), "image": row["image"], "question": text_value(row["question"]),
            "answer": letter_answer(row["answer"], len(options)) or text_value(row["answer"]), "options": options,
            "subtask": text_value(row["task"]), "type": text_value(row["type"]), "prompt": text_value(row["prompt"]),
            "source": text_value(row.get("source"))}


def _convert_pope(row: dict, ctx: ImportContext) -> dict | str:
    """POPE, lmms-lab/POPE. Reads question_id, question, answer ("yes"/"no"), image_source, image and category
    (the split: adversarial, popular or random).

    question_id = "<split>-<question_id>", as POPE numbers its questions per split; `split` = category,
    `image_id` = image_source."""
    split = text_value(row["category"])
    answer = yes_no(row["answer"])
    if answer is None:
        return "answer is not yes/no"
    question_id = text_value(row["question_id"])  # POPE numbers questions per split: prefix the split
    return {"question_id": f"{split}-{question_id}" if split and question_id else question_id,
            "image": row["image"], "question": text_value(row["question"]), "answer": answer, "split": split,
            "image_id": text_value(row["image_source"])}


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


def _convert_realworldqa(row: dict, ctx: ImportContext) -> dict | str:
    """RealWorldQA, lmms-lab/RealWorldQA (xai-org's release). Reads question, answer and image.

    Most questions list their options as lines "A. ...", "B. ..." followed by an instruction line; those become
    options, question = the text before them, and the answer a letter (an answer given as the option's text is
    mapped to its letter). Questions without such lines stay short answers with the whole text as the question.
    question_id = the row's index; `prompt` keeps the original text and `source_answer` the answer as given (the
    official rule reads a letter answer as multiple choice and any other as a short answer, question by question).
    The meta's answer_type is multiple_choice when every question has options, short otherwise."""
    prompt = text_value(row["question"])
    answer = text_value(row["answer"])
    if prompt is None:
        return "missing question"
    stem, options, _ = split_inline_options(prompt)
    source_answer = answer
    if options:  # the answer is a letter, or sometimes the option's text
        by_text = {option.casefold(): LETTERS[i] for i, option in enumerate(options)}
        answer = letter_answer(answer, len(options)) or by_text.get((answer or "").casefold(), answer)
    return {"question_id": str(ctx.row_index), "image": row["image"], "question": stem or prompt,
            "answer": answer, "options": options, "prompt": prompt, "source_answer": source_answer}


def _convert_mmvp(row: dict, ctx: ImportContext) -> dict | str:
    """MMVP, MMVP/MMVP (its parquet form). Reads Index (1-based), Question, Options ("(a) Open (b) Closed"),
    Correct Answer ("(a)") and image.

    options parsed from "(a) ... (b) ..."; answer = the upper-case letter; question_id = str(Index);
    `group` = (Index - 1) // 2, the pair of images MMVP scores together (pair accuracy: both right)."""
    index = int_value(row["Index"])
    if index is None:
        return "missing Index"
    parts = re.split(r"\(([A-Za-z])\)", text_value(row["Options"]) or "")  # ["", "a", " Open ", "b", " Closed"]
    letters, texts = [p.upper() for p in parts[1::2]], [p.strip() for p in parts[2::2]]
    if len(letters) < 2 or letters != list(LETTERS[:len(letters)]) or parts[0].strip() or not all(texts):
        return "options not in the form '(a) ... (b) ...'"
    return {"question_id": str(index), "image": row["image"], "question": text_value(row["Question"]),
            "answer": letter_answer(row["Correct Answer"], len(texts)) or text_value(row["Correct Answer"]),
            "options": texts, "group": (index - 1) // 2}


def _convert_scienceqa(row: dict, ctx: ImportContext) -> dict | str:
    """ScienceQA-IMG, lmms-lab/ScienceQA (config ScienceQA-IMG). Reads question, choices, answer (the index of
    the right choice), hint and image, and subject when present.

    question = hint + "\n" + question when there is a hint; answer = the letter of the answer index; question_id =
    the row's index among all rows read; rows without an image are skipped. `hint` and `subject` kept."""
    options = text_list(row["choices"])
    index = int_value(row["answer"])
    if index is None or not 0 <= index < len(options):
        return "answer index not among the choices"
    hint = text_value(row["hint"])
    return {"question_id": str(ctx.row_index), "image": row["image"],
            "question": with_hint(hint, text_value(row["question"])), "answer": LETTERS[index], "options": options,
            "hint": hint, "subject": text_value(row.get("subject"))}


# ------------------------------------------------------------------------------------------------ the layouts
# GQA keeps its questions and its images in two tables (writer.py reads and joins them), each with its own
# columns; the layout's `required` is their union.
GQA_INSTRUCTION_COLUMNS = ("id", "imageId", "question", "answer")
GQA_IMAGE_COLUMNS = ("id", "image")

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("mme", "lmms-lab/MME", ("question_id", "image", "question", "answer", "category"),
           "general", "mme", "yes_no",
           "MME: yes/no perception and cognition questions, two per image, in 14 subtasks (scored per image pair).",
           _convert_mme, extras=(("subtask", "str"), ("image_id", "str"))),
    Layout("mmbench", "lmms-lab/MMBench",
           ("index", "question", "hint", "A", "B", "C", "D", "answer", "image", "category"),
           "general", "mmbench", "multiple_choice",
           "MMBench (en dev): multiple-choice perception and reasoning; `group` ties circular copies together.",
           _convert_mmbench, optional=("l2-category",),
           extras=(("group", "int"), ("hint", "str"), ("subtask", "str"), ("l2_category", "str"))),
    Layout("seed_bench", "lmms-lab/SEED-Bench",
           ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "image",
            "data_type", "question_type_id"),
           "general", "seed_bench", "multiple_choice",
           "SEED-Bench (image questions only): four-option multiple choice over 9 image dimensions.",
           _convert_seed_bench, extras=(("question_type_id", "int"),)),
    Layout("gqa", "lmms-lab/GQA", GQA_INSTRUCTION_COLUMNS + ("image",),
           "general", "gqa", "short",
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
           "vision_centric", "cv_bench", "multiple_choice",
           "CV-Bench: vision-centric 2D (count, relation) and 3D (depth, distance) multiple choice.",
           _convert_cv_bench, optional=("source",),
           extras=(("subtask", "str"), ("type", "str"), ("prompt", "str"), ("source", "str"))),
    Layout("pope", "lmms-lab/POPE", ("question_id", "question", "answer", "image_source", "image", "category"),
           "hallucination", "pope", "yes_no",
           "POPE: object-hallucination yes/no probes in random, popular and adversarial splits.",
           _convert_pope, extras=(("split", "str"), ("image_id", "str"))),
    Layout("realworldqa", "lmms-lab/RealWorldQA", ("question", "answer", "image"),
           "vision_centric", "realworldqa", "multiple_choice",
           "RealWorldQA: real-world spatial understanding; multiple choice where options are given, else short.",
           _convert_realworldqa, extras=(("prompt", "str"), ("source_answer", "str")),
           short_fallback=("realworldqa", "short")),
    Layout("mmvp", "MMVP/MMVP", ("Index", "Question", "Options", "Correct Answer", "image"),
           "vision_centric", "mmvp", "multiple_choice",
           "MMVP: CLIP-blind image pairs; `group` holds each pair (both must be right for pair accuracy).",
           _convert_mmvp, extras=(("group", "int"),)),
    Layout("scienceqa_img", "lmms-lab/ScienceQA", ("question", "choices", "answer", "hint", "image"),
           "general", "scienceqa_img", "multiple_choice",
           "ScienceQA-IMG: multiple-choice science questions with an image context (hint prepended).",
           _convert_scienceqa, optional=("subject",), extras=(("hint", "str"), ("subject", "str"))),
)}
