"""Text-only records for pretraining the world's LM: the scene's caption stands where the image would go.

A LLaVA-style model starts from an LLM that already reads; the world's LM learns to read here, on text alone, from
scenes drawn like the world's own:
- QA records in exactly the stage-2 layout (`qa_record`: several questions, the benchmarks' prompt formats), with
  the caption in place of `<image>`, a share of the multiple-choice ones asked short-answer (one hop fewer: find
  the object, read its attribute; the letter comes on top of that);
- copy records in the stage-1 layout: the caption as context, then the caption again, so the LM learns to describe
  what its context shows, which is what stage 1 asks of the image tokens when the LM is frozen;
- option drills (`drill_record`): a multiple-choice question with the right option's text stated before it and no
  caption, answered with the letter. Nothing is left to read but the options, so the drill teaches the one step a
  small LM does not learn from the benchmark format itself: which letter goes with which option;
- scene drills (`scene_drill_record`): a question of a task that names its objects, in its benchmark format, after a
  caption that lists only the objects it names: the finding hop removed, what is left is reading the named object's
  cell, size or colour (and, for relation, comparing two cells);
- held-out questions drawn as each benchmark draws them (`bench_task`, balanced counts, POPE's splits).
Scenes come from the world's random streams at item indices no world image uses (`TEXT_STREAM_OFFSET`), so a corpus
of any size is deterministic and never holds the scene of a world's training image.
"""

from __future__ import annotations

import dataclasses

from raylayers.prompts import IMAGE_TOKEN, format_question, option_letters
from raylayers.world.build import QUESTION_PURPOSE, SCENE_PURPOSE, bench_task, qa_record, stream_rng
from raylayers.world.questions import QUESTION_MAKERS, TASK_META, TASKS, ObjectStats, caption
from raylayers.world.scale import WorldScale
from raylayers.world.scene import pick, sample_scene

TEXT_STREAM_OFFSET = 1_000_000_000
"""Item indices of text scenes start here, far past any world's image count."""


def text_record(seed: int, scale: WorldScale, index: int, stats: ObjectStats, copy_fraction: float,
                direct_fraction: float = 0.0) -> dict:
    """Text record `index` of the corpus of `seed`: `{"id", "kind": "qa"|"copy", "context", "conversations"}`.

    A copy record's single turn pair is `<image>` -> caption; the trainer puts the context where `<image>` is. A
    QA record's first question already holds the caption (`<caption>\\n<question>`), as a stage-2 record holds
    `<image>\\n<question>`."""
    item = TEXT_STREAM_OFFSET + index
    scene = sample_scene(stream_rng(seed, "train", item, SCENE_PURPOSE), scale)
    rng = stream_rng(seed, "train", item, QUESTION_PURPOSE)
    described = caption(scene)
    if rng.random() < copy_fraction:
        conversations = [{"from": "human", "value": IMAGE_TOKEN}, {"from": "gpt", "value": described}]
        return {"id": f"text_{index}", "kind": "copy", "context": described, "conversations": conversations}
    record = qa_record(f"text_{index}", "", scene, rng, stats, scale.questions_per_image, direct_fraction)
    first = record["conversations"][0]
    first["value"] = first["value"].replace(IMAGE_TOKEN, described)
    return {"id": record["id"], "kind": "qa", "context": described, "conversations": record["conversations"]}


DRILL_PURPOSE = 2
"""The random stream of a drill's question (scenes are shared with the text record of the same index)."""
CHOICE_TASKS = tuple(task for task in TASKS if TASK_META[task][0] == "multiple_choice")


def drill_record(seed: int, scale: WorldScale, index: int, stats: ObjectStats) -> dict:
    """Option drill `index`: `{"id", "kind": "drill", "conversations"}`, one multiple-choice question of a random
    task in its benchmark format, led by "It is <the right option's text>." and answered with its letter."""
    item = TEXT_STREAM_OFFSET + index
    scene = sample_scene(stream_rng(seed, "train", item, SCENE_PURPOSE), scale)
    rng = stream_rng(seed, "train", item, DRILL_PURPOSE)
    question, attempts = None, 0
    while question is None:
        if attempts and attempts % 20 == 0:  # e.g. two red squares and nothing else: no option question fits
            scene = sample_scene(rng, scale)
        question, attempts = QUESTION_MAKERS[pick(rng, CHOICE_TASKS)](scene, rng, stats), attempts + 1
    stated = question.options[option_letters(len(question.options)).index(question.answer)]
    prompt = f"It is {stated}.\n{format_question(question.question, question.options)}"
    return {"id": f"drill_{index}", "kind": "drill",
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": question.answer}]}


SCENE_DRILL_PURPOSE = 3
"""The random stream of a scene drill (its own scene and question)."""
NAMING_TASKS = ("attributes", "position", "relation", "localize")
"""The tasks whose questions name the objects they ask about ("the red circle")."""


def scene_drill_record(seed: int, scale: WorldScale, index: int, stats: ObjectStats) -> dict:
    """Scene drill `index`: `{"id", "kind": "scene_drill", "conversations"}`, one question of a random task in
    NAMING_TASKS, in its benchmark format, after the caption of its scene cut down to the objects the question names
    as "the <colour> <shape>" (and no text). Questions that name no object so (an attribute question about a colour
    or a shape) are drawn again."""
    rng = stream_rng(seed, "train", TEXT_STREAM_OFFSET + index, SCENE_DRILL_PURPOSE)
    while True:
        scene = sample_scene(rng, scale)
        question = QUESTION_MAKERS[pick(rng, NAMING_TASKS)](scene, rng, stats)
        named = [o for o in scene.unique_objects() if question and f"the {o.name}" in question.question]
        if named:
            break
    shown = dataclasses.replace(scene, objects=tuple(named), text=None)
    prompt = f"{caption(shown)}\n{format_question(question.question, question.options)}"
    return {"id": f"scene_drill_{index}", "kind": "scene_drill",
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": question.answer}]}


def heldout_questions(seed: int, scale: WorldScale, stats: ObjectStats) -> list[dict]:
    """Every task's questions as its benchmark draws them (on `seed`, which should not be a world's own), each as
    `{"task", "prompt", "answer"}` with the caption where the image goes."""
    questions = []
    for task in TASKS:
        rows, images = bench_task(task, seed, scale, stats)
        scenes = dict(images)
        for row in rows:
            prompt = format_question(row["question"], row["options"])
            questions.append({"task": task, "prompt": f"{caption(scenes[row['image']])}\n{prompt}",
                              "answer": row["answer"]})
    return questions
