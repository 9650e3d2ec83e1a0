"""The benchmark folder contract (ARCHITECTURE.md, "Files raylayers writes"), in one place.

A benchmark folder holds `questions.parquet` with at least `REQUIRED_COLUMNS` (and `options` for multiple choice)
and `meta.json` naming its metric; each question belongs to one of the paper's four `CATEGORIES` and has one of the
`ANSWER_TYPES`. Everything that writes, reads or reports on benchmarks takes these names from here.
"""

CATEGORIES = ("general", "ocr", "vision_centric", "hallucination")
ANSWER_TYPES = ("multiple_choice", "short", "yes_no")
REQUIRED_COLUMNS = ("question_id", "image", "question", "answer", "task", "category")
