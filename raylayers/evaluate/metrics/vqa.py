"""VQA accuracy (TextVQA), GQA's exact match, and the lenient VQA normalisation kept beside them.

Official rules, as lmms-eval scores them (the paper's evaluation), read at EvolvingLMMs-Lab/lmms-eval commit
75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3:
- TextVQA: `lmms_eval/tasks/textvqa/utils.py` (`textvqa_process_results`) with the answer processor of
  `lmms_eval/tasks/_task_utils/vqa_eval_metric.py` (`EvalAIAnswerProcessor`): both the prediction and every human
  answer are processed, then the leave-one-out VQA accuracy. The processor is the VQA API's (GT-Vision-Lab/VQA
  commit a013f0043c1e2cdc995922dfe257f7149aa9af06, `PythonEvaluationTools/vqaEvaluation/vqaEval.py`) with a first
  step of its own: lowercase, delete "," and "?", and write "'s" as " 's". Where the two differ we follow lmms-eval:
  vqaEval.py normalises only when the humans disagree, and it keeps "what's" as it is while lmms-eval makes it
  "what 's" (so "whats", which both turn into "what's", matches "what's" only in vqaEval.py).
- GQA: the `exact_match` metric of `lmms_eval/tasks/gqa/gqa.yaml` (`exact_match_hf_evaluate` in
  `lmms_eval/api/metrics.py`, ignore_case and ignore_punctuation): lowercase, delete `string.punctuation`, compare.
Every lmms-eval answer is stripped of surrounding whitespace first (`ConfigurableTask.process_results`).

One departure: with a single reference answer the leave-one-out average has no other human to agree with and
lmms-eval scores 0; we score exact match of processed strings instead (TextVQA always has 10 answers).

The lenient side (`normalize_answer`, `exact_match`, `vqa_accuracy`) is this package's earlier rule and stays the
`score_lenient` of both, and the official one of the generic `exact_match` and of offline-world benchmarks: it always
lowercases and collapses whitespace first, keeps commas for the punctuation rule, and uses a contraction table of
its own ("im", "shes", "lets" restored; "maam", "whered", "twas" not).
"""

from __future__ import annotations

import re
import string
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

# The official contraction table (vqaEval.py's `contractions`, the same in lmms-eval's EvalAIAnswerProcessor), as
# "word=replacement" pairs. Left out, as they can never apply: the keys with a capital ("Im", "Ive", "Id've",
# "I'dve": words are lowercased before the look-up) and the two that map to themselves ("let's", "she's").
# "somebody'd=somebodyd" is the official table's own (inverted) entry.
_OFFICIAL_CONTRACTIONS = dict(pair.split("=") for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't
havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's isnt=isn't
itd=it'd itd've=it'd've it'dve=it'd've itll=it'll maam=ma'am mightnt=mightn't mightnt've=mightn't've
mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock
oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've
she'dve=she'd've shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've
somebody'd=somebodyd somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll
somebodys=somebody's someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll
someones=someone's somethingd=something'd somethingd've=something'd've something'dve=something'd've
somethingll=something'll thats=that's thered=there'd thered've=there'd've there'dve=there'd've therere=there're
theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've
twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're
whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd
whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're whys=why's
wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all
yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd
youd've=you'd've you'dve=you'd've youll=you'll youre=you're youve=you've
""".split())
_OFFICIAL_DIGIT_COMMA = re.compile(r"(?<=\d),+(?=\d)")
_OFFICIAL_PERIOD_LIMIT = 32  # the official `PERIOD_STRIP.sub("", text, re.UNICODE)` passes re.UNICODE (32) as count


# ------------------------------------------------------------------------------------------------ lenient
def _strip_punctuation(text: str) -> str:
    """The punctuation rule (module docstring); adjacency is judged on the text as given, as in the official one."""
    delete_all = _DIGIT_COMMA.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def normalize_answer(s: str) -> str:
    """The lenient canonical form of a VQA answer: "The Two dogs!" -> "2 dogs"; idempotent."""
    text = _strip_punctuation(" ".join(s.lower().split()))
    words = (_NUMBER_WORDS.get(word, word) for word in text.split())
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str], normalize=normalize_answer) -> float:
    """VQA accuracy: min(1, humans agreeing / 3), averaged over the leave-one-out subsets of the humans.

    With 10 human answers, k of them equal to the prediction score (k * min(1, (k-1)/3) + (10-k) * min(1, k/3)) / 10:
    k = 1, 2, 3, 4 give 0.3, 0.6, 0.9, 1.0. Fewer answers are averaged the same way over the subsets there are; a
    single answer (no subset left) is scored by exact match instead. Both sides go through `normalize` (the
    lenient `normalize_answer` unless told; `official_vqa_accuracy` passes `official_vqa_answer`).
    """
    if not answers:
        raise ValueError("vqa_accuracy needs at least one human answer")
    predicted = normalize(prediction)
    agree = [normalize(answer) == predicted for answer in answers]
    if len(agree) == 1:
        return float(agree[0])
    total = sum(agree)
    return sum(min(1.0, (total - own) / 3) for own in agree) / len(agree)


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when the leniently normalised prediction equals the normalised answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


# ------------------------------------------------------------------------------------------------ official
def official_vqa_answer(text: str) -> str:
    """An answer as lmms-eval's `EvalAIAnswerProcessor.__call__` leaves it (vqa_eval_metric.py, commit above)."""
    # word_tokenize: lowercase, "," and "?" deleted, "'s" split off; then whitespace
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # process_punctuation: a mark touching a space (or any mark, when a comma sits between digits) is deleted,
    # else it becomes a space; then periods not before a digit go, at most 32 of them
    delete_all = _OFFICIAL_DIGIT_COMMA.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    out = _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_OFFICIAL_PERIOD_LIMIT)
    # process_digit_article: number words to digits, articles dropped, then the contraction table
    words = [_NUMBER_WORDS.get(word, word) for word in out.lower().split()]
    return " ".join(_OFFICIAL_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def official_vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """TextVQA's accuracy as lmms-eval's `textvqa_process_results` computes it (both sides through
    `official_vqa_answer`, leave-one-out over the humans); a single answer: exact match (module docstring)."""
    return vqa_accuracy(prediction.strip(), answers, normalize=official_vqa_answer)


def gqa_answer(text: str) -> str:
    """GQA's comparison form in lmms-eval (`exact_match_hf_evaluate`, ignore_case and ignore_punctuation):
    lowercased, with every character of `string.punctuation` deleted; nothing else (no article or number rule)."""
    return text.lower().translate(str.maketrans("", "", string.punctuation))


def gqa_exact_match(prediction: str, answer: str) -> float:
    """1.0 when the stripped prediction and the answer agree in `gqa_answer` form (lmms-eval's GQA), else 0.0."""
    return float(gqa_answer(prediction.strip()) == gqa_answer(answer))


# ------------------------------------------------------------------------------------------------ the scorers
def score_exact_match(rows: Sequence[Mapping]) -> dict:
    """Exact match of leniently normalised strings (offline-world short answers); a row with several reference
    answers is right if any matches. No official script: official and lenient are this one rule."""
    parsed = [normalize_answer(row["prediction"]) for row in rows]
    correct = [any(exact_match(row["prediction"], ref) for ref in reference_answers(row)) for row in rows]
    return registry_result(rows, parsed, correct)


def score_gqa(rows: Sequence[Mapping]) -> dict:
    """GQA: lmms-eval's exact match (`gqa_exact_match`, any reference answer) as the score; the lenient
    `exact_match` (VQA normalisation) as `score_lenient`."""
    parsed = [gqa_answer(row["prediction"].strip()) for row in rows]
    correct = [any(gqa_exact_match(row["prediction"], ref) for ref in reference_answers(row)) for row in rows]
    lenient = [any(exact_match(row["prediction"], ref) for ref in reference_answers(row)) for row in rows]
    return registry_result(rows, parsed, correct, lenient=lenient)


def score_vqa_accuracy(rows: Sequence[Mapping]) -> dict:
    """TextVQA: `official_vqa_accuracy` against each row's human `answers` (or its single `answer`) as the score,
    the lenient `vqa_accuracy` as `score_lenient`; correct is the float accuracy."""
    parsed = [official_vqa_answer(row["prediction"].strip()) for row in rows]
    correct = [official_vqa_accuracy(row["prediction"], reference_answers(row)) for row in rows]
    lenient = [vqa_accuracy(row["prediction"], reference_answers(row)) for row in rows]
    return registry_result(rows, parsed, correct, lenient=lenient)
