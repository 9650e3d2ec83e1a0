"""POPE: reading yes or no by the official rule, and POPE's accuracy, precision, recall, F1 and yes-ratio, overall
and per split (random, popular, adversarial).

Official file: POPE's own script, AoiDragon/POPE `evaluate.py` (the stored version read: commit
f3ec604337f1d1c9723ef8d01b4accacf8badb3d). Departure (documented in `pope_read`): "NO", "No!" and "Not at all" read
as no. lmms-eval (commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3, `lmms_eval/tasks/pope/utils.py`) is stricter: the
whole lower-cased answer must be "yes" or "no" ("Yes." and "No, there is none." count as wrong); we keep POPE's own
reading, which the review found in agreement. There is one rule, so `score_lenient` is the score.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Mapping, Sequence

from raylayers.evaluate.metrics.rows import ratio, registry_result


def pope_read(text: str) -> str:
    """Read "yes" or "no" by the official POPE rule: keep the first sentence (text before the first "."), drop commas,
    and say "no" when a word is "no" or "not", else "yes". Unlike the official script, which splits on spaces and
    matches "No", "no" and "not" exactly, we split on any whitespace, lowercase and trim punctuation off each word,
    so "NO" and "No!" read as no too ("isn't" and "cannot" still read as yes there and here)."""
    first = text.split(".")[0].replace(",", "")
    words = {word.strip(string.punctuation) for word in first.lower().split()}
    return "no" if words & {"no", "not"} else "yes"


def pope_scores(predictions: Sequence[str], answers: Sequence[str]) -> dict:
    """POPE's accuracy, precision, recall, f1 and yes_ratio ("yes" is the positive class) plus the four counts."""
    if any(a.strip().lower() not in ("yes", "no") for a in answers):
        raise ValueError("POPE answers must be 'yes' or 'no'")
    read = [pope_read(p) == "yes" for p in predictions]
    truth = [a.strip().lower() == "yes" for a in answers]
    tp = sum(p and t for p, t in zip(read, truth))
    fp = sum(p and not t for p, t in zip(read, truth))
    tn = sum(not p and not t for p, t in zip(read, truth))
    fn = sum(not p and t for p, t in zip(read, truth))
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {"accuracy": ratio(tp + tn, len(read)), "precision": precision, "recall": recall,
            "f1": ratio(2 * precision * recall, precision + recall), "yes_ratio": ratio(tp + fp, len(read)),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


# ------------------------------------------------------------------------------------------------ the scorer
def score_pope(rows: Sequence[Mapping]) -> dict:
    """POPE: accuracy as the score, with precision, recall, f1, yes_ratio and counts; with `split` keys on the rows
    also `splits`: split -> the same scores for that split's rows."""
    parsed = [pope_read(row["prediction"]) for row in rows]
    answers = [row["answer"] for row in rows]
    correct = [p == a.strip().lower() for p, a in zip(parsed, answers)]
    extras = pope_scores([row["prediction"] for row in rows], answers)
    if any("split" in row for row in rows):
        splits: dict = defaultdict(list)
        for row in rows:
            splits[row.get("split")].append(row)
        extras["splits"] = {name: pope_scores([r["prediction"] for r in part], [r["answer"] for r in part])
                            for name, part in splits.items()}
    return registry_result(rows, parsed, correct, **extras)
