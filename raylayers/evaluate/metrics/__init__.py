"""Benchmark metrics: each benchmark's official rule as its score, a lenient reading beside it.

Pure Python. Each metric exists twice: as small functions on strings (`official_vqa_accuracy`, `mmbench_read`,
`read_choice`, `pope_scores`, ...) and as an entry of `METRICS`, which scores a list of per-question rows the same
way for every benchmark:

    METRICS[name](rows) -> {"score": official headline in 0..1, "score_lenient": the same figure read leniently,
                            "n": questions, ...extras..., "per_question": [...]}

A row has `question_id`, `prediction` (the model's text), `answer` and `options` (a list, may be empty), plus the
extras a metric needs: `answers` (human answers, VQA), `subtask` and `image` (MME), `split` (POPE), `group` (MMBench
circular shifts of one question, MMVP image pairs), `dataset` (OCRBench: HME100k formulas), `source` (CV-Bench),
`source_answer` (RealWorldQA's answer as the dataset gives it). `per_question` keeps the input order and holds
`question_id`, `parsed` (what the official rule read, None when nothing), `correct` (a bool, or the VQA accuracy as
a float) and `correct_lenient`.

The official rules are written from the scoring code each file names, with the repository, the commit read and the
path (mostly lmms-eval, the paper's evaluation); departures are listed there. Benchmarks without an official script
(the offline world: `mc_accuracy`, `exact_match`) have one rule, which is both numbers. The families:

    vqa.py         TextVQA's VQA accuracy and GQA's exact match (official), the lenient VQA normalisation
    readers.py     the official multiple-choice readers, one per benchmark
    benchmarks.py  the multiple-choice benchmarks' scorers (MMBench circular, MMVP pairs, CV-Bench sources, ...)
    choice.py      the lenient letter reader, generic accuracy on letters, circular evaluation
    pope.py        POPE's yes/no reading and its accuracy, precision, recall, F1 and yes-ratio
    ocr.py         OCRBench's containment rule and its score out of 1000
    mme.py         MME's yes/no/other reading and its acc + acc+ scores
    rows.py        what every scorer shares: the reference answers of a row and the result above
"""

from collections.abc import Callable, Mapping, Sequence

from raylayers.evaluate.metrics.benchmarks import (
    CV_BENCH_SOURCES,
    score_cv_bench,
    score_mmbench,
    score_mmvp,
    score_realworldqa,
    score_scienceqa,
    score_seed_bench,
)
from raylayers.evaluate.metrics.choice import (
    answer_letter,
    circular_eval,
    circular_groups_correct,
    mc_accuracy,
    read_choice,
    score_mc_accuracy,
)
from raylayers.evaluate.metrics.mme import MME_COGNITION, MME_PERCEPTION, mme_read, mme_scores, score_mme
from raylayers.evaluate.metrics.ocr import (
    OCR_MATH_DATASET,
    OCR_MATH_TYPE,
    is_math_row,
    ocr_hit,
    ocrbench_score,
    score_ocr_contains,
)
from raylayers.evaluate.metrics.pope import pope_read, pope_scores, score_pope
from raylayers.evaluate.metrics.readers import (
    LETTERS,
    cv_bench_read,
    mcq_extract,
    mmbench_read,
    mmvp_read,
    scienceqa_read,
    seed_read,
)
from raylayers.evaluate.metrics.vqa import (
    exact_match,
    gqa_answer,
    gqa_exact_match,
    normalize_answer,
    official_vqa_accuracy,
    official_vqa_answer,
    score_exact_match,
    score_gqa,
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
    "gqa": score_gqa,
    "mmbench": score_mmbench,
    "seed_bench": score_seed_bench,
    "scienceqa_img": score_scienceqa,
    "cv_bench": score_cv_bench,
    "realworldqa": score_realworldqa,
    "mmvp": score_mmvp,
}
"""Metric name -> score(rows) -> dict; see the package docstring for the row and result contract."""

MULTIPLE_CHOICE_METRICS = ("mc_accuracy", "mmbench", "seed_bench", "scienceqa_img", "cv_bench", "mmvp")
"""The metrics whose every question has options (RealWorldQA mixes options and short answers)."""

SCORE_KEYS = {"official": "score", "lenient": "score_lenient"}
"""Which key of a metric's result each objective metric (`objective.metric` of a search) reads."""

__all__ = [
    "CV_BENCH_SOURCES", "LETTERS", "METRICS", "MME_COGNITION", "MME_PERCEPTION", "MULTIPLE_CHOICE_METRICS",
    "OCR_MATH_DATASET", "OCR_MATH_TYPE", "SCORE_KEYS", "answer_letter", "circular_eval", "circular_groups_correct",
    "cv_bench_read", "exact_match", "gqa_answer", "gqa_exact_match", "is_math_row", "mc_accuracy", "mcq_extract",
    "mme_read", "mme_scores", "mmbench_read", "mmvp_read", "normalize_answer", "ocr_hit", "ocrbench_score",
    "official_vqa_accuracy", "official_vqa_answer", "pope_read", "pope_scores", "read_choice", "scienceqa_read",
    "score_cv_bench", "score_exact_match", "score_gqa", "score_mc_accuracy", "score_mme", "score_mmbench",
    "score_mmvp", "score_ocr_contains", "score_pope", "score_realworldqa", "score_scienceqa", "score_seed_bench",
    "score_vqa_accuracy", "seed_read", "vqa_accuracy",
]
