"""words.py: the closed vocabulary is fixed and holds every word a built world writes."""

from __future__ import annotations

from world_testing import bench_rows, read_json

from raylayers.prompts import split_words
from raylayers.world import vocabulary
from raylayers.world.questions import TASKS


def test_vocabulary_is_sorted_unique_and_fixed():
    words = vocabulary()
    assert words == sorted(set(words)) == vocabulary()
    assert all(word and not any(ch.isspace() for ch in word) and word == word.lower() for word in words)
    assert {"circle", "circles", "center", "middle", "?", "[", "0", "9", "<image>", "'", "s"} <= set(words)


def test_every_word_written_is_in_the_vocabulary(any_world):
    known = set(vocabulary())
    texts = []
    for name in ("stage1", "stage1_val", "stage2", "stage2_val"):
        records = read_json(any_world / f"{name}.json")
        texts += [turn["value"] for record in records for turn in record["conversations"]]
    for task in TASKS:
        for row in bench_rows(any_world, task):
            texts += [row["question"], row["answer"], *row["options"]]
    texts += [scene["text"] for scene in read_json(any_world / "scenes.json").values() if scene["text"]]
    unknown = {word for text in texts for word in split_words(text)} - known
    assert not unknown


def test_every_cell_name_is_its_rows_word_then_its_columns_word():
    from raylayers.world import CELL_NAMES

    for grid, rows in CELL_NAMES.items():
        row_words = [names[0].split()[0] for names in rows]
        column_words = [name.split()[1] for name in rows[0]]
        assert len(set(row_words)) == len(set(column_words)) == grid
        for r, names in enumerate(rows):
            assert list(names) == [f"{row_words[r]} {column_words[c]}" for c in range(grid)]
