"""Training data: LLaVA conversation records (json or Parquet) -> token ids, labels and image references.

Records look like LLaVA's: `{"id", "image" (optional), "conversations": [{"from": "human"|"gpt", "value"}, ...]}`;
Parquet files carry the same columns (`conversations` a list of structs, `image` a path or bytes).

Templates:
- `plain` (LLaVA stage 1): the image tokens, then the first answer, then end-of-sequence; only the answer is
  supervised.
- `chat` (stage 2): the tokenizer's own chat template when it has one (segments found by rendering growing
  prefixes of the conversation, so any prefix-consistent template works), else Vicuna v1 (LLaVA's "v1"). Only the
  assistant's answers and their end tokens are supervised.
The `<image>` placeholder becomes as many image-token ids as the connector emits. Over-long samples are cut after
the image tokens, never through them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from raylayers.errors import UserError
from raylayers.prompts import IMAGE_TOKEN

IGNORE_INDEX = -100
VICUNA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's questions.")


@dataclass
class Record:
    """One validated training record."""

    id: str
    image: str | bytes | None
    conversations: list[dict]


def _read_records(path: Path) -> list[dict]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for unreadable files
            raise UserError(f"cannot read Parquet '{path}': {str(err).splitlines()[0]}") from None
    from raylayers.files import read_user_json

    data = read_user_json(path, "data file")
    if not isinstance(data, list):
        raise UserError(f"'{path}' must hold a list of LLaVA records, found {type(data).__name__}")
    return data


def _validate(raw, index: int, path: Path) -> Record:
    """A record with alternating human/gpt turns, starting with human; names the record id when it is not."""
    record_id = str(raw.get("id", f"#{index}")) if isinstance(raw, dict) else f"#{index}"
    where = f"record {record_id} in '{path}'"
    if not isinstance(raw, dict):
        raise UserError(f"{where} is not an object")
    turns = raw.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        raise UserError(f"{where}: 'conversations' must be a list of at least one human and one gpt turn")
    for position, turn in enumerate(turns):
        expected = "human" if position % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != expected or not isinstance(turn.get("value"), str):
            raise UserError(f"{where}: turn {position} must be {{\"from\": \"{expected}\", \"value\": <text>}}")
    if len(turns) % 2:
        raise UserError(f"{where}: the last turn must be the gpt answer")
    image = raw.get("image")
    if isinstance(image, list):
        raise UserError(f"{where}: 'image' is a list of {len(image)}; one image per record (a path string)")
    if image is not None and not isinstance(image, (str, bytes, bytearray, dict)):
        raise UserError(f"{where}: 'image' must be a path string, got {type(image).__name__} {image!r}")
    if isinstance(image, dict):  # a Parquet HF image cell {"bytes", "path"}
        from raylayers.image_source import image_cell

        image = image_cell(image)
    if image == "":
        raise UserError(f"{where}: 'image' is an empty string")
    placeholders = sum(turn["value"].count(IMAGE_TOKEN) for turn in turns)
    if image is None and placeholders:
        raise UserError(f"{where}: has '{IMAGE_TOKEN}' but no image")
    if image is not None and placeholders > 1:
        raise UserError(f"{where}: has {placeholders} '{IMAGE_TOKEN}' placeholders; one image per record")
    conversations = [dict(turn) for turn in turns]
    if image is not None and placeholders == 0:  # as LLaVA does: the image goes before the first question
        conversations[0]["value"] = f"{IMAGE_TOKEN}\n{conversations[0]['value']}"
    return Record(record_id, image, conversations)


def load_records(path: str | Path, max_records: int | None = None) -> list[Record]:
    """Read and validate every record of a LLaVA json or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file '{path}' does not exist")
    raw = _read_records(path)
    if max_records is not None:
        raw = raw[:max_records]
    records = [_validate(item, index, path) for index, item in enumerate(raw)]
    if not records:
        raise UserError(f"data file '{path}' holds no records")
    return records


def image_path(record: Record, data_file: str | Path, image_folder: str | Path | None) -> str | bytes | None:
    """Where a record's image lives: bytes as they are; a path by `image_source.llava_image_path`'s rule."""
    from raylayers.image_source import llava_image_path

    if record.image is None or isinstance(record.image, (bytes, bytearray)):
        return record.image
    return str(llava_image_path(data_file, record.image, image_folder))


# ================================================================================================ samples
@dataclass
class Sample:
    """One encoded training record."""

    id: str
    input_ids: list[int]
    labels: list[int]
    image: str | bytes | None  # path or bytes; None for text-only records
    image_key: str | None = None  # filled by `ImageFeatures.prepare`: the cache key, or the path


def encode_samples(data_file: str | Path, encoder: ConversationEncoder, max_records: int | None = None,
                   image_folder: str | Path | None = None) -> list[Sample]:
    """Every record of a data file, encoded for a stage (its template, the model's image tokens)."""
    samples = []
    for record in load_records(data_file, max_records):
        input_ids, labels = encoder.encode(record.conversations)
        samples.append(Sample(record.id, input_ids, labels, image_path(record, data_file, image_folder)))
    return samples


def collate(samples: list[Sample], pad_id: int) -> dict:
    """Right-padded (B, S) input ids, attention mask and labels."""
    import torch

    width = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, sample in enumerate(samples):
        length = len(sample.input_ids)
        input_ids[row, :length] = torch.tensor(sample.input_ids)
        labels[row, :length] = torch.tensor(sample.labels)
        mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def longest_first_windows(items: list, length, window: int) -> list:
    """`items` cut into consecutive windows of `window` and each window sorted longest first (`length(item)`), so
    batches cut from consecutive positions pad little; which item lands in which window is left as it was. This is
    LLaVA's length-grouped sampling (`get_length_grouped_indices`: megabatches sorted by length); written here as
    it fits in a few lines and our orders are positions, not a torch Sampler."""
    return [item for start in range(0, len(items), window)
            for item in sorted(items[start:start + window], key=length, reverse=True)]


class SampleOrder:
    """Position in a stage's sample stream -> sample index: a fresh seeded permutation every epoch, so a resumed
    run sees exactly the batches the lost run would have seen. With `lengths` (each sample's token count), each
    window of `window` positions is ordered longest first (`longest_first_windows`)."""

    def __init__(self, size: int, seed: int, lengths: list[int] | None = None, window: int = 1):
        self.size, self.seed, self._permutations = size, seed, {}
        self.lengths, self.window = lengths, window

    @classmethod
    def for_stage(cls, samples: list[Sample], stage_name: str, seed: int, global_batch_size: int,
                  length_group_batches: int) -> SampleOrder:
        """A training stage's order: seeded by the run's seed and the stage, length-grouped in windows of
        `length_group_batches` global batches (0: plain shuffling)."""
        return cls(len(samples), seed * 2 + (0 if stage_name == "stage1" else 1),
                   [len(sample.input_ids) for sample in samples], global_batch_size * length_group_batches)

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch not in self._permutations:
            permutation = list(range(self.size))
            random.Random(self.seed * 100_003 + epoch).shuffle(permutation)
            if self.lengths is not None and self.window > 1:
                permutation = longest_first_windows(permutation, self.lengths.__getitem__, self.window)
            self._permutations[epoch] = permutation
        return self._permutations[epoch][offset]


class ConversationEncoder:
    """Turns a record's conversation into (input_ids, labels) for a tokenizer and a number of image tokens."""

    def __init__(self, tokenizer, image_token_id: int, num_image_tokens: int, max_length: int,
                 template: str = "chat"):
        if max_length < num_image_tokens + 8:
            raise UserError(f"data.max_length {max_length} leaves no room for text after the "
                            f"{num_image_tokens} image tokens; raise it to at least {num_image_tokens + 8}")
        self.tokenizer = tokenizer
        self.image_token_id = image_token_id
        self.num_image_tokens = num_image_tokens
        self.max_length = max_length
        self.template = template
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.eos_text = tokenizer.eos_token or ""
        self.truncated = 0

    # ---------------------------------------------------------------------------------------------- text pieces
    def _ids(self, text: str) -> list[int]:
        """Token ids of a text piece, with each `<image>` expanded to the image tokens."""
        ids: list[int] = []
        for index, piece in enumerate(text.split(IMAGE_TOKEN)):
            if index:
                ids.extend([self.image_token_id] * self.num_image_tokens)
            if piece:
                ids.extend(self.tokenizer(piece, add_special_tokens=False)["input_ids"])
        return ids

    def _segments(self, conversations: list[dict]) -> list[tuple[str, bool]]:
        """(text, supervised) pieces of the templated conversation."""
        if self.template == "plain":
            return [(IMAGE_TOKEN if any(IMAGE_TOKEN in t["value"] for t in conversations) else "",
                     False), (conversations[1]["value"] + self.eos_text, True)]
        messages = [{"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
                    for turn in conversations]
        if getattr(self.tokenizer, "chat_template", None):
            return self._chat_template_segments(messages)
        segments, text = [], VICUNA_SYSTEM + " "
        for message in messages:
            if message["role"] == "user":
                text += f"USER: {message['content']} ASSISTANT:"
            else:
                segments.append((text, False))
                segments.append((" " + message["content"] + self.eos_text, True))
                text = ""
        return segments

    def _chat_template_segments(self, messages: list[dict]) -> list[tuple[str, bool]]:
        render = self.tokenizer.apply_chat_template
        segments, done = [], ""
        for index, message in enumerate(messages):
            if message["role"] == "assistant":
                prompt = render(messages[:index], tokenize=False, add_generation_prompt=True)
                full = render(messages[: index + 1], tokenize=False)
                if not (prompt.startswith(done) and full.startswith(prompt)):
                    raise UserError("the tokenizer's chat template does not render conversations prefix by prefix; "
                                    "set the stage's template to plain or use a tokenizer without a chat template")
                segments.append((prompt[len(done):], False))
                segments.append((full[len(prompt):], True))
                done = full
        return segments

    # ---------------------------------------------------------------------------------------------- encoding
    def encode(self, conversations: list[dict]) -> tuple[list[int], list[int]]:
        input_ids, labels = list(self.bos), [IGNORE_INDEX] * len(self.bos)
        for index, (text, supervised) in enumerate(self._segments(conversations)):
            if index == 0:
                text = self._without_bos(text)
            ids = self._ids(text)
            input_ids.extend(ids)
            labels.extend(ids if supervised else [IGNORE_INDEX] * len(ids))
        if len(input_ids) > self.max_length:
            self.truncated += 1
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        return input_ids, labels

    def prompt(self, question: str, has_image: bool = True) -> list[int]:
        """Token ids of a single-turn prompt ready for generation (evaluation and the validation probe)."""
        if has_image and IMAGE_TOKEN not in question:
            question = f"{IMAGE_TOKEN}\n{question}"
        if self.template == "plain":
            return list(self.bos) + self._ids(IMAGE_TOKEN if has_image else "")
        messages = [{"role": "user", "content": question}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = VICUNA_SYSTEM + f" USER: {question} ASSISTANT:"
        return list(self.bos) + self._ids(self._without_bos(text))

    def answer_ids(self, question: str, answer: str, has_image: bool = True, with_end: bool = True) -> list[int]:
        """Token ids of `answer` as the template places it after `prompt(question)` (the supervised segment of
        training: a chat template may put a space or newline before it), with or without the end-of-turn text."""
        if has_image and IMAGE_TOKEN not in question:
            question = f"{IMAGE_TOKEN}\n{question}"
        marker = "\u2063"  # a character no answer contains: the answer's end in the rendered text
        conversation = [{"from": "human", "value": question}, {"from": "gpt", "value": answer + marker}]
        text = self._segments(conversation)[-1][0]
        head, _, tail = text.partition(marker)
        return self._ids(head + (tail if with_end else ""))

    def _without_bos(self, text: str) -> str:
        """Templates that write their own BOS text: we add the id once ourselves."""
        bos = self.tokenizer.bos_token
        return text[len(bos):] if bos and self.bos and text.startswith(bos) else text
