"""Benchmark metrics: VQA accuracy, exact match, multiple-choice letters, MMBench circular, POPE, OCRBench, MME.

Pure Python. Each metric exists twice: as small functions on strings (`vqa_accuracy`, `read_choice`, `pope_scores`,
...) and as an entry of `METRICS`, which scores a list of per-question rows the same way for every benchmark:

    METRICS[name](rows) -> {"score": headline in 0..1, "n": questions, ...extras..., "per_question": [...]}

A row has `question_id`, `prediction` (the model's text), `answer` and `options` (a list, may be empty), plus the
extras a metric needs: `answers` (human answers, VQA), `subtask` and `image` (MME), `split` (POPE), `group` (MMBench
circular shifts of one question), `math` (OCRBench handwritten formulas). `per_question` keeps the input order and
holds `question_id`, `parsed` (what was read out of the prediction, None when nothing) and `correct` (a bool, or the
VQA accuracy as a float).
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

# ---------------------------------------------------------------------------------------------------------------
# VQA answer normalisation. The rules follow the official VQA evaluation script's (vqaEval.py of the VQA API):
# newlines and tabs become spaces; a punctuation mark of its list is deleted where it touches a space somewhere in
# the answer or where the answer has a comma between digits ("1,000" -> "1000"), and becomes a space otherwise
# ("t-shirt" -> "t shirt"); a period is deleted unless a digit follows ("2.5" stays); number words up to ten become
# digits; the articles a/an/the are dropped; apostrophe-less contractions get their apostrophe back. Two departures:
# the official script normalises the human answers only when they disagree, we always normalise both sides; and we
# lowercase and collapse every kind of whitespace first, which makes the rules idempotent.
# ---------------------------------------------------------------------------------------------------------------

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
    """The official punctuation rule (module comment); adjacency is judged on the text as given, as there."""
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


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice. `read_choice` tries, in order, and returns at the first rule that yields a valid letter:
#   1. a leading letter: "B", "b", "(B)", "[B]", "B.", "B)", "B:", "B,", "B) red", or "B red" when "red" is B's text;
#   2. a letter after "answer" ("The answer is B", "Answer: (b)"), then after "option"/"choice" ("Option B");
#   3. the one distinct bracketed letter anywhere ("... so (C).");
#   4. the option whose text appears as whole words ("a red square" -> the option "red square"); of options whose
#      matches nest ("red" in "dark red") the longer wins; two unrelated ones ("red or blue") are ambiguous;
#   5. the one distinct standalone capital letter anywhere ("I think A is right"), where "A" opening a sentence
#      and "I" anywhere count as the article and the pronoun when a plain word follows ("A red square").
# Rules 1 and 2 accept a letter followed by more words only when it is a capital or the words are its option text,
# so "the answer is a red square" is not read as A. Letters beyond the options are invalid and skipped; with no
# options every letter A..Z is valid and rule 4 is skipped.
# ---------------------------------------------------------------------------------------------------------------

_LEADING = re.compile(r"([(\[])?([A-Za-z])([)\]])?(?![\w'])(.*)", re.DOTALL)
_ANSWER_PHRASE = re.compile(
    r"\banswer\b(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?\s*[:\-]?\s*(?:(?:option|choice)\s+)?"
    r"([(\[])?([A-Za-z])([)\]])?(?![\w'])(.*)", re.IGNORECASE | re.DOTALL)
_OPTION_PHRASE = re.compile(r"\b(?:option|choice)\s*[:\-]?\s*([(\[])?([A-Za-z])([)\]])?(?![\w'])(.*)",
                            re.IGNORECASE | re.DOTALL)
_BRACKETED = re.compile(r"[(\[]([A-Za-z])[)\]]")
_CAPITAL = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
_NEXT_WORD = re.compile(r"\s+([a-z]+)")
_LETTER_VERBS = frozenset({"is", "was", "would", "will", "should", "seems", "looks", "appears", "must", "or", "and"})
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s*|\n\s*)$")
_STRIP = " \t\r\n*\"'`"


def _letters(options: Sequence[str]) -> str:
    """The valid letters: one per option, or all 26 when there are no options."""
    return string.ascii_uppercase[:len(options)] if options else string.ascii_uppercase


def _squash(text: str) -> str:
    """Lowercase with single spaces, for comparing option texts."""
    return " ".join(text.lower().split())


def _same_text(text: str, option: str) -> bool:
    """Whether text is the option's text, ignoring case, spacing and punctuation around either."""
    return _squash(text.strip(string.punctuation + string.whitespace)) == _squash(option.strip(string.punctuation))


def _letter_with_rest(match: re.Match, options: Sequence[str], phrase: bool) -> str | None:
    """The letter of a rule-1 (phrase=False) or rule-2 match when what follows says it is a letter, else None."""
    opening, letter, closing, rest = match.groups()
    letter, rest = letter.upper(), rest.strip()
    if letter not in _letters(options):
        return None
    if closing or not rest or rest[0] in ".:,)":
        return letter
    if options and _same_text(rest, options[ord(letter) - ord("A")]):
        return letter
    capital_then_words = phrase and match.group(2).isupper() and not opening
    return letter if capital_then_words else None


def _phrase_letter(text: str, options: Sequence[str]) -> str | None:
    """Rule 2: the first acceptable letter after "answer", then after "option" or "choice"."""
    for pattern in (_ANSWER_PHRASE, _OPTION_PHRASE):
        for match in pattern.finditer(text):
            letter = _letter_with_rest(match, options, phrase=True)
            if letter:
                return letter
    return None


def _unique(found: Iterable[str]) -> str | None:
    """The only distinct item found, None when there are none or several."""
    distinct = set(found)
    return distinct.pop() if len(distinct) == 1 else None


def _option_text_letter(text: str, options: Sequence[str]) -> str | None:
    """Rule 4: the option whose text appears as whole words; nested matches go to the longer text."""
    haystack = _squash(text)
    spans: dict[int, list[tuple[int, int]]] = {}
    for index, option in enumerate(options):
        needle = _squash(option)
        if needle:
            pattern = rf"(?<!\w){re.escape(needle)}(?!\w)"
            found = [m.span() for m in re.finditer(pattern, haystack)]
            if found:
                spans[index] = found

    def nested(index: int) -> bool:
        return all(any(a <= s and e <= b and (a, b) != (s, e) for j in spans if j != index for a, b in spans[j])
                   for s, e in spans[index])

    kept = [index for index in spans if not nested(index)]
    return string.ascii_uppercase[kept[0]] if len(kept) == 1 else None


def _capital_letters(text: str, options: Sequence[str]) -> list[str]:
    """Rule 5's candidates: valid standalone capitals that are not the article "A" or the pronoun "I"."""
    found = []
    for match in _CAPITAL.finditer(text):
        letter = match.group(1)
        following = _NEXT_WORD.match(text, match.end())
        plain_word = following is not None and following.group(1) not in _LETTER_VERBS
        at_start = _SENTENCE_START.search(text, 0, match.start()) is not None
        if plain_word and (letter == "I" or (letter == "A" and at_start)):
            continue
        if letter in _letters(options):
            found.append(letter)
    return found


def read_choice(text: str, options: Sequence[str]) -> str | None:
    """The option letter ("A".."Z") a model's answer names, or None; the rules are in the comment above."""
    text = text.strip(_STRIP)
    if not text:
        return None
    leading = _LEADING.match(text)
    letter = (leading and _letter_with_rest(leading, options, phrase=False)) or _phrase_letter(text, options)
    letter = letter or _unique(m for m in _BRACKETED.findall(text.upper()) if m in _letters(options))
    if not letter and options:
        letter = _option_text_letter(text, options)
    return letter or _unique(_capital_letters(text, options))


def _answer_letter(answer: str, options: Sequence[str]) -> str | None:
    """The letter a reference answer names: itself when it is one letter, else read like a prediction."""
    answer = answer.strip()
    return answer.upper() if len(answer) == 1 and answer.isalpha() else read_choice(answer, options)


def mc_accuracy(predictions: Sequence[str], answers: Sequence[str], options_list: Sequence[Sequence[str]]) -> float:
    """Fraction of predictions whose letter (`read_choice`) is the answer letter; 0.0 when there are none."""
    hits = [read_choice(p, o) == _answer_letter(a, o) for p, a, o in zip(predictions, answers, options_list)]
    return sum(hits) / len(hits) if hits else 0.0


def circular_groups_correct(rows: Iterable[Mapping]) -> dict:
    """MMBench circular evaluation: group -> whether every circular shift of the question got its answer letter.

    Each row has `group` (e.g. the original question's id), `prediction` (the letter read, or None) and `answer`
    (the letter); a group counts as correct only when all of its rows do.
    """
    correct: dict = {}
    for row in rows:
        hit = row["prediction"] is not None and row["prediction"].strip().upper() == row["answer"].strip().upper()
        correct[row["group"]] = correct.get(row["group"], True) and hit
    return correct


def circular_eval(rows: Iterable[Mapping]) -> float:
    """MMBench circular accuracy: the fraction of groups answered correctly in every shift; 0.0 when empty."""
    groups = circular_groups_correct(rows)
    return sum(groups.values()) / len(groups) if groups else 0.0


# ---------------------------------------------------------------------------------------------------------------
# POPE, OCRBench, MME
# ---------------------------------------------------------------------------------------------------------------


def pope_read(text: str) -> str:
    """Read "yes" or "no" by the official POPE rule: keep the first sentence (text before the first "."), drop commas,
    and say "no" when a word is "no" or "not", else "yes". Unlike the official script, which splits on spaces and
    matches "No", "no" and "not" exactly, we split on any whitespace, lowercase and trim punctuation off each word,
    so "NO" and "No!" read as no too ("isn't" and "cannot" still read as yes there and here)."""
    first = text.split(".")[0].replace(",", "")
    words = {word.strip(string.punctuation) for word in first.lower().split()}
    return "no" if words & {"no", "not"} else "yes"


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is zero."""
    return numerator / denominator if denominator else 0.0


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
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"accuracy": _ratio(tp + tn, len(read)), "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "yes_ratio": _ratio(tp + fp, len(read)),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


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


# ---------------------------------------------------------------------------------------------------------------
# The registry: METRICS[name](rows) -> {"score": 0..1, "n": ..., ..., "per_question": [...]} (module docstring).
# ---------------------------------------------------------------------------------------------------------------


def _references(row: Mapping) -> list[str]:
    """A row's reference answers: its `answers` list when there is one, else its `answer` (a string or a list)."""
    refs = row.get("answers") or row["answer"]
    return [refs] if isinstance(refs, str) else list(refs)


def _result(rows: Sequence[Mapping], parsed: Sequence, correct: Sequence, **extras) -> dict:
    """The registry's common result: the mean of `correct` as the score, extras, and the per-question list."""
    per_question = [{"question_id": row.get("question_id"), "parsed": p, "correct": c}
                    for row, p, c in zip(rows, parsed, correct)]
    return {"score": _ratio(sum(correct), len(correct)), "n": len(rows), **extras, "per_question": per_question}


def score_mc_accuracy(rows: Sequence[Mapping]) -> dict:
    """Multiple choice: the letter read from each prediction against the answer letter; with `group` keys on the
    rows also `circular_accuracy` (MMBench circular evaluation) and `groups`."""
    parsed = [read_choice(row["prediction"], row.get("options") or []) for row in rows]
    letters = [_answer_letter(row["answer"], row.get("options") or []) for row in rows]
    correct = [p is not None and p == a for p, a in zip(parsed, letters)]
    extras = {}
    if rows and all("group" in row for row in rows):
        circular = [{"group": row["group"], "prediction": p, "answer": a or ""}
                    for row, p, a in zip(rows, parsed, letters)]
        extras = {"circular_accuracy": circular_eval(circular), "groups": len({row["group"] for row in rows})}
    return _result(rows, parsed, correct, **extras)


def score_exact_match(rows: Sequence[Mapping]) -> dict:
    """Exact match of normalised strings (GQA); a row with several reference answers is right if any matches."""
    parsed = [normalize_answer(row["prediction"]) for row in rows]
    correct = [any(exact_match(row["prediction"], ref) for ref in _references(row)) for row in rows]
    return _result(rows, parsed, correct)


def score_vqa_accuracy(rows: Sequence[Mapping]) -> dict:
    """VQA accuracy against each row's human `answers` (or its single `answer`); correct is the float accuracy."""
    parsed = [normalize_answer(row["prediction"]) for row in rows]
    correct = [vqa_accuracy(row["prediction"], _references(row)) for row in rows]
    return _result(rows, parsed, correct)


def score_ocr_contains(rows: Sequence[Mapping]) -> dict:
    """OCRBench: `ocr_hit` per row (math rule when the row's `math` is true or its `subtask` is OCR_MATH_TYPE);
    parsed is the prediction in comparison form; also `score_1000` (`ocrbench_score`)."""
    math = [bool(row.get("math")) or row.get("subtask") == OCR_MATH_TYPE for row in rows]
    parsed = [_ocr_prepare(row["prediction"], m) for row, m in zip(rows, math)]
    correct = [ocr_hit(row["prediction"], _references(row), m) for row, m in zip(rows, math)]
    return _result(rows, parsed, correct, score_1000=ocrbench_score(correct))


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
    return _result(rows, parsed, correct, **extras)


def score_mme(rows: Sequence[Mapping]) -> dict:
    """MME: `mme_scores`' fields, with score = total / (200 * present subtasks), the fraction of the maximum."""
    parsed = [mme_read(row["prediction"]) for row in rows]
    correct = [p == row["answer"].strip().lower() for p, row in zip(parsed, rows)]
    scores = mme_scores(rows)
    result = _result(rows, parsed, correct, **scores)
    result["score"] = _ratio(scores["total"], 200 * len(scores["subtasks"]))
    return result


METRICS: dict[str, Callable[[Sequence[Mapping]], dict]] = {
    "mc_accuracy": score_mc_accuracy,
    "exact_match": score_exact_match,
    "vqa_accuracy": score_vqa_accuracy,
    "ocr_contains": score_ocr_contains,
    "pope": score_pope,
    "yes_no": score_pope,
    "mme": score_mme,
}
"""Metric name -> score(rows) -> dict; see the module docstring for the row and result contract."""
