"""MME: reading yes, no or other by the official rule, and MME's per-subtask acc + acc+ scores summed into perception
and cognition.

Official file: MME's own `eval_tool/calculation.py` (BradyFU/Awesome-Multimodal-Large-Language-Models ships it in
`tools/eval_tool.zip`; read in the copy at zjunlp/Deco commit a3ccc150b715373f3019fc07cb1836c1961d7e15,
`eval_tool/calculation.py`). lmms-eval (commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3, `lmms_eval/tasks/mme/utils.py`,
`parse_pred_ans`) differs slightly: it deletes periods first and reads a lone "y" or "n" as yes or no; we keep MME's
own reading, which the review found in agreement. There is one rule, so `score_lenient` is the score.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from raylayers.evaluate.metrics.rows import ratio, registry_result

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                  "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_MME_CANONICAL = {name.lower(): name for name in MME_PERCEPTION + MME_COGNITION}


def mme_read(text: str) -> str:
    """Read "yes", "no" or "other" by the official MME rule: lowercase, then "yes" within the first four characters
    reads yes, else "no" there reads no ("No.", "nope", "none"), else other (which is always wrong)."""
    head = text.strip().lower()[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def mme_scores(rows: Iterable[Mapping]) -> dict:
    """MME scores from rows with `image`, `subtask`, `prediction` (free text, `mme_read`) and `answer` (Yes/No).

    Per subtask: acc = 100 * correct / questions, acc_plus = 100 * images with all questions right / images,
    score = acc + acc_plus (at most 200). `perception` and `cognition` sum the scores of the official subtasks that
    are present (names matched case-insensitively), `missing` lists the absent ones, `other_subtasks` those outside
    both lists, and `total` sums every present subtask.
    """
    by_image: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        subtask = _MME_CANONICAL.get(row["subtask"].lower(), row["subtask"])
        by_image[subtask][row["image"]].append(mme_read(row["prediction"]) == row["answer"].strip().lower())
    subtasks = {}
    for name, images in by_image.items():
        answers = [hit for hits in images.values() for hit in hits]
        acc = 100 * sum(answers) / len(answers)
        acc_plus = 100 * sum(all(hits) for hits in images.values()) / len(images)
        subtasks[name] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus,
                          "questions": len(answers), "images": len(images)}
    return {"subtasks": subtasks,
            "perception": sum(subtasks[n]["score"] for n in MME_PERCEPTION if n in subtasks),
            "cognition": sum(subtasks[n]["score"] for n in MME_COGNITION if n in subtasks),
            "total": sum(s["score"] for s in subtasks.values()),
            "missing": [n for n in MME_PERCEPTION + MME_COGNITION if n not in subtasks],
            "other_subtasks": sorted(n for n in subtasks if n not in _MME_CANONICAL.values())}


# ------------------------------------------------------------------------------------------------ the scorer
def score_mme(rows: Sequence[Mapping]) -> dict:
    """MME: `mme_scores`' fields, with score = total / (200 * present subtasks), the fraction of the maximum."""
    parsed = [mme_read(row["prediction"]) for row in rows]
    correct = [p == row["answer"].strip().lower() for p, row in zip(parsed, rows)]
    scores = mme_scores(rows)
    result = registry_result(rows, parsed, correct, **scores)
    result["score"] = result["score_lenient"] = ratio(scores["total"], 200 * len(scores["subtasks"]))
    return result
