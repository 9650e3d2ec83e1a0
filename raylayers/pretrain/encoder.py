"""`raylayers pretrain-encoder`: a small CLIP trained contrastively on the world, saved like a real checkpoint.

Output folder (loads exactly as `openai/clip-vit-large-patch14-336` would):
    config.json, model.safetensors      transformers `CLIPModel` (`VisionTower` loads its vision part)
    preprocessor_config.json            the CLIP image processor
    tokenizer.json, tokenizer_config.json, ...   byte-level BPE trained on the world's texts
    lm/                                 a small Llama-architecture LM config + the same tokenizer, for training
    pretrain.json                       settings, wall time, loss curve, held-out retrieval accuracy vs chance
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from raylayers.config import PretrainConfig, pretrain_config
from raylayers.errors import UserError
from raylayers.prompts import IMAGE_TOKEN
from raylayers.train.schedule import cosine_decay, linear_warmup


def _read_caption_records(path: Path) -> list[tuple[str, str]]:
    """(image path, caption) pairs from a stage-1 style LLaVA json; a malformed record is an error naming it."""
    from raylayers.files import read_user_json

    records = read_user_json(path, "LLaVA json")
    if not isinstance(records, list):
        raise UserError(f"LLaVA json '{path}' must hold a list of records, found {type(records).__name__}")
    pairs = []
    for index, record in enumerate(records):
        try:
            caption = next(turn["value"] for turn in record["conversations"] if turn["from"] == "gpt")
            if not isinstance(record["image"], str) or not isinstance(caption, str):
                raise TypeError
            pairs.append((str(path.parent / record["image"]), caption))
        except (KeyError, TypeError, StopIteration):
            raise UserError(f"record {record.get('id', f'#{index}') if isinstance(record, dict) else f'#{index}'} "
                            f"in '{path}' has no image path or no gpt caption") from None
    return pairs


def _world_texts(world: Path) -> list[str]:
    """Every text the world's json files hold (tokenizer training corpus)."""
    from raylayers.files import read_user_json

    texts = []
    for name in ("stage1.json", "stage2.json"):
        path = world / name
        if path.exists():
            for index, record in enumerate(read_user_json(path, "LLaVA json")):
                try:
                    texts.extend(turn["value"].replace(IMAGE_TOKEN, "") for turn in record["conversations"])
                except (KeyError, TypeError, AttributeError):
                    raise UserError(f"record #{index} in '{path}' has no list of conversation turns with text "
                                    "values") from None
    from raylayers.world import vocabulary

    texts.append(" ".join(vocabulary()))
    return texts


def _pixel_tensor(processor, pairs: list[tuple[str, str]], progress: bool, desc: str, skipped
                  ) -> tuple[torch.Tensor, list[str]]:
    """Pixel values of the images that open and their captions; the others are skipped into `skipped` (a
    `SkipCounter`) with their reason, as LRS and training do."""
    from tqdm import tqdm

    from raylayers.image_source import ImageRef, open_image

    chunks, captions = [], []
    for start in tqdm(range(0, len(pairs), 256), desc=desc, unit="batch", disable=not progress):
        images = []
        for path, caption in pairs[start:start + 256]:
            image, reason = open_image(ImageRef.of(path, path))
            if image is None:
                skipped.add(path, reason)
                continue
            images.append(image)
            captions.append(caption)
        if images:
            chunks.append(processor(images=images, return_tensors="pt")["pixel_values"])
    if not chunks:
        raise UserError(f"{desc}: none of the {len(pairs)} images can be used ({skipped.summary()})")
    return torch.cat(chunks), captions


def _tokenize(tokenizer, captions: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ending in </s> (CLIP pools the text at its end-of-text token), padded."""
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"][: max_tokens - 1] + [tokenizer.eos_token_id]
           for c in captions]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _embedding(output) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


@torch.no_grad()
def retrieval_accuracy(model, pixels: torch.Tensor, captions: list[str], tokenizer, max_tokens: int) -> dict:
    """Image-to-text top-1 over the distinct held-out captions; a hit is retrieving the image's own caption text."""
    model.eval()
    distinct = sorted(set(captions))
    input_ids, mask = _tokenize(tokenizer, distinct, max_tokens)
    text = _embedding(model.get_text_features(input_ids=input_ids, attention_mask=mask))  # (C, P)
    image = torch.cat([_embedding(model.get_image_features(pixel_values=pixels[start:start + 256]))
                       for start in range(0, len(pixels), 256)])  # (N, P)
    similarity = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    predicted = similarity.argmax(dim=1).tolist()
    caption_index = {caption: i for i, caption in enumerate(distinct)}
    hits = sum(p == caption_index[c] for p, c in zip(predicted, captions))
    return {"top1": hits / len(captions), "chance": 1.0 / len(distinct), "num_images": len(captions),
            "num_distinct_captions": len(distinct)}


def pretrain_encoder(world: str | Path, out: str | Path, config: PretrainConfig | None = None,
                     overrides: dict | None = None, progress: bool = True, log=print) -> dict:
    """Train the world's CLIP, save encoder + processor + tokenizer + LM config; returns the pretrain.json dict.
    Without `config`, the preset of the world's scale with `overrides` (`raylayers.config.pretrain_config`)."""
    from raylayers.encoders import quiet_transformers
    from raylayers.files import read_user_json
    from raylayers.image_source import SkipCounter

    quiet_transformers()
    world, out = Path(world), Path(out)
    meta_path = world / "world.json"
    if not meta_path.is_file():
        raise UserError(f"'{world}' is not a world folder (no world.json); make one with `raylayers world`")
    meta = read_user_json(meta_path, "world file")
    image_size = meta.get("image_size") if isinstance(meta, dict) else None
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise UserError(f"world file '{meta_path}': 'image_size' must be a positive integer, got {image_size!r}")
    config = config or pretrain_config(meta.get("scale"), **(overrides or {}))
    torch.manual_seed(config.seed)
    if image_size % config.patch_size:
        raise UserError(f"world image size {image_size} is not a multiple of patch size {config.patch_size}")
    skipped = SkipCounter()
    data = _load_data(world, image_size, config, progress, skipped)
    if skipped.total:  # on stderr, as `raylayers lrs` reports what it skipped
        print(f"warning: {skipped.summary()}", file=sys.stderr, flush=True)
    model = _clip_model(config, data.tokenizer, image_size)
    log(f"pretraining a {config.vision_layers}-layer CLIP on {len(data.train_captions)} captions "
        f"({image_size}px, patch {config.patch_size}) for {data.total_steps(config)} steps "
        f"(at most {config.max_seconds:.0f}s)")
    run = _train(model, data, config, progress)
    retrieval = retrieval_accuracy(model, data.val_pixels, data.val_captions, data.tokenizer, config.max_text_tokens)
    _save(out, model, data, config)
    losses = run["losses"]
    report = {
        "world": str(world), "scale": meta.get("scale"), "config": config.model_dump(), "steps": run["steps"],
        "epochs_completed": round(run["steps"] / data.steps_per_epoch(config), 2),
        "stopped_by_time_budget": run["out_of_time"], "train_seconds": round(run["seconds"], 1),
        "torch_threads": torch.get_num_threads(), "final_loss": losses[-1] if losses else None,
        "loss_curve": losses[:: max(1, len(losses) // 200)], "retrieval": retrieval,
        "vocab_size": len(data.tokenizer), "skipped_images": dict(skipped.reasons),
    }
    (out / "pretrain.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


@dataclass
class _Data:
    """The world's captions and images, tokenised and preprocessed once."""

    tokenizer: object
    processor: object
    train_captions: list[str]
    val_captions: list[str]
    train_pixels: torch.Tensor  # (N, 3, H, W)
    val_pixels: torch.Tensor
    train_ids: torch.Tensor  # (N, T) caption token ids, padded
    train_mask: torch.Tensor

    def steps_per_epoch(self, config: PretrainConfig) -> int:
        return max(1, len(self.train_captions) // config.batch_size)

    def planned_steps(self, config: PretrainConfig) -> int:
        return self.steps_per_epoch(config) * config.epochs

    def total_steps(self, config: PretrainConfig) -> int:
        planned = self.planned_steps(config)
        return min(planned, config.max_steps) if config.max_steps is not None else planned


def _load_data(world: Path, image_size: int, config: PretrainConfig, progress: bool, skipped) -> _Data:
    from transformers import CLIPImageProcessor

    tokenizer = _train_tokenizer(world)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    train_pixels, train_captions = _pixel_tensor(processor, _read_caption_records(world / "stage1.json"), progress,
                                                 "loading train images", skipped)
    val_pixels, val_captions = _pixel_tensor(processor, _read_caption_records(world / "stage1_val.json"), progress,
                                             "loading val images", skipped)
    train_ids, train_mask = _tokenize(tokenizer, train_captions, config.max_text_tokens)
    return _Data(tokenizer, processor, train_captions, val_captions, train_pixels, val_pixels, train_ids, train_mask)


def _clip_model(config: PretrainConfig, tokenizer, image_size: int):
    from transformers import CLIPConfig, CLIPModel

    return CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=config.text_width,
                         intermediate_size=4 * config.text_width, num_hidden_layers=config.text_layers,
                         num_attention_heads=config.text_heads, max_position_embeddings=config.max_text_tokens,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=config.vision_width, intermediate_size=4 * config.vision_width,
                           num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
                           image_size=image_size, patch_size=config.patch_size),
        projection_dim=config.projection_dim))


def _train(model, data: _Data, config: PretrainConfig, progress: bool) -> dict:
    """The contrastive loop: shuffled batches per epoch, until the step budget or the time budget runs out."""
    from tqdm import tqdm

    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch, total_steps = data.steps_per_epoch(config), data.total_steps(config)
    learning_rate = lr_schedule(config, data.planned_steps(config), total_steps)
    losses, step, out_of_time = [], 0, False
    started = time.perf_counter()
    with tqdm(total=total_steps, desc="pretrain-encoder", unit="step", disable=not progress) as bar:
        for epoch in range(config.epochs):
            model.train()
            order = list(range(len(data.train_captions)))
            rng.shuffle(order)
            for start in range(0, steps_per_epoch * config.batch_size, config.batch_size):
                index = torch.tensor(order[start:start + config.batch_size])
                mask = data.train_mask[index]
                width = int(mask.sum(1).max())
                output = model(input_ids=data.train_ids[index, :width], attention_mask=mask[:, :width],
                               pixel_values=data.train_pixels[index], return_loss=True)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, time.perf_counter() - started)
                optimizer.zero_grad(set_to_none=True)
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                losses.append(round(output.loss.item(), 4))
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
                out_of_time = time.perf_counter() - started > config.max_seconds and step < total_steps
                if step >= total_steps or out_of_time:
                    break
            if out_of_time or step >= total_steps:
                break
    return {"steps": step, "losses": losses, "out_of_time": out_of_time, "seconds": time.perf_counter() - started}


def _save(out: Path, model, data: _Data, config: PretrainConfig) -> None:
    """The encoder as a CLIP checkpoint (model, processor, tokenizer), and `lm/`: the small Llama's config and the
    same tokenizer, which training initialises from its seed."""
    from transformers import LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    data.processor.save_pretrained(out)
    data.tokenizer.save_pretrained(out)
    tokenizer = data.tokenizer
    lm_config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.lm_width,
                            intermediate_size=int(2.75 * config.lm_width), num_hidden_layers=config.lm_layers,
                            num_attention_heads=config.lm_heads, num_key_value_heads=config.lm_heads,
                            max_position_embeddings=1024, tie_word_embeddings=True,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    lm_config.save_pretrained(out / "lm")
    tokenizer.save_pretrained(out / "lm")


def _train_tokenizer(world: Path):
    from raylayers.tokenizer import train_world_tokenizer

    return train_world_tokenizer(_world_texts(world))


def lr_schedule(config: PretrainConfig, planned: int, total_steps: int):
    """(step, elapsed seconds) -> learning rate: linear warm-up over 5% of the planned epochs (a step budget keeps
    it, up to a quarter of its steps), then cosine decay over whichever budget runs out first (steps or seconds),
    so a run stopped by the clock still ends at a low learning rate; with `max_steps`, over the steps alone."""
    warmup = max(1, min(planned // 20, total_steps // 4))

    def learning_rate(step: int, elapsed: float) -> float:
        clock = 0.0 if config.max_steps is not None else elapsed / config.max_seconds
        progress = min(1.0, max(step / total_steps, clock))
        return config.learning_rate * linear_warmup(step, warmup) * cosine_decay(progress)

    return learning_rate
