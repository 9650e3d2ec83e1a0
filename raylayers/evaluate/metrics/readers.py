"""The official multiple-choice readers: what each benchmark's own scoring code reads out of a model's answer.

Each function is written from the file named in its docstring, all at EvolvingLMMs-Lab/lmms-eval commit
75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3 (the paper's evaluation); the code is ours, the behaviour theirs, quirks
included. Each returns the letter the official code would compare with the answer letter (an upper-case "A".."Z"
for a right answer), or None when it reads nothing, so that a prediction is officially right exactly when the
reader's result equals the answer letter. Every lmms-eval answer is stripped of surrounding whitespace before its
task sees it (`ConfigurableTask.process_results`); the readers strip too.

    seed_read       SEED-Bench     lmms_eval/tasks/seedbench/utils.py: the first character, any case
    scienceqa_read  ScienceQA-IMG  lmms_eval/tasks/scienceqa/utils.py: the letter alone (any case), or "X. ..."
    cv_bench_read   CV-Bench       lmms_eval/tasks/cv_bench/utils.py: the first letter after "(" and spaces
    mmvp_read       MMVP           lmms_eval/tasks/mmvp/utils.py: five patterns for A/B, then the first character
    mcq_extract     RealWorldQA    lmms_eval/tasks/_task_utils/mcq_extract.py: ranked letter formats
    mmbench_read    MMBench        lmms_eval/tasks/mmbench/mmbench_evals.py (static mode): `can_infer`, then
                                   mcq_extract
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase


def _ascii_letter(char: str) -> str | None:
    """The upper-case ASCII letter `char` lowercases to ("b" -> "B", the Kelvin sign -> "K"), else None."""
    low = char.lower()
    return low.upper() if len(low) == 1 and low in string.ascii_lowercase else None


def seed_read(text: str) -> str | None:
    """SEED-Bench (lmms-eval `lmms_eval/tasks/seedbench/utils.py`: `seed_process_result`, `seed_aggregation_result`):
    the stripped answer's first character, compared with the answer lower-cased: "b" and "B) ..." read B, "(B)" and "The
    answer is B" read nothing useful."""
    pred = text.strip()[:1]
    return (_ascii_letter(pred) or pred) if pred else None


def scienceqa_read(text: str) -> str | None:
    """ScienceQA (lmms-eval `lmms_eval/tasks/scienceqa/utils.py`: `sqa_process_results`): the whole stripped answer when
    it is one letter in any case ("b"), or the first character of an answer "X. ..." whose first character is
    upper-case; anything else ("(B)", "B)", "b. ...", the option's text) is wrong."""
    pred = text.strip()
    if pred and _ascii_letter(pred):  # `pred.lower() == target`
        return _ascii_letter(pred)
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
        return _ascii_letter(pred[0]) or pred[0]
    return None


_CV_BENCH_LETTER = re.compile(r"[(\s]*([A-Z])[).\s]*", re.IGNORECASE)


def cv_bench_read(text: str) -> str | None:
    """CV-Bench (lmms-eval `lmms_eval/tasks/cv_bench/utils.py`: `_extract_answer_letter`): after any "(" and spaces at
    the start, the first character if it is a letter, upper-cased; so "b", "(B)", "B. red" read B, and "red" reads R (an
    option's text is wrong)."""
    match = _CV_BENCH_LETTER.match(text.strip())
    return match.group(1).upper() if match else None


_MMVP_PATTERNS = tuple(re.compile(pattern, re.IGNORECASE) for pattern in (
    r"^\s*\(?([AB])\)?\.?\s*$",      # the letter alone, maybe in brackets, maybe with a period
    r"^\s*\(?([AB])\)?[.\s]",        # the letter first, then a period or a space
    r"answer\s+is\s+\(?([AB])\)?",   # "... answer is B"
    r"option\s+\(?([AB])\)?",        # "option B"
    r"\(?([AB])\)?(?:\s|$)",         # an a or b anywhere before a space or the end ("There is a dog" reads A)
))


def mmvp_read(text: str) -> str | None:
    """MMVP (lmms-eval `lmms_eval/tasks/mmvp/utils.py`: `_extract_answer_letter`): the first of five patterns that finds
    an A or B (any case; the patterns are tried in order, each anywhere it may match), else the first character when it
    is a or b ("apple" reads A)."""
    pred = text.strip()
    for pattern in _MMVP_PATTERNS:
        match = pattern.search(pred)
        if match:
            return match.group(1).upper()
    return pred[0].upper() if pred and pred[0].upper() in ("A", "B") else None


_ANSWER_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)
# the letter formats, each with its rank (a higher rank wins; within a rank the later position wins)
_MARKED_FORMATS = (("({})", 6), ("{}.", 5), ("{}:", 4), ("{})", 3), ("{} ", 2))
_RANK_PHRASE, _RANK_START, _RANK_END, _RANK_FALLBACK = 7, 10, 9, 0


def mcq_extract(text: str, choices: Sequence[str] = "ABCDEFGH") -> str | None:
    """lmms-eval's shared extractor (`lmms_eval/tasks/_task_utils/mcq_extract.py`: `extract_mcq_answer`): every
    occurrence of a choice letter in a known format ("(B)", "B.", "B:", "B)", "B ", after an answer phrase, opening or
    closing the answer) is a candidate, ranked (start > end > phrase > brackets > period > colon > right bracket >
    space); the best rank wins, then the latest position. With no candidate, any occurrence of a letter, the latest
    winning. Letters are matched upper-case only, so "b" reads nothing."""
    if not text or not text.strip():
        return None
    choices = choices or "ABCDEFGH"  # the official default, for an empty list too
    padded = text.strip()
    for mark in ",.!?;:'\"":  # one strip per mark, in this order
        padded = padded.strip(mark)
    padded = f" {padded} "
    found: list[tuple[str, int, int]] = []  # (letter, position, rank)
    for form, rank in _MARKED_FORMATS:
        found += [(ch, padded.rfind(form.format(ch)), rank) for ch in choices if form.format(ch) in padded]
    lowered = padded.lower()
    for phrase in _ANSWER_PHRASES:
        start = lowered.find(phrase)
        if start != -1:
            after = start + len(phrase)
            found += [(ch, padded.find(ch, after), _RANK_PHRASE) for ch in choices if padded.find(ch, after) != -1]
    core = padded.strip()
    found += [(ch, 0, _RANK_START) for ch in choices
              if core.startswith(ch) and (len(core) == 1 or not core[1].isalpha())]
    found += [(ch, len(padded) - 1, _RANK_END) for ch in choices
              if core.endswith(ch) and (len(core) == 1 or not core[-2].isalpha())]
    if not found:
        found = [(ch, padded.rfind(ch), _RANK_FALLBACK) for ch in choices if ch in padded]
    if not found:
        return None
    found.sort(key=lambda candidate: (candidate[2], candidate[1]), reverse=True)  # stable, as there
    return found[0][0]


_MMBENCH_MARKS = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""),
                  (":", ","), (":", "."), (":", ")"), (":", ")."))


def _mmbench_option_letter(text: str) -> str | None:
    """`MMBench_Evaluator.can_infer_option`: among the whitespace-split words, the one word that is a letter A..E
    (unless "A" is among more than three words: then the bare-letter step is skipped), else the one word that is a
    letter in one of the marked forms ("B.", "(B)", ":B", ...)."""
    if "Failed to obtain answer via API" in text:
        return None
    words = [word.strip() for word in text.split()]
    letters = LETTERS[:5]  # the official default `num_choice=5`, whatever the question's options

    def single(prefix: str = "", suffix: str = "") -> str | None:
        named = [ch for ch in letters if prefix + ch + suffix in words]
        return named[0] if len(named) == 1 else None

    if single() and not ("A" in words and len(words) > 3):
        return single()
    for prefix, suffix in _MMBENCH_MARKS:
        if single(prefix, suffix):
            return single(prefix, suffix)
    return None


def _mmbench_text_letter(text: str, options: Sequence[str]) -> str | None:
    """`MMBench_Evaluator.can_infer_text`: the one option whose lower-cased text is a substring of the lower-cased
    answer ("dark red" contains both "red" and "dark red": nothing)."""
    lowered = text.lower()
    named = [LETTERS[i] for i, option in enumerate(options[:4]) if str(option).lower() in lowered]
    return named[0] if len(named) == 1 else None


def mmbench_read(text: str, options: Sequence[str]) -> str | None:
    """MMBench as lmms-eval's static evaluator reads one answer (`lmms_eval/tasks/mmbench/mmbench_evals.py`:
    `MMBench_Evaluator.eval_sub_data` with static_only): `can_infer` (a bare or marked letter word, else an option
    text), else `mcq_extract` over the question's option letters. It may return "E" (never right)."""
    pred = text.strip()
    return (_mmbench_option_letter(pred) or _mmbench_text_letter(pred, options)
            or mcq_extract(pred, LETTERS[:min(len(options), 4)]))
