"""The multiple-choice benchmarks' scorers: each benchmark's official reader and figure as `score`, and the lenient
reader (`choice.read_choice`) with the same figure as `score_lenient`.

Official files, all at EvolvingLMMs-Lab/lmms-eval commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3 (the paper's
evaluation; where a benchmark's own script differs, we follow lmms-eval and say so):

    seed_bench     lmms_eval/tasks/seedbench/utils.py     accuracy (`seed_all`)
    scienceqa_img  lmms_eval/tasks/scienceqa/utils.py     accuracy (`exact_match`)
    cv_bench       lmms_eval/tasks/cv_bench/utils.py      accuracy (`cv_bench_acc`, what cv_bench.yaml reports);
                                                          `accuracy_source_weighted` beside it: CV-Bench's own
                                                          overall, ((ADE20K + COCO) / 2 + Omni3D) / 2
                                                          (`cv_bench_default_aggregate_results`)
    mmvp           lmms_eval/tasks/mmvp/utils.py          pair accuracy (`mmvp_pair_accuracy`: both questions of
                                                          an image pair right), MMVP's own figure; `accuracy` beside
    realworldqa    lmms_eval/tasks/realworldqa/utils.py   accuracy, per question: an answer letter A-D is read by
                                                          `mcq_extract`, any other answer is matched lower-cased with
                                                          a final period dropped
    mmbench        lmms_eval/tasks/mmbench/mmbench_evals.py  circular accuracy, read by the static evaluator (the
                                                          `mmbench_en_dev_static` task: `can_infer`, then
                                                          `mcq_extract`). lmms-eval's default MMBench task asks GPT
                                                          where `can_infer` reads nothing; offline, the static mode
                                                          is lmms-eval's own replacement. MMBench's own toolkit
                                                          (open-compass/VLMEvalKit commit
                                                          e8e78f05f3080fe28154f2130321f17951c3be94,
                                                          vlmeval/utils/matching_util.py) reads differently: a letter
                                                          only among the last four words, ".()[],:;!*#{}" as spaces,
                                                          option texts only in answers at most twice the options'
                                                          total length, and no `mcq_extract`.

Group figures (MMBench's circular accuracy, MMVP's pair accuracy) are the headline when every group is complete
(as many circular copies as options; both images of a pair), the per-question `accuracy` otherwise (e.g. under
`--limit`); `headline` names which. Departure: the official MMBench loop skips a group whose original question
(index below 1e6) is missing; we score every group present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from raylayers.evaluate.metrics.choice import answer_letter, read_choice
from raylayers.evaluate.metrics.readers import (
    cv_bench_read,
    mcq_extract,
    mmbench_read,
    mmvp_read,
    scienceqa_read,
    seed_read,
)
from raylayers.evaluate.metrics.rows import ratio, registry_result
from raylayers.evaluate.metrics.vqa import exact_match

CV_BENCH_SOURCES = ("ADE20K", "COCO", "Omni3D")


def _options(row: Mapping) -> list[str]:
    return list(row.get("options") or [])


def _read_both(rows: Sequence[Mapping], official: Callable[[Mapping], str | None]) -> tuple[list, list, list]:
    """(official letters read, official correct, lenient correct) against each row's answer letter."""
    answers = [answer_letter(row["answer"], _options(row)) for row in rows]
    parsed = [official(row) for row in rows]
    correct = [p is not None and p == a for p, a in zip(parsed, answers)]
    lenient = [a is not None and read_choice(row["prediction"], _options(row)) == a for row, a in zip(rows, answers)]
    return parsed, correct, lenient


def _accuracy_result(rows: Sequence[Mapping], parsed: list, correct: list, lenient: list, **extras) -> dict:
    return registry_result(rows, parsed, correct, lenient, accuracy=ratio(sum(correct), len(correct)),
                           accuracy_lenient=ratio(sum(lenient), len(lenient)), **extras)


def _groups(rows: Sequence[Mapping], hits: Sequence) -> dict:
    """group -> the hits of its rows, in row order."""
    groups: dict = {}
    for row, hit in zip(rows, hits):
        groups.setdefault(row["group"], []).append(bool(hit))
    return groups


def _with_group_headline(result: dict, name: str, official: float, lenient: float, complete: bool) -> dict:
    """Record a group figure (official and lenient) and make it the headline when every group is complete."""
    result[name], result[f"{name}_lenient"] = official, lenient
    result["headline"] = name if complete else "accuracy"
    if complete:
        result["score"], result["score_lenient"] = official, lenient
    return result


# ------------------------------------------------------------------------------------------------ the scorers
def score_seed_bench(rows: Sequence[Mapping]) -> dict:
    """SEED-Bench: the first character of the answer (`seed_read`)."""
    return _accuracy_result(rows, *_read_both(rows, lambda row: seed_read(row["prediction"])))


def score_scienceqa(rows: Sequence[Mapping]) -> dict:
    """ScienceQA-IMG: the letter alone or "X. ..." (`scienceqa_read`)."""
    return _accuracy_result(rows, *_read_both(rows, lambda row: scienceqa_read(row["prediction"])))


def score_cv_bench(rows: Sequence[Mapping]) -> dict:
    """CV-Bench: `cv_bench_read`; also `sources` (accuracy per source) and `accuracy_source_weighted` (None unless
    ADE20K, COCO and Omni3D are all present)."""
    parsed, correct, lenient = _read_both(rows, lambda row: cv_bench_read(row["prediction"]))
    by_source: dict[str, list[bool]] = {}
    for row, hit in zip(rows, correct):
        if row.get("source"):
            by_source.setdefault(row["source"], []).append(hit)
    sources = {name: sum(hits) / len(hits) for name, hits in sorted(by_source.items())}
    weighted = None
    if all(name in sources for name in CV_BENCH_SOURCES):
        weighted = ((sources["ADE20K"] + sources["COCO"]) / 2 + sources["Omni3D"]) / 2
    return _accuracy_result(rows, parsed, correct, lenient, sources=sources, accuracy_source_weighted=weighted)


def score_mmvp(rows: Sequence[Mapping]) -> dict:
    """MMVP: `mmvp_read`; with `group` keys (image pairs) also `pair_accuracy` over the pairs of exactly two rows
    (lmms-eval's `mmvp_aggregate_pair_results`; 0.0 when there is none), the headline when every pair is whole."""
    parsed, correct, lenient = _read_both(rows, lambda row: mmvp_read(row["prediction"]))
    result = _accuracy_result(rows, parsed, correct, lenient, headline="accuracy")
    if not rows or not all("group" in row for row in rows):
        return result
    official, relaxed = _groups(rows, correct), _groups(rows, lenient)
    pairs = [key for key, hits in official.items() if len(hits) == 2]
    result["pairs"] = len(pairs)
    return _with_group_headline(result, "pair_accuracy", ratio(sum(all(official[k]) for k in pairs), len(pairs)),
                                ratio(sum(all(relaxed[k]) for k in pairs), len(pairs)), len(pairs) == len(official))


def score_mmbench(rows: Sequence[Mapping]) -> dict:
    """MMBench: `mmbench_read`; with `group` keys (circular copies) also `circular_accuracy` (a group is right
    when all its rows are), the headline when every group has one row per option."""
    parsed, correct, lenient = _read_both(rows, lambda row: mmbench_read(row["prediction"], _options(row)))
    result = _accuracy_result(rows, parsed, correct, lenient, headline="accuracy")
    if not rows or not all("group" in row for row in rows):
        return result
    official, relaxed = _groups(rows, correct), _groups(rows, lenient)
    sizes = {row["group"]: len(_options(row)) for row in rows}
    result["groups"] = len(official)
    complete = all(len(hits) == sizes[key] for key, hits in official.items())
    return _with_group_headline(result, "circular_accuracy", ratio(sum(map(all, official.values())), len(official)),
                                ratio(sum(map(all, relaxed.values())), len(relaxed)), complete)


def _realworldqa_official(row: Mapping) -> tuple[str | None, bool]:
    """RealWorldQA's official reading of one row: (what was read, right). The reference is the dataset's own answer
    (`source_answer`, kept by the importer where it mapped an option's text to its letter), else `answer`."""
    reference = str(row.get("source_answer") or row["answer"]).strip()
    prediction = row["prediction"].strip()
    if reference.upper() in ("A", "B", "C", "D"):
        letter = mcq_extract(prediction, "ABCD")
        return letter, letter == reference.upper()
    read = prediction.lower().strip().rstrip(".")
    return read, read == reference.lower()


def _realworldqa_lenient(row: Mapping) -> bool:
    if not _options(row):
        return bool(exact_match(row["prediction"], row["answer"]))
    letter = answer_letter(row["answer"], _options(row))
    return letter is not None and read_choice(row["prediction"], _options(row)) == letter


def score_realworldqa(rows: Sequence[Mapping]) -> dict:
    """RealWorldQA, per question (`_realworldqa_official`); lenient: `read_choice` where the row has options, the
    lenient `exact_match` where it has none."""
    official = [_realworldqa_official(row) for row in rows]
    lenient = [_realworldqa_lenient(row) for row in rows]
    correct = [hit for _, hit in official]
    return _accuracy_result(rows, [read for read, _ in official], correct, lenient)
