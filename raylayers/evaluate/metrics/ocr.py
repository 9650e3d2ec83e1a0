"""OCRBench: the official containment rule (a hit when an accepted answer is contained in the prediction), with
handwritten formulas compared apart, and OCRBench's score out of 1000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raylayers.evaluate.metrics.rows import reference_answers, registry_result

OCR_MATH_TYPE = "Handwritten Mathematical Expression Recognition"
"""OCRBench's question type whose answers are compared without spaces (and without lowercasing: LaTeX)."""


def _ocr_prepare(text: str, math: bool) -> str:
    """OCRBench's comparison form: stripped, newlines as spaces; then lowercased, or for math all spaces removed."""
    text = text.strip().replace("\n", " ")
    return text.replace(" ", "") if math else text.lower()


def ocr_hit(prediction: str, answers: Sequence[str] | str, math: bool = False) -> bool:
    """Official OCRBench rule: a hit when some answer is contained in the prediction, both in `_ocr_prepare`d form
    (math=True for the handwritten-formula type). Empty answers are ignored (the official script would count them)."""
    answers = [answers] if isinstance(answers, str) else answers
    predicted = _ocr_prepare(prediction, math)
    return any(ref and ref in predicted for ref in (_ocr_prepare(answer, math) for answer in answers))


def ocrbench_score(hits: Sequence[bool]) -> int:
    """OCRBench's score out of 1000: the number of hits on the official 1000 questions, and round(1000 * hit
    fraction) on any other number of questions (the same formula); 0 when there are none."""
    return round(1000 * sum(hits) / len(hits)) if hits else 0


# ------------------------------------------------------------------------------------------------ the scorer
def score_ocr_contains(rows: Sequence[Mapping]) -> dict:
    """OCRBench: `ocr_hit` per row (math rule when the row's `math` is true or its `subtask` is OCR_MATH_TYPE);
    parsed is the prediction in comparison form; also `score_1000` (`ocrbench_score`)."""
    math = [bool(row.get("math")) or row.get("subtask") == OCR_MATH_TYPE for row in rows]
    parsed = [_ocr_prepare(row["prediction"], m) for row, m in zip(rows, math)]
    correct = [ocr_hit(row["prediction"], reference_answers(row), m) for row, m in zip(rows, math)]
    return registry_result(rows, parsed, correct, score_1000=ocrbench_score(correct))
