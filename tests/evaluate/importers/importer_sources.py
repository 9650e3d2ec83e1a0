"""Tiny look-alikes of each published benchmark's parquet layout, for the importer tests (and any check that
needs a download of each layout): `SOURCES[name](folder)` writes one, `write` any other, `read_rows` reads an import.

Not a conftest.py: tests/ has no packages, so a second conftest.py would take the place of tests/conftest.py for the
test modules that import helpers from it (`from conftest import ...`).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from raylayers.evaluate.importers import LAYOUTS

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (shade, 255 - shade, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def image(shade: int) -> dict:
    return {"bytes": png(shade), "path": f"img{shade}.png"}


def write(path, rows: list[dict], types: dict | None = None) -> None:
    """A parquet file of rows; `types` pins the type of the columns pyarrow cannot infer (image structs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(rows[0])
    types = {"image": IMAGE_TYPE} | (types or {})
    schema = pa.schema([(name, types[name]) if name in types else (name, pa.array([r[name] for r in rows]).type)
                        for name in names])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def read_rows(out) -> list[dict]:
    return pq.read_table(out / "questions.parquet").to_pylist()


# ---------------------------------------------------------------------------------- one tiny source per layout
def src_mme(root):
    rows = [{"question_id": "existence/1.png", "image": image(1),
             "question": "Is there a dog? Please answer yes or no.",
             "answer": "Yes", "category": "existence"},
            {"question_id": "existence/1.png", "image": image(1), "question": "Is there a cat?", "answer": "No",
             "category": "existence"},
            {"question_id": "2.png", "image": image(2), "question": "Is the code printing 3?", "answer": "No",
             "category": "code_reasoning"}]
    write(root / "data" / "test-00000-of-00002.parquet", rows[:2])
    write(root / "data" / "test-00001-of-00002.parquet", rows[2:])


def src_mmbench(root):
    rows = [{"index": 7, "question": "What is shown?", "hint": "A zoo photo.", "A": "cat", "B": "dog", "C": "owl",
             "D": None, "answer": "B", "image": image(3), "category": "image_scene", "L2-category": "coarse",
             "split": "dev"},
            {"index": 1_000_007, "question": "What is shown?", "hint": None, "A": "dog", "B": "owl", "C": "cat",
             "D": None, "answer": "A", "image": image(3), "category": "image_scene", "L2-category": "coarse",
             "split": "dev"}]
    write(root / "en" / "dev-00000-of-00001.parquet", rows)


def src_seed_bench(root):
    rows = [{"question_id": "101", "question": "How many cars?", "choice_a": "1", "choice_b": "2", "choice_c": "3",
             "choice_d": "4", "answer": "C", "image": [image(4)], "data_type": "image", "question_type_id": 5,
             "data_id": "x.jpg"},
            {"question_id": "102", "question": "What happens next?", "choice_a": "a", "choice_b": "b",
             "choice_c": "c", "choice_d": "d", "answer": "A", "image": [image(5), image(6)], "data_type": "video",
             "question_type_id": 10, "data_id": "v.mp4"},
            {"question_id": "103", "question": "Which colour?", "choice_a": "red", "choice_b": "blue",
             "choice_c": "green", "choice_d": "black", "answer": "D", "image": [image(7)], "data_type": "image",
             "question_type_id": 2, "data_id": "y.jpg"}]
    write(root / "test-00000-of-00001.parquet", rows, {"image": pa.list_(IMAGE_TYPE)})


def src_gqa(root):
    questions = [{"id": "q1", "imageId": "n1", "question": "Is the sky blue?", "answer": "yes", "fullAnswer": "Yes."},
                 {"id": "q2", "imageId": "n2", "question": "What is on the table?", "answer": "cup",
                  "fullAnswer": "A cup."},
                 {"id": "q3", "imageId": "n1", "question": "What colour is the car?", "answer": "red",
                  "fullAnswer": "Red."},
                 {"id": "q4", "imageId": "n9", "question": "Where is the dog?", "answer": "park",
                  "fullAnswer": "In the park."}]
    write(root / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet", questions)
    write(root / "testdev_balanced_images" / "testdev-00000-of-00001.parquet",
          [{"id": "n2", "image": image(8)}, {"id": "n1", "image": image(9)}])


def src_textvqa(root):
    rows = [{"question_id": 34602, "question": "what brand is this?", "image": image(10), "image_id": "abc",
             "answers": ["nokia"] * 6 + ["nokia phone"] * 4},
            {"question_id": 34603, "question": "what does the sign say?", "image": image(11), "image_id": "abd",
             "answers": ["stop", "halt", "halt", "stop", "stop", "halt", "s", "x", "y", "z"]}]
    write(root / "data" / "validation-00000-of-00001.parquet", rows)


def src_ocrbench(root):
    rows = [{"question": "what is written?", "answer": ["HELLO", "hello"], "question_type": "Regular Text Recognition",
             "dataset": "IIIT5K", "image": image(12)},
            {"question": "Write the expression in LaTeX.", "answer": ["x^{2}"],
             "question_type": "Handwritten Mathematical Expression Recognition", "dataset": "HME100k",
             "image": image(13)}]
    write(root / "test.parquet", rows)


def src_cv_bench(root):
    rows = [{"idx": 0, "type": "2D", "task": "Count", "image": image(14), "question": "How many chairs?",
             "choices": ["1", "2", "3"], "answer": "(B)", "prompt": "How many chairs? (A) 1 (B) 2 (C) 3",
             "source": "ADE20K"},
            {"idx": 1, "type": "3D", "task": "Depth", "image": image(15), "question": "Which is closer?",
             "choices": ["lamp", "sofa"], "answer": "(A)", "prompt": "Which is closer? (A) lamp (B) sofa",
             "source": "Omni3D"}]
    write(root / "test.parquet", rows)


def src_pope(root):
    rows = [{"question_id": "1", "question": "Is there a dog in the image?", "answer": "yes",
             "image_source": "COCO_1", "image": image(16), "category": "adversarial", "id": 0},
            {"question_id": "1", "question": "Is there a dog in the image?", "answer": "yes",
             "image_source": "COCO_1", "image": image(16), "category": "popular", "id": 1},
            {"question_id": "2", "question": "Is there a kite in the image?", "answer": "No",
             "image_source": "COCO_2", "image": image(17), "category": "random", "id": 2}]
    write(root / "data" / "test-00000-of-00001.parquet", rows)


def src_realworldqa(root):
    rows = [{"question": "Which way is the car facing?\nA. left\nB. right\nC. towards us\nPlease answer directly "
                         "with only the letter of the correct option and nothing else.",
             "answer": "B", "image": image(18)},
            {"question": "How many lanes are there?\nPlease answer directly with a single word or number.",
             "answer": "3", "image": image(19)},
            {"question": "Is the light red or green?\nA. red\nB. green", "answer": "green", "image": image(20)}]
    write(root / "test.parquet", rows)


def src_mmvp(root):
    rows = [{"Index": 1, "Question": "Is the door open or closed?", "Options": "(a) Open (b) Closed",
             "Correct Answer": "(a)", "image": image(21)},
            {"Index": 2, "Question": "Is the door open or closed?", "Options": "(a) Open (b) Closed",
             "Correct Answer": "(b)", "image": image(22)},
            {"Index": 3, "Question": "Which direction is the dog facing?", "Options": "(a) Left (b) Right",
             "Correct Answer": "(b)", "image": image(23)}]
    write(root / "train.parquet", rows)


def src_scienceqa_img(root):
    rows = [{"question": "Which is a mammal?", "choices": ["frog", "whale", "shark"], "answer": 1,
             "hint": "Look at the animals.", "image": image(24), "subject": "natural science", "task": "closed choice",
             "category": "Classify"},
            {"question": "Which is a metal?", "choices": ["iron", "wood"], "answer": 0, "hint": "", "image": None,
             "subject": "natural science", "task": "closed choice", "category": "Classify"},
            {"question": "Which is hotter?", "choices": ["ice", "fire"], "answer": 1, "hint": "",
             "image": image(25), "subject": "physics", "task": "closed choice", "category": "Compare"}]
    write(root / "ScienceQA-IMG" / "test-00000-of-00001.parquet", rows)


SOURCES = {name: globals()[f"src_{name}"] for name in LAYOUTS}
