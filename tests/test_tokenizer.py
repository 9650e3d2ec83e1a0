from raylayers.tokenizer import IMAGE_TOKEN, train_world_tokenizer
from raylayers.world import vocabulary

TEXTS = ["There are 2 objects: a large red circle in the top left. The text reads frog.",
         "How many circles are there?\nAnswer the question using a single word or phrase.",
         "Which box contains the red triangle?\nA. [0.67, 0.33, 1.00, 0.67]"] * 20


def test_decoding_gives_back_the_text_exactly():
    tokenizer = train_world_tokenizer(TEXTS + [" ".join(vocabulary())])
    for text in TEXTS[:3] + ["The text reads 981.", "zebra-crossing 42!"]:  # unseen words still round-trip
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_every_world_word_is_one_token():
    tokenizer = train_world_tokenizer(TEXTS + [" ".join(vocabulary())])
    for word in vocabulary():
        if word.isalpha() and len(word) > 1:
            assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word


def test_special_tokens_and_chat_template():
    tokenizer = train_world_tokenizer(TEXTS)
    ids = tokenizer(f"{IMAGE_TOKEN}\nHow many circles are there?")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[1] == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "2"}],
                                         tokenize=False)
    assert chat == "<|user|> Q? <|assistant|> 2</s>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Q?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")
