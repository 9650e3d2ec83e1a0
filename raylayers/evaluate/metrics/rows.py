"""What every scorer of the METRICS registry shares: reading a row's reference answers, and the result it returns.

    METRICS[name](rows) -> {"score": official headline in 0..1, "score_lenient": the same figure read leniently,
                            "n": questions, ...extras..., "per_question": [...]}

`per_question` keeps the input order and holds `question_id`, `parsed` (what the official rule read out of the
prediction, None when nothing), `correct` (by the official rule: a bool, or the VQA accuracy as a float) and
`correct_lenient` (by the lenient reader; the same as `correct` where a benchmark has only one rule). The package
docstring describes the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is zero."""
    return numerator / denominator if denominator else 0.0


def reference_answers(row: Mapping) -> list[str]:
    """A row's reference answers: its `answers` list when there is one, else its `answer` (a string or a list)."""
    refs = row.get("answers") or row["answer"]
    return [refs] if isinstance(refs, str) else list(refs)


def registry_result(rows: Sequence[Mapping], parsed: Sequence, correct: Sequence, lenient: Sequence | None = None,
                    **extras) -> dict:
    """The registry's common result: the mean of `correct` as the score, the mean of `lenient` (default: `correct`)
    as `score_lenient`, extras, and the per-question list."""
    lenient = correct if lenient is None else lenient
    per_question = [{"question_id": row.get("question_id"), "parsed": p, "correct": c, "correct_lenient": le}
                    for row, p, c, le in zip(rows, parsed, correct, lenient)]
    return {"score": ratio(sum(correct), len(correct)), "score_lenient": ratio(sum(lenient), len(lenient)),
            "n": len(rows), **extras, "per_question": per_question}
