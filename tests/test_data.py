import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylayers.data import IGNORE_INDEX, ConversationEncoder, load_records
from raylayers.errors import UserError
from raylayers.tokenizer import IMAGE_TOKEN, train_world_tokenizer

TEXTS = ["What colour is the square? red", "There are 2 objects: a large red circle.", "How many? 3"] * 10
CONVERSATION = [{"from": "human", "value": "<image>\nHow many circles are there?"}, {"from": "gpt", "value": "3"},
                {"from": "human", "value": "What colour is the square?"}, {"from": "gpt", "value": "red"}]


@pytest.fixture(scope="module")
def tokenizer():
    return train_world_tokenizer(TEXTS)


def _image_id(tokenizer):
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def _supervised_text(tokenizer, ids, labels):
    return tokenizer.decode([i for i, label in zip(ids, labels) if label != IGNORE_INDEX])


def test_chat_template_supervises_only_answers(tokenizer):
    encoder = ConversationEncoder(tokenizer, _image_id(tokenizer), 5, 256, template="chat")
    ids, labels = encoder.encode(CONVERSATION)
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(_image_id(tokenizer)) == 5  # <image> expanded to the connector's token count
    assert _supervised_text(tokenizer, ids, labels) == " 3</s> red</s>"
    assert all(label == IGNORE_INDEX for i, label in zip(ids, labels) if i == _image_id(tokenizer))


def test_plain_template_is_image_then_caption(tokenizer):
    encoder = ConversationEncoder(tokenizer, _image_id(tokenizer), 4, 64, template="plain")
    ids, labels = encoder.encode(CONVERSATION[:2])
    assert ids[1:5] == [_image_id(tokenizer)] * 4
    assert _supervised_text(tokenizer, ids, labels) == "3</s>"


def test_vicuna_fallback_without_chat_template(tokenizer):
    plain_tokenizer = train_world_tokenizer(TEXTS)
    plain_tokenizer.chat_template = None
    encoder = ConversationEncoder(plain_tokenizer, _image_id(plain_tokenizer), 2, 256, template="chat")
    ids, labels = encoder.encode(CONVERSATION)
    assert "USER:" in plain_tokenizer.decode(ids) and "ASSISTANT:" in plain_tokenizer.decode(ids)
    assert _supervised_text(plain_tokenizer, ids, labels) == " 3</s> red</s>"


def test_truncation_never_cuts_image_tokens(tokenizer):
    with pytest.raises(UserError, match="no room for text after the 60 image tokens"):
        ConversationEncoder(tokenizer, _image_id(tokenizer), 60, 64)
    encoder = ConversationEncoder(tokenizer, _image_id(tokenizer), 10, 20, template="chat")
    ids, labels = encoder.encode(CONVERSATION)
    assert len(ids) == 20 and ids.count(_image_id(tokenizer)) == 10 and encoder.truncated == 1


def test_records_from_json_and_parquet_are_the_same(tmp_path):
    records = [{"id": "a", "image": "x.png", "conversations": CONVERSATION},
               {"id": "b", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}]
    (tmp_path / "d.json").write_text(json.dumps(records))
    table = pa.Table.from_pylist(records)
    pq.write_table(table, tmp_path / "d.parquet")
    from_json, from_parquet = load_records(tmp_path / "d.json"), load_records(tmp_path / "d.parquet")
    assert [(r.id, r.image, r.conversations) for r in from_json] == \
        [(r.id, r.image, r.conversations) for r in from_parquet]


@pytest.mark.parametrize("record, message", [
    ({"id": "r7", "image": "x.png", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
     "record r7 .* turn 0 must be"),
    ({"id": "r8", "conversations": [{"from": "human", "value": "<image>\\nq"}, {"from": "gpt", "value": "a"}]},
     "record r8 .* no image"),
    ({"id": "r9", "image": "x.png", "conversations": [{"from": "human", "value": "q"}]}, "record r9"),
    ({"id": "r10", "image": "x.png", "conversations": "nope"}, "record r10"),
])
def test_malformed_records_name_their_id(tmp_path, record, message):
    (tmp_path / "d.json").write_text(json.dumps([record]).replace("\\\\n", "\\n"))
    with pytest.raises(UserError, match=message):
        load_records(tmp_path / "d.json")


def test_image_placeholder_is_added_when_missing(tmp_path):
    record = {"id": "c", "image": "x.png", "conversations": [{"from": "human", "value": "q"},
                                                             {"from": "gpt", "value": "a"}]}
    (tmp_path / "d.json").write_text(json.dumps([record]))
    assert load_records(tmp_path / "d.json")[0].conversations[0]["value"] == "<image>\nq"


def test_answer_ids_are_the_tokens_training_supervises(tiny_stack):
    from raylayers.data import ConversationEncoder
    from raylayers.model import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_stack / "encoder" / "lm"))
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    for template in ("chat", "plain"):
        encoder = ConversationEncoder(tokenizer, image_id, 4, 256, template)
        question = "<image>\nIs there a red circle in the image?"
        ids, labels = encoder.encode([{"from": "human", "value": question}, {"from": "gpt", "value": "yes"}])
        supervised = [i for i, label in zip(ids, labels) if label != -100]
        assert encoder.answer_ids(question, "yes") == supervised
        assert encoder.prompt(question) + encoder.answer_ids(question, "yes") == ids


def test_sample_order_is_a_seeded_permutation_per_epoch():
    from raylayers.data import SampleOrder

    order = SampleOrder(5, seed=3)
    first, second = [order[i] for i in range(5)], [order[i] for i in range(5, 10)]
    assert sorted(first) == sorted(second) == list(range(5)) and first != second
    assert [SampleOrder(5, seed=3)[i] for i in range(10)] == first + second  # a resumed run sees the same batches


def test_a_length_grouped_order_sorts_each_window_of_the_same_shuffle_longest_first():
    from raylayers.data import Sample, SampleOrder, longest_first_windows

    lengths = [(7 * i) % 23 for i in range(20)]
    plain, grouped = SampleOrder(20, seed=3), SampleOrder(20, seed=3, lengths=lengths, window=8)
    for epoch in (0, 1):
        shuffled = [plain[epoch * 20 + i] for i in range(20)]
        ordered = [grouped[epoch * 20 + i] for i in range(20)]
        for start in (0, 8, 16):  # the same samples in each window (the last one short), longest first
            window = ordered[start:start + 8]
            assert sorted(window) == sorted(shuffled[start:start + 8])
            assert [lengths[i] for i in window] == sorted((lengths[i] for i in window), reverse=True)
    assert [SampleOrder(20, 3, lengths, 8)[i] for i in range(40)] == [grouped[i] for i in range(40)]
    assert [SampleOrder(20, 3, lengths, 0)[i] for i in range(40)] == [plain[i] for i in range(40)]  # 0: plain
    samples = [Sample(str(i), [1] * length, [1] * length, None) for i, length in enumerate(lengths)]
    staged = SampleOrder.for_stage(samples, "stage2", 1, global_batch_size=4, length_group_batches=2)
    assert [staged[i] for i in range(40)] == [grouped[i] for i in range(40)]  # seed 1 x 2 + stage 2; 4 x 2
    assert longest_first_windows(["bb", "a", "ccc", "dd"], len, 2) == ["bb", "a", "ccc", "dd"]
    assert longest_first_windows(["a", "bb", "dd", "ccc"], len, 2) == ["bb", "a", "ccc", "dd"]


def test_collate_pads_right_and_masks_labels():
    from raylayers.data import IGNORE_INDEX, Sample, collate

    batch = collate([Sample("a", [1, 2, 3], [IGNORE_INDEX, 2, 3], None), Sample("b", [4], [4], None)], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
