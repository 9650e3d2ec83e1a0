"""What every scorer of the METRICS registry shares: reading a row's reference answers, and the result it returns.

    METRICS[name](rows) -> {"score": headline in 0..1, "n": questions, ...extras..., "per_question": [...]}

`per_question` keeps the input order and holds `question_id`, `parsed` (what was read out of the prediction, None
when nothing) and `correct` (a bool, or the VQA accuracy as a float). The package docstring describes the rows.
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


def registry_result(rows: Sequence[Mapping], parsed: Sequence, correct: Sequence, **extras) -> dict:
    """The registry's common result: the mean of `correct` as the score, extras, and the per-question list."""
    per_question = [{"question_id": row.get("question_id"), "parsed": p, "correct": c}
                    for row, p, c in zip(rows, parsed, correct)]
    return {"score": ratio(sum(correct), len(correct)), "n": len(rows), **extras, "per_question": per_question}
