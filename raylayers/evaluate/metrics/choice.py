"""Multiple choice: reading the option letter a model's answer names (`read_choice`), accuracy on letters, and
MMBench's circular evaluation.

`read_choice` tries, in order, and returns at the first rule that yields a valid letter:
  1. a leading letter: "B", "b", "(B)", "[B]", "B.", "B)", "B:", "B,", "B) red", or "B red" when "red" is B's text;
  2. a letter after "answer" ("The answer is B", "Answer: (b)"), then after "option"/"choice" ("Option B");
  3. the one distinct bracketed letter anywhere ("... so (C).");
  4. the option whose text appears as whole words ("a red square" -> the option "red square"); of options whose
     matches nest ("red" in "dark red") the longer wins; two unrelated ones ("red or blue") are ambiguous;
  5. the one distinct standalone capital letter anywhere ("I think A is right"), where "A" opening a sentence
     and "I" anywhere count as the article and the pronoun when a plain word follows ("A red square").
Rules 1 and 2 accept a letter followed by more words only when it is a capital or the words are its option text,
so "the answer is a red square" is not read as A. Letters beyond the options are invalid and skipped; with no
options every letter A..Z is valid and rule 4 is skipped.

MMBench's circular evaluation asks each question several times with its options shifted; a question (a `group` of
rows) counts as right only when every shift is.

This reader is no benchmark's official one: it is the lenient reader, the `score_lenient` of every multiple-choice
benchmark (their official readers are in `readers.py`, their scorers in `benchmarks.py`), and both numbers of the
generic `mc_accuracy` (offline-world benchmarks, which have no official script).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence

from raylayers.evaluate.metrics.rows import registry_result

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
    """The option letter ("A".."Z") a model's answer names, or None; the rules are in the module docstring."""
    text = text.strip(_STRIP)
    if not text:
        return None
    leading = _LEADING.match(text)
    letter = (leading and _letter_with_rest(leading, options, phrase=False)) or _phrase_letter(text, options)
    letter = letter or _unique(m for m in _BRACKETED.findall(text.upper()) if m in _letters(options))
    if not letter and options:
        letter = _option_text_letter(text, options)
    return letter or _unique(_capital_letters(text, options))


def answer_letter(answer: str, options: Sequence[str]) -> str | None:
    """The letter a reference answer names: itself when it is one letter, else read like a prediction."""
    answer = answer.strip()
    return answer.upper() if len(answer) == 1 and answer.isalpha() else read_choice(answer, options)


def mc_accuracy(predictions: Sequence[str], answers: Sequence[str], options_list: Sequence[Sequence[str]]) -> float:
    """Fraction of predictions whose letter (`read_choice`) is the answer letter; 0.0 when there are none."""
    hits = [read_choice(p, o) == answer_letter(a, o) for p, a, o in zip(predictions, answers, options_list)]
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


# ------------------------------------------------------------------------------------------------ the scorer
def score_mc_accuracy(rows: Sequence[Mapping]) -> dict:
    """Generic multiple choice (offline-world benchmarks): the letter `read_choice` reads from each prediction
    against the answer letter, as both the score and `score_lenient`; with `group` keys on the rows also
    `circular_accuracy` (MMBench circular evaluation) and `groups`."""
    parsed = [read_choice(row["prediction"], row.get("options") or []) for row in rows]
    letters = [answer_letter(row["answer"], row.get("options") or []) for row in rows]
    correct = [p is not None and p == a for p, a in zip(parsed, letters)]
    extras = {}
    if rows and all("group" in row for row in rows):
        circular = [{"group": row["group"], "prediction": p, "answer": a or ""}
                    for row, p, a in zip(rows, parsed, letters)]
        extras = {"circular_accuracy": circular_eval(circular), "groups": len({row["group"] for row in rows})}
    return registry_result(rows, parsed, correct, **extras)
