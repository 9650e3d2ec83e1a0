"""A tokenizer for the offline world: byte-level BPE trained on the world's own texts (HF `tokenizers`).

Byte-level BPE decodes exactly what it encoded (spaces, punctuation, "12" stays "12"), never needs an unknown
token, and with a vocabulary larger than the world's word count every world word ends up a single token. It is
saved with `save_pretrained` and loads with `AutoTokenizer`, as a real checkpoint's tokenizer would.
"""

from __future__ import annotations

from collections.abc import Iterable

from raylayers.prompts import IMAGE_TOKEN

USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN, USER_TOKEN, ASSISTANT_TOKEN]

# Stage-2 conversation template (transformers chat template): each user turn, then the assistant's answer closed
# by </s>. Generation starts after the last "<|assistant|>".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|> ' + message['content'] + ' ' }}"
    "{% else %}{{ '<|assistant|> ' + message['content'] + '</s>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def train_world_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """Train byte-level BPE on `texts` and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # Digits one by one (numbers of any length stay learnable), then GPT-2-style byte-level words.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", bos)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=[IMAGE_TOKEN, USER_TOKEN, ASSISTANT_TOKEN], model_max_length=2048)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped
