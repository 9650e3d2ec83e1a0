"""Turn a local copy of a published benchmark (parquet files from the HF hub) into our benchmark folder.

Our benchmark folder (ARCHITECTURE.md, "Files raylayers writes") is `questions.parquet` plus `meta.json`. The
columns every importer writes:

    question_id  string, unique within the folder
    image        binary, the encoded image bytes copied from the source (never decoded or re-encoded here)
    question     string
    answer       string: an option letter (A, B, ...) for multiple choice, "yes"/"no" for yes/no tasks
    task         string, the layout name (e.g. "mme")
    category     string, one of `CATEGORIES` (raylayers/evaluate/schema.py): general, ocr, vision_centric,
                 hallucination
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

The package, each module importing only the ones below it:

    hub.py      `--bench hf:DATASET[:CONFIG[:SPLIT]]`: a dataset loaded offline through `datasets`, staged as
                parquet and imported by the writer: import_hub_benchmark
    writer.py   reading rows in batches, finishing them, streaming questions.parquet, meta.json: import_benchmark
    detect.py   recognising a layout from the parquet schemas: detect_layout, is_benchmark_folder
    layouts.py  what each benchmark maps to: the Layout dataclass, one converter per benchmark, the LAYOUTS table
    values.py   reading single values (text, numbers, answer letters) out of source rows
"""

from raylayers.evaluate.importers.detect import detect_layout, is_benchmark_folder
from raylayers.evaluate.importers.layouts import (
    GQA_IMAGE_COLUMNS,
    GQA_INSTRUCTION_COLUMNS,
    LAYOUTS,
    METRICS,
    MMBENCH_CIRCULAR_OFFSET,
    Converter,
    Layout,
    split_inline_options,
)
from raylayers.evaluate.importers.values import LETTERS
from raylayers.evaluate.importers.writer import (
    BASE_COLUMNS,
    READ_BATCH_ROWS,
    WRITE_BATCH_BYTES,
    WRITE_BATCH_ROWS,
    import_benchmark,
)

__all__ = [
    "BASE_COLUMNS", "GQA_IMAGE_COLUMNS", "GQA_INSTRUCTION_COLUMNS", "LAYOUTS", "LETTERS", "METRICS",
    "MMBENCH_CIRCULAR_OFFSET", "READ_BATCH_ROWS", "WRITE_BATCH_BYTES", "WRITE_BATCH_ROWS", "Converter", "Layout",
    "detect_layout", "import_benchmark", "is_benchmark_folder", "split_inline_options",
]
