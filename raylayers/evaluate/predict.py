"""Answers from a checkpoint: batched greedy decoding with the KV cache, or option log-likelihood.

`Predictor` loads a native raylayers checkpoint (the `model/` folder `raylayers train` writes, or a run folder
holding one) and answers benchmark rows. Prompts are built exactly as in training (`prompts.format_question`, the
checkpoint's stage-2 template). Two modes:
- `greedy`: left-padded batches, `generate` with the KV cache, answer length by answer type;
- `likelihood`: multiple-choice and yes/no questions are answered by the option (letter, or yes/no) whose tokens
  are most likely after the prompt, which is robust for small models that have not learned the answer format;
  short-answer questions fall back to greedy.
A row whose image is missing or corrupt gets an empty prediction and its reason in `error`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from raylayers.config import MODES
from raylayers.errors import UserError
from raylayers.features import ImageFeatures

MAX_NEW_TOKENS = {"multiple_choice": 4, "yes_no": 4, "short": 12}


def find_checkpoint(path: str | Path) -> Path:
    """The model folder of a checkpoint path: the folder itself, or a run folder's `model/`."""
    from raylayers.model import MODEL_FILE

    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    if (path / "config.json").is_file() and "llava" in (path / "config.json").read_text(errors="replace"):
        raise UserError(f"'{path}' is an exported HF LLaVA folder; evaluate the native checkpoint it came from, "
                        "or run lmms-eval's llava_hf model on it (README: Evaluation)")
    raise UserError(f"'{path}' is not a raylayers checkpoint (no model/{MODEL_FILE}); "
                    "give the folder `raylayers train --out` wrote")


def _template_of(model_folder: Path) -> tuple[str, int]:
    """The last stage's template and the max_length of the run that wrote the checkpoint (its config.yaml); without
    one, the defaults of a TrainConfig's stage 2 and data."""
    from raylayers.config import DataConfig, TrainConfig, load_config

    config_file = model_folder.parent / "config.yaml"
    if config_file.is_file():
        config = load_config(TrainConfig, config_file)
        return config.stage(config.stages[-1]).template, config.data.max_length
    stage2 = TrainConfig.model_fields["stage2"].get_default(call_default_factory=True)
    return stage2.template, DataConfig.model_fields["max_length"].default


class Predictor:
    """A loaded checkpoint that answers benchmark rows."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 16, loaded=None):
        """`loaded`: the (model, tokenizer) the checkpoint was saved from, still in memory (a training run that
        evaluates its own model): used instead of loading them again from `checkpoint`."""
        from raylayers.data import ConversationEncoder
        from raylayers.model import LlavaLayers

        folder = find_checkpoint(checkpoint)
        self.model, self.tokenizer = loaded if loaded is not None else LlavaLayers.load(folder)
        self.device = torch.device(device)
        self.model.tower.to(self.device)
        self.model.to(self.device).eval()
        template, max_length = _template_of(folder)
        self.encoder = ConversationEncoder(self.tokenizer, self.model.image_token_id, self.model.num_image_tokens,
                                           max(max_length, self.model.num_image_tokens + 8), template)
        self.batch_size = batch_size
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.eos_id = self.tokenizer.eos_token_id
        self.checkpoint = str(folder)
        self.features = ImageFeatures(self.model, device=self.device)  # no cache: each image is answered once

    # ---------------------------------------------------------------------------------------------- inputs
    @staticmethod
    def _question(row: dict) -> str:
        from raylayers.prompts import format_question

        return format_question(row["question"], row.get("options") or [])

    def _prompt_ids(self, row: dict) -> list[int]:
        return self.encoder.prompt(self._question(row))

    def _left_padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, width - len(sequence):] = torch.tensor(sequence)
            mask[row, width - len(sequence):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---------------------------------------------------------------------------------------------- answering
    def greedy(self, prompts: list[list[int]], features, max_new_tokens: int) -> list[str]:
        ids, mask = self._left_padded(prompts)
        new = self.model.generate(ids, attention_mask=mask, features=features, max_new_tokens=max_new_tokens,
                                  pad_token_id=self.pad_id, eos_token_id=self.eos_id)
        texts = []
        for row in new.tolist():
            if self.eos_id is not None and self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            texts.append(self.tokenizer.decode([t for t in row if t != self.pad_id], skip_special_tokens=True).strip())
        return texts

    def _candidates(self, row: dict, answer_type: str) -> list[str]:
        from raylayers.prompts import option_letters

        if row.get("options"):
            return option_letters(len(row["options"]))
        if answer_type == "yes_no":
            return ["yes", "no"]
        return []

    def _likelihood(self, prompts: list[list[int]], questions: list[str], features,
                    candidates: list[list[str]]) -> list[str]:
        """The candidate with the highest summed log-probability of its tokens (as the template places an answer,
        end-of-turn included) after each prompt."""
        sequences, owners, spans = [], [], []
        for index, (prompt, question, options) in enumerate(zip(prompts, questions, candidates)):
            for option in options:
                tokens = self.encoder.answer_ids(question, option)
                sequences.append(prompt + tokens)
                owners.append(index)
                spans.append(len(tokens))
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(sequences):  # right padding: positions match training
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        repeated = None
        if features is not None:
            index = torch.tensor(owners, device=self.device)
            repeated = {layer: value.index_select(0, index) for layer, value in features.items()}
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                features=repeated).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        best: dict[int, tuple[float, str]] = {}
        position = 0
        for index, options in enumerate(candidates):
            for option in options:
                length, span = len(sequences[position]), spans[position]
                targets = ids[position, length - span:length].to(self.device)
                score = float(logprobs[position, length - span - 1:length - 1].gather(-1, targets[:, None]).sum())
                if index not in best or score > best[index][0]:
                    best[index] = (score, option)
                position += 1
        return [best[index][1] for index in range(len(candidates))]

    def predict(self, rows: list[dict], image_sources: list, answer_type: str, mode: str = "greedy",
                progress=None) -> list[dict]:
        """One `{"question_id", "prediction", "error"}` per row, in row order."""
        if mode not in MODES:
            raise UserError(f"unknown evaluation mode '{mode}' (valid: {', '.join(MODES)})")
        results = []
        for start in range(0, len(rows), self.batch_size):
            batch, sources = rows[start:start + self.batch_size], image_sources[start:start + self.batch_size]
            features, errors = self.features.of_sources(sources)
            usable = [i for i, error in enumerate(errors) if error is None]
            answers = [""] * len(batch)
            if usable:
                prompts = [self._prompt_ids(batch[i]) for i in usable]
                candidates = [self._candidates(batch[i], answer_type) for i in usable]
                if mode == "likelihood" and all(candidates):
                    questions = [self._question(batch[i]) for i in usable]
                    texts = self._likelihood(prompts, questions, features, candidates)
                else:
                    texts = self.greedy(prompts, features, MAX_NEW_TOKENS.get(answer_type, 12))
                for i, text in zip(usable, texts):
                    answers[i] = text
            for row, answer, error in zip(batch, answers, errors):
                results.append({"question_id": row["question_id"], "prediction": answer, "error": error})
            if progress is not None:
                progress(len(batch))
        return results


def read_predictions(path: str | Path) -> list[dict]:
    """Predictions JSONL: one {"question_id", "prediction"} per line; a bad line is an error naming it."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--predictions '{path}': no such file")
    from raylayers.files import read_user_text

    records = []
    for number, line in enumerate(read_user_text(path, "--predictions").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or "question_id" not in record or "prediction" not in record:
            raise UserError(f"{path}:{number}: each line needs 'question_id' and 'prediction'")
        record["question_id"] = str(record["question_id"])
        record["prediction"] = "" if record["prediction"] is None else str(record["prediction"])
        records.append(record)
    if not records:
        raise UserError(f"{path}: no predictions")
    return records
