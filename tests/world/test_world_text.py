"""Text records for the world LM: the caption where the image goes, copy records, short-answer variants, option
drills, and held-out questions drawn as the benchmarks draw them."""

from raylayers.prompts import IMAGE_TOKEN, MULTIPLE_CHOICE_INSTRUCTION, SHORT_ANSWER_INSTRUCTION, parse_question
from raylayers.world import SCALES, TASKS, object_stats, sample_scene
from raylayers.world.build import SCENE_PURPOSE, stream_rng
from raylayers.world.text import CHOICE_TASKS, drill_record, heldout_questions, scene_drill_record, text_record
from raylayers.world.words import COLOURS, SHAPES

SCALE = SCALES["tiny"]
STATS = object_stats([sample_scene(stream_rng(0, "train", i, SCENE_PURPOSE), SCALE) for i in range(48)])


def test_text_records_are_deterministic_and_put_the_caption_where_the_image_goes():
    records = [text_record(0, SCALE, index, STATS, copy_fraction=0.3) for index in range(60)]
    assert records == [text_record(0, SCALE, index, STATS, copy_fraction=0.3) for index in range(60)]
    assert records != [text_record(1, SCALE, index, STATS, copy_fraction=0.3) for index in range(60)]
    kinds = {r["kind"] for r in records}
    assert kinds == {"qa", "copy"}
    for record in records:
        first, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
        if record["kind"] == "copy":  # the stage-1 layout: the context stands for the image, the caption follows
            assert first == IMAGE_TOKEN and answer == record["context"]
        else:
            assert IMAGE_TOKEN not in first and first.startswith(record["context"] + "\n")
            assert len(record["conversations"]) == 2 * SCALE.questions_per_image


MC_STARTS = ("What colour", "What shape", "What size", "Where is", "Which box", "Is the ")


def turns_of(record: dict) -> list[tuple[str, str]]:
    """(prompt without the caption, answer) per question."""
    turns = record["conversations"]
    prompts = [turns[0]["value"].split("\n", 1)[1]] + [t["value"] for t in turns[2::2]]
    return list(zip(prompts, [t["value"] for t in turns[1::2]]))


def test_direct_fraction_asks_multiple_choice_questions_short_answer_with_the_option_text():
    short = mc = 0
    for index in range(80):
        for prompt, answer in turns_of(text_record(0, SCALE, index, STATS, copy_fraction=0.0, direct_fraction=0.5)):
            question, _ = parse_question(prompt)
            if prompt.endswith(MULTIPLE_CHOICE_INSTRUCTION):
                mc += 1
                assert len(answer) == 1  # a letter
            elif question.startswith(MC_STARTS):
                short += 1
                assert prompt.endswith(SHORT_ANSWER_INSTRUCTION) and len(answer) > 1  # the option's text
    assert short > 20 and mc > 20
    for index in range(40):  # without it, every multiple-choice task keeps its options
        for prompt, _ in turns_of(text_record(0, SCALE, index, STATS, copy_fraction=0.0)):
            assert prompt.endswith(MULTIPLE_CHOICE_INSTRUCTION) or not parse_question(prompt)[0].startswith(MC_STARTS)


def test_heldout_questions_cover_every_task_with_the_benchmark_formats():
    questions = heldout_questions(5, SCALE, STATS)
    assert {q["task"] for q in questions} == set(TASKS)
    for q in questions:
        caption, prompt = q["prompt"].split("\n", 1)
        assert caption.startswith("There ")
        parse_question(prompt)  # a benchmark-formatted question


def test_an_option_drill_states_the_right_option_and_asks_for_its_letter_with_nothing_else_to_read():
    drills = [drill_record(0, SCALE, index, STATS) for index in range(120)]
    assert drills == [drill_record(0, SCALE, index, STATS) for index in range(120)]
    assert drills != [drill_record(1, SCALE, index, STATS) for index in range(120)]
    starts = set()
    for drill in drills:
        (prompt, letter), = turns_of(drill)  # one question; the first line (the statement) is split off
        statement = drill["conversations"][0]["value"].split("\n", 1)[0]
        question, options = parse_question(prompt)
        right = options["ABCD".index(letter)]
        assert statement == f"It is {right}." and options.count(right) == 1
        assert "There " not in drill["conversations"][0]["value"]  # no caption
        starts.add(next(start for start in MC_STARTS if question.startswith(start)))
    assert len(starts) >= 5 and CHOICE_TASKS == ("attributes", "position", "relation", "localize")


def test_a_scene_drill_asks_about_a_caption_of_only_the_objects_its_question_names():
    drills = [scene_drill_record(0, SCALE, index, STATS) for index in range(120)]
    assert drills == [scene_drill_record(0, SCALE, index, STATS) for index in range(120)]
    assert drills != [scene_drill_record(1, SCALE, index, STATS) for index in range(120)]
    starts = set()
    for drill in drills:
        (prompt, letter), = turns_of(drill)
        described = drill["conversations"][0]["value"].split("\n", 1)[0]
        question, options = parse_question(prompt)
        assert letter in "ABCD"[:len(options)] and "The text reads" not in described
        listed = described.count(", ") + described.count(" and ") + 1  # "There are 2 objects: a .. and a .."
        named = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES if f"the {colour} {shape}" in question]
        assert 1 <= len(named) == listed <= 2 and all(f" {name} in the " in described for name in named)
        if question.startswith("Where is"):  # the one object's cell is the right option
            assert f" in the {options['ABCD'.index(letter)]}." in described
        starts.add(next(start for start in MC_STARTS if question.startswith(start)))
    assert starts == {"What size", "Where is", "Which box", "Is the "}  # colour and shape questions name no "the
    # <colour> <shape>": they are left out
