import json

from raylayers.data import ConversationEncoder, encode_samples
from raylayers.model import load_tokenizer
from raylayers.sample_cache import cache_key, encode_samples_cached


def records(folder, count=6, text="a red circle"):
    data = [{"id": f"r{i}", "image": f"img{i}.png",
             "conversations": [{"from": "human", "value": "<image>\nWhat is there?"},
                               {"from": "gpt", "value": f"{text} " * (i + 1)}]} for i in range(count)]
    path = folder / "data.json"
    path.write_text(json.dumps(data))
    return path


def encoder(tiny_stack, max_length=40, template="chat"):
    tokenizer = load_tokenizer(str(tiny_stack / "encoder" / "lm"))
    return ConversationEncoder(tokenizer, tokenizer.convert_tokens_to_ids("<image>"), 16, max_length, template)


def test_a_second_encoding_comes_from_the_cache_and_equals_a_fresh_one(tiny_stack, tmp_path):
    data, cache = records(tmp_path), tmp_path / "cache"
    fresh_encoder = encoder(tiny_stack)
    fresh = encode_samples(data, fresh_encoder)
    first, second = encoder(tiny_stack), encoder(tiny_stack)
    assert encode_samples_cached(data, first, None, None, cache) == fresh
    written = list((cache / "samples").glob("*.parquet"))
    assert len(written) == 1
    again = encode_samples_cached(data, second, None, None, cache)
    assert again == fresh and [s.image for s in again] == [str(tmp_path / f"img{i}.png") for i in range(6)]
    assert first.truncated == second.truncated == fresh_encoder.truncated > 0  # the cut samples still counted
    assert list((cache / "samples").glob("*.parquet")) == written  # read, not written again


def test_the_key_changes_with_the_file_template_length_and_record_limit(tiny_stack, tmp_path):
    data = records(tmp_path)
    base = cache_key(data, encoder(tiny_stack), None, None)
    assert cache_key(data, encoder(tiny_stack, template="plain"), None, None) != base
    assert cache_key(data, encoder(tiny_stack, max_length=64), None, None) != base
    assert cache_key(data, encoder(tiny_stack), 3, None) != base
    assert cache_key(data, encoder(tiny_stack), None, tmp_path) != base
    records(tmp_path, text="a blue square")  # same path, other content
    assert cache_key(data, encoder(tiny_stack), None, None) != base


def test_a_damaged_cache_file_is_encoded_again_and_replaced(tiny_stack, tmp_path):
    data, cache = records(tmp_path), tmp_path / "cache"
    fresh = encode_samples_cached(data, encoder(tiny_stack), None, None, cache)
    (path,) = (cache / "samples").glob("*.parquet")
    path.write_bytes(path.read_bytes()[:50])
    assert encode_samples_cached(data, encoder(tiny_stack), None, None, cache) == fresh
    assert len(path.read_bytes()) > 50


def test_without_a_cache_folder_nothing_is_written(tiny_stack, tmp_path):
    data = records(tmp_path)
    assert encode_samples_cached(data, encoder(tiny_stack), None, None, None) == encode_samples(data,
                                                                                               encoder(tiny_stack))
    assert not (tmp_path / "samples").exists()
