"""Benchmark metrics: VQA accuracy, exact match, multiple-choice letters, MMBench circular, POPE, OCRBench, MME.

Pure Python. Each metric exists twice: as small functions on strings (`vqa_accuracy`, `read_choice`, `pope_scores`,
...) and as an entry of `METRICS`, which scores a list of per-question rows the same way for every benchmark:

    METRICS[name](rows) -> {"score": headline in 0..1, "n": questions, ...extras..., "per_question": [...]}

A row has `question_id`, `prediction` (the model's text), `answer` and `options` (a list, may be empty), plus the
extras a metric needs: `answers` (human answers, VQA), `subtask` and `image` (MME), `split` (POPE), `group` (MMBench
circular shifts of one question), `math` (OCRBench handwritten formulas). `per_question` keeps the input order and
holds `question_id`, `parsed` (what was read out of the prediction, None when nothing) and `correct` (a bool, or the
VQA accuracy as a float).

One file per family, each with its string functions and its scorer, and with the official script it follows and
where it departs from it in its docstrings; none imports another:

    vqa.py     answer normalisation, VQA accuracy, exact match (TextVQA, GQA, RealWorldQA's short answers)
    choice.py  the multiple-choice letter reader, accuracy on letters, MMBench circular evaluation
    pope.py    POPE's yes/no reading and its accuracy, precision, recall, F1 and yes-ratio
    ocr.py     OCRBench's containment rule and its score out of 1000
    mme.py     MME's yes/no/other reading and its acc + acc+ scores
    rows.py    what every scorer shares: the reference answers of a row and the result above
"""

from collections.abc import Callable, Mapping, Sequence

from raylayers.evaluate.metrics.choice import (
    circular_eval,
    circular_groups_correct,
    mc_accuracy,
    read_choice,
    score_mc_accuracy,
)
from raylayers.evaluate.metrics.mme import MME_COGNITION, MME_PERCEPTION, mme_read, mme_scores, score_mme
from raylayers.evaluate.metrics.ocr import OCR_MATH_TYPE, ocr_hit, ocrbench_score, score_ocr_contains
from raylayers.evaluate.metrics.pope import pope_read, pope_scores, score_pope
from raylayers.evaluate.metrics.vqa import (
    exact_match,
    normalize_answer,
    score_exact_match,
    score_vqa_accuracy,
    vqa_accuracy,
)

METRICS: dict[str, Callable[[Sequence[Mapping]], dict]] = {
    "mc_accuracy": score_mc_accuracy,
    "exact_match": score_exact_match,
    "vqa_accuracy": score_vqa_accuracy,
    "ocr_contains": score_ocr_contains,
    "pope": score_pope,
    "yes_no": score_pope,
    "mme": score_mme,
}
"""Metric name -> score(rows) -> dict; see the package docstring for the row and result contract."""

__all__ = [
    "METRICS", "MME_COGNITION", "MME_PERCEPTION", "OCR_MATH_TYPE", "circular_eval", "circular_groups_correct",
    "exact_match", "mc_accuracy", "mme_read", "mme_scores", "normalize_answer", "ocr_hit", "ocrbench_score",
    "pope_read", "pope_scores", "read_choice", "score_exact_match", "score_mc_accuracy", "score_mme",
    "score_ocr_contains", "score_pope", "score_vqa_accuracy", "vqa_accuracy",
]
