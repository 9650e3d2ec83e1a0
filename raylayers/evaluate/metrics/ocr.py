"""OCRBench: the containment rule (a hit when an accepted answer is contained in the prediction), handwritten
formulas compared apart, and OCRBench's score out of 1000.

Official rule, as lmms-eval scores it (the paper's evaluation): EvolvingLMMs-Lab/lmms-eval commit
75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3, `lmms_eval/tasks/ocrbench/utils.py` (`ocrbench_process_results`). It is
the benchmark's own rule (Yuliang-Liu/MultimodalOCR commit 794c36d6423cf1d5764081128bcaeb46b240def6,
`OCRBench/scripts/LLaVA1_5.py`) plus one step, which we follow: outside HME100k, full-width ASCII characters and the
ideographic space are folded to ASCII before lowercasing. Questions from the `dataset` "HME100k" (handwritten
mathematical expressions) are compared with every space removed and case kept (LaTeX).

Departures: an empty accepted answer is ignored (the official rule counts it as contained in anything); a row
without `dataset` (offline-world benchmarks) uses the formula rule when its `math` is true or its `question_type`
or `subtask` is `OCR_MATH_TYPE`; `score` is the hit fraction on any number of questions, and `score_1000` the
official figure (hits out of 1000). There is one rule, so `score_lenient` is the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raylayers.evaluate.metrics.rows import reference_answers, registry_result

OCR_MATH_TYPE = "Handwritten Mathematical Expression Recognition"
"""OCRBench's question type whose answers are compared without spaces (and without lowercasing: LaTeX)."""
OCR_MATH_DATASET = "HME100k"
"""The OCRBench `dataset` the official script compares without spaces (all of OCR_MATH_TYPE's questions)."""


def _fold_fullwidth(text: str) -> str:
    """Full-width ASCII (U+FF01..U+FF5E) to ASCII and the ideographic space (U+3000) to a space, nothing else."""
    return "".join(" " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)


def _ocr_prepare(text: str, math: bool) -> str:
    """OCRBench's comparison form: for math, stripped with newlines as spaces and then every space removed; else
    folded (full-width), lowercased, stripped, newlines as spaces."""
    if math:
        return text.strip().replace("\n", " ").replace(" ", "")
    return _fold_fullwidth(text).lower().strip().replace("\n", " ")


def ocr_hit(prediction: str, answers: Sequence[str] | str, math: bool = False) -> bool:
    """Official OCRBench rule: a hit when some answer is contained in the prediction, both in `_ocr_prepare`d form
    (math=True for HME100k). Empty answers are ignored (the official script would count them)."""
    answers = [answers] if isinstance(answers, str) else answers
    predicted = _ocr_prepare(prediction.strip(), math)
    return any(ref and ref in predicted for ref in (_ocr_prepare(answer, math) for answer in answers))


def ocrbench_score(hits: Sequence[bool]) -> int:
    """OCRBench's score out of 1000: the number of hits on the official 1000 questions, and round(1000 * hit
    fraction) on any other number of questions (the same formula); 0 when there are none."""
    return round(1000 * sum(hits) / len(hits)) if hits else 0


def is_math_row(row: Mapping) -> bool:
    """Whether a row takes the formula rule: its `dataset` is HME100k (the official test), or, for rows without a
    `dataset`, its `math` is true or its `question_type` or `subtask` is OCR_MATH_TYPE."""
    if row.get("dataset"):
        return row["dataset"] == OCR_MATH_DATASET
    return bool(row.get("math")) or OCR_MATH_TYPE in (row.get("question_type"), row.get("subtask"))


# ------------------------------------------------------------------------------------------------ the scorer
def score_ocr_contains(rows: Sequence[Mapping]) -> dict:
    """OCRBench: `ocr_hit` per row (formula rule where `is_math_row`); parsed is the prediction in comparison form;
    also `score_1000` (`ocrbench_score`)."""
    math = [is_math_row(row) for row in rows]
    parsed = [_ocr_prepare(row["prediction"].strip(), m) for row, m in zip(rows, math)]
    correct = [ocr_hit(row["prediction"], reference_answers(row), m) for row, m in zip(rows, math)]
    return registry_result(rows, parsed, correct, score_1000=ocrbench_score(correct))
