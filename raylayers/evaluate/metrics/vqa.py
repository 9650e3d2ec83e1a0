"""VQA answer normalisation, VQA accuracy (TextVQA) and exact match of normalised answers (GQA).

The normalisation rules follow the official VQA evaluation script's (vqaEval.py of the VQA API): newlines and tabs
become spaces; a punctuation mark of its list is deleted where it touches a space somewhere in the answer or where
the answer has a comma between digits ("1,000" -> "1000"), and becomes a space otherwise ("t-shirt" -> "t shirt"); a
period is deleted unless a digit follows ("2.5" stays); number words up to ten become digits; the articles a/an/the
are dropped; apostrophe-less contractions get their apostrophe back. Two departures: the official script normalises
the human answers only when they disagree, we always normalise both sides; and we lowercase and collapse every kind
of whitespace first, which makes the rules idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from raylayers.evaluate.metrics.rows import reference_answers, registry_result

_PUNCTUATION = ";/[]\"{}()=+\\_-><@`,?!"  # the official list: no period (own rule), apostrophe, colon, ...
_DIGIT_COMMA = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "couldve": "could've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hes": "he's", "hows": "how's", "im": "i'm", "isnt": "isn't", "itd": "it'd",
    "itll": "it'll", "ive": "i've", "lets": "let's", "mightnt": "mightn't", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "oclock": "o'clock", "shant": "shan't",
    "shes": "she's", "shouldnt": "shouldn't", "shouldve": "should've", "thats": "that's", "theres": "there's",
    "theyd": "they'd", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "wasnt": "wasn't",
    "werent": "weren't", "weve": "we've", "whats": "what's", "whens": "when's", "wheres": "where's",
    "whos": "who's", "whys": "why's", "wont": "won't", "wouldnt": "wouldn't", "wouldve": "would've",
    "yall": "y'all", "youd": "you'd", "youll": "you'll", "youre": "you're", "youve": "you've",
}


def _strip_punctuation(text: str) -> str:
    """The official punctuation rule (module docstring); adjacency is judged on the text as given, as there."""
    delete_all = _DIGIT_COMMA.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def normalize_answer(s: str) -> str:
    """A VQA answer in the official eval script's canonical form: "The Two dogs!" -> "2 dogs"; idempotent."""
    text = _strip_punctuation(" ".join(s.lower().split()))
    words = (_NUMBER_WORDS.get(word, word) for word in text.split())
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy: min(1, humans agreeing / 3), averaged over the leave-one-out subsets of the humans.

    With 10 human answers, k of them equal to the prediction score (k * min(1, (k-1)/3) + (10-k) * min(1, k/3)) / 10:
    k = 1, 2, 3, 4 give 0.3, 0.6, 0.9, 1.0. Fewer answers are averaged the same way over the subsets there are; a
    single answer (no subset left) is scored by exact match instead. Both sides go through `normalize_answer`.
    """
    if not answers:
        raise ValueError("vqa_accuracy needs at least one human answer")
    predicted = normalize_answer(prediction)
    agree = [normalize_answer(answer) == predicted for answer in answers]
    if len(agree) == 1:
        return float(agree[0])
    total = sum(agree)
    return sum(min(1.0, (total - own) / 3) for own in agree) / len(agree)


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when the normalised prediction equals the normalised answer (GQA-style accuracy), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


# ------------------------------------------------------------------------------------------------ the scorers
def score_exact_match(rows: Sequence[Mapping]) -> dict:
    """Exact match of normalised strings (GQA); a row with several reference answers is right if any matches."""
    parsed = [normalize_answer(row["prediction"]) for row in rows]
    correct = [any(exact_match(row["prediction"], ref) for ref in reference_answers(row)) for row in rows]
    return registry_result(rows, parsed, correct)


def score_vqa_accuracy(rows: Sequence[Mapping]) -> dict:
    """VQA accuracy against each row's human `answers` (or its single `answer`); correct is the float accuracy."""
    parsed = [normalize_answer(row["prediction"]) for row in rows]
    correct = [vqa_accuracy(row["prediction"], reference_answers(row)) for row in rows]
    return registry_result(rows, parsed, correct)
