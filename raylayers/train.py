"""`raylayers train`: the two-stage LLaVA recipe as DeepSpeed inside Ray Train (DESIGN.md, "Distributed execution").

Two levels, as in Ray's Train/Tune examples:
- `train_loop_per_worker(loop_config)` runs on every worker: it builds the model, calls `deepspeed.initialize`
  per stage, trains, probes, checkpoints and reports with `ray.train.report`. Everything it needs travels in
  `loop_config` (the TrainConfig as a dict, the DeepSpeed dicts are built from it), never in module globals.
- `run_training(config, out)` is the driver: it checks the config before any worker starts, then builds a
  `TorchTrainer` (ScalingConfig from the config, FailureConfig for restarts, gloo on CPU / nccl on GPU) and calls
  `fit()`. Inside a Ray Tune trial, `TuneReportCallback` forwards every report to Tune (ASHA reads them).

A stage: stage 1 trains the connector on captions ("plain" template); stage 2 trains connector and LM on
instructions (chat template). Each stage builds a fresh model, loads the trainable weights the previous stage (or
the last checkpoint) left, and hands the trainable parameters to DeepSpeed (ZeRO 0-3 from the shipped JSON).
Checkpoints (every N steps and at each stage end): `state.json`, the trainable weights as safetensors
(`weights/connector.safetensors`, `weights/lm/`), and DeepSpeed's own optimizer/scheduler state (`ds/`), so a
restarted worker group resumes mid-stage with the optimizer intact and loses at most N steps.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from raylayers.config import StageConfig, TrainConfig, dump_yaml
from raylayers.errors import UserError, user_error_in

STATE_FILE = "state.json"
DIVERGED_FILE = "diverged.json"


# ================================================================================================ DeepSpeed config
def deepspeed_config(config: TrainConfig, stage: StageConfig, world_size: int, use_gpu: bool,
                     hidden_size: int) -> dict:
    """The shipped (or user's) ZeRO JSON with every "auto" filled from the TrainConfig."""
    if config.deepspeed.config:
        path = Path(config.deepspeed.config)
        try:
            base = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"cannot read DeepSpeed config '{path}': {err}") from None
    else:
        name = f"zero{config.deepspeed.zero_stage}.json"
        base = json.loads(resources.files("raylayers.configs.deepspeed").joinpath(name).read_text())
    precision = config.precision if config.precision != "auto" else ("bf16" if use_gpu else "fp32")
    accumulation = stage.global_batch_size // (stage.micro_batch_size * world_size)
    filled = {
        "train_batch_size": stage.global_batch_size,
        "train_micro_batch_size_per_gpu": stage.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
    }
    base.update(filled)
    base.setdefault("bf16", {})["enabled"] = precision == "bf16"
    base.setdefault("fp16", {})["enabled"] = precision == "fp16"
    zero = base.setdefault("zero_optimization", {})
    for key, value in (("stage3_prefetch_bucket_size", int(0.9 * hidden_size * hidden_size)),
                       ("stage3_param_persistence_threshold", 10 * hidden_size)):
        if zero.get(key) == "auto":
            zero[key] = value
    leftover = [key for key, value in _walk(base) if value == "auto"]
    if leftover:
        raise UserError(f"DeepSpeed config: cannot fill 'auto' for {', '.join(leftover)}")
    return base


def _walk(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _walk(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# ================================================================================================ samples
@dataclass
class Sample:
    id: str
    input_ids: list[int]
    labels: list[int]
    image: str | bytes | None  # path or bytes; None for text-only records
    image_key: str | None = None  # content hash, filled by the image pre-pass


def encode_samples(data_file: str, config: TrainConfig, encoder, max_records: int | None) -> list[Sample]:
    from raylayers.data import image_path, load_records

    samples = []
    for record in load_records(data_file, max_records):
        input_ids, labels = encoder.encode(record.conversations)
        samples.append(Sample(record.id, input_ids, labels, image_path(record, data_file, config.data.image_folder)))
    return samples


def collate(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (B, S) input ids, attention mask and labels."""
    from raylayers.data import IGNORE_INDEX

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


# ================================================================================================ image features
class ImageFeatures:
    """Selected-layer features for samples: from the frozen-feature cache, or the tower on the fly.

    `prepare` runs once per data file on every rank: it reads each distinct image once (each rank a share),
    drops samples whose image is missing, empty or corrupt (counted by reason, all ranks agree), and with the cache
    on stores the features of images not cached yet.
    """

    def __init__(self, model, config: TrainConfig, rank: int, world_size: int, device: torch.device):
        from raylayers.feature_cache import FeatureCache

        self.model, self.rank, self.world_size, self.device = model, rank, world_size, device
        self.cache = FeatureCache(config.cache.dir, model.tower.fingerprint()) if config.cache.enabled else None
        self.skipped: Counter = Counter()

    def prepare(self, samples: list[Sample], batch_size: int = 32) -> list[Sample]:
        from raylayers.feature_cache import image_key

        sources: dict[str, str | bytes] = {}
        unreadable: dict[str, str] = {}
        for sample in samples:
            if sample.image is None:
                continue
            try:
                sample.image_key = image_key(sample.image)
                sources.setdefault(sample.image_key, sample.image)
            except OSError:
                unreadable[sample.id] = "missing image"
        bad = self._read_images(sources, batch_size)
        kept = []
        for sample in samples:
            reason = unreadable.get(sample.id) or bad.get(sample.image_key)
            if sample.image is not None and reason:
                self.skipped[reason] += 1
            else:
                kept.append(sample)
        return kept

    def _read_images(self, sources: dict[str, str | bytes], batch_size: int) -> dict[str, str]:
        """Decode each image once (this rank's share), caching features when the cache is on; {key: reason}."""
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        keys = list(sources)
        if self.cache is not None:
            keys = [self.cache.missing(self.model.vision_layers, keys)]
            if distributed:  # rank 0's view, before anyone writes: every rank splits the same list
                dist.broadcast_object_list(keys, src=0)
            keys = keys[0]
        bad: dict[str, str] = {}
        mine = keys[self.rank::self.world_size]
        for start in range(0, len(mine), batch_size):
            good_keys, images = [], []
            for key in mine[start:start + batch_size]:
                image, reason = _open(key, sources[key])
                if image is None:
                    bad[key] = reason
                else:
                    good_keys.append(key)
                    images.append(image)
            if images and self.cache is not None:
                pixels = self.model.tower.preprocess(images).to(self.device)
                self.cache.write(self.model.image_features(pixels), good_keys)
        if distributed:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, bad)
            bad = {key: reason for part in gathered for key, reason in part.items()}
        if self.cache is not None:  # the other ranks' shards are written now (all_gather was the barrier)
            for layer in self.model.vision_layers:
                self.cache.index(layer, refresh=True)
        return bad

    def get(self, samples: list[Sample]) -> dict[int, torch.Tensor] | None:
        """{layer: (B_img, N, D)} for the samples that have an image, in order; None when none has."""
        with_image = [s for s in samples if s.image is not None]
        if not with_image:
            return None
        if self.cache is not None:
            features = self.cache.read(self.model.vision_layers, [s.image_key for s in with_image])
            return {layer: value.to(self.device) for layer, value in features.items()}
        images = []
        for sample in with_image:
            image, reason = _open(sample.id, sample.image)
            if image is None:  # vanished after the pre-pass: a black image keeps the batch shape; counted
                self.skipped[f"{reason} during training"] += 1
                from PIL import Image

                image = Image.new("RGB", self.model.tower.image_processor_size()[::-1])
            images.append(image)
        return self.model.image_features(self.model.tower.preprocess(images).to(self.device))


def _open(key: str, source: str | bytes):
    from raylayers.image_source import ImageRef, open_image

    ref = ImageRef(key, data=source) if isinstance(source, (bytes, bytearray)) else ImageRef(key, path=Path(source))
    return open_image(ref)


# ================================================================================================ the worker
def _schedule(stage: StageConfig, total_steps: int):
    warmup = max(1, math.ceil(stage.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _all_reduce_sum(values: list[float]) -> list[float]:
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def probe(engine, samples: list[Sample], features: ImageFeatures, rank: int, world_size: int,
          micro_batch: int, pad_id: int) -> dict:
    """Validation loss and answer accuracy (greedy exact match, computed teacher-forced: an answer counts when
    every one of its tokens is the argmax given the right prefix, which is exactly what greedy decoding would
    produce), and the loss with each image swapped for another one of the batch: `val_image_reliance` (shuffled
    minus right) near 0 means the model answers from priors without looking. Each rank takes a share; sums are
    all-reduced."""
    engine.eval()
    mine = samples[rank::world_size]
    loss_sum, token_count, answers, correct = 0.0, 0, 0, 0
    shuffled_sum, paired_sum, shuffled_tokens = 0.0, 0.0, 0  # the same tokens with swapped / right images
    for start in range(0, len(mine), micro_batch):
        batch = mine[start:start + micro_batch]
        tensors = {k: v.to(engine.device) for k, v in collate(batch, pad_id).items()}
        image_features = features.get(batch)
        output = engine(**tensors, features=image_features)
        logits = output.logits[:, :-1].float()
        labels = tensors["labels"][:, 1:]
        supervised = labels != -100
        batch_loss = float(torch.nn.functional.cross_entropy(logits[supervised], labels[supervised], reduction="sum"))
        loss_sum += batch_loss
        token_count += int(supervised.sum())
        if image_features is not None and next(iter(image_features.values())).shape[0] > 1:
            swapped = {layer: value.roll(1, dims=0) for layer, value in image_features.items()}
            other = engine(**tensors, features=swapped).logits[:, :-1].float()
            shuffled_sum += float(torch.nn.functional.cross_entropy(other[supervised], labels[supervised],
                                                                    reduction="sum"))
            paired_sum += batch_loss
            shuffled_tokens += int(supervised.sum())
        hits = (logits.argmax(-1) == labels) | ~supervised
        for row in range(labels.shape[0]):  # answers are runs of supervised tokens
            flags, positions = supervised[row].tolist(), hits[row].tolist()
            position = 0
            while position < len(flags):
                if flags[position]:
                    end = position
                    while end < len(flags) and flags[end]:
                        end += 1
                    answers += 1
                    correct += all(positions[position:end])
                    position = end
                else:
                    position += 1
    loss_sum, token_count, answers, correct, shuffled_sum, paired_sum, shuffled_tokens = _all_reduce_sum(
        [loss_sum, token_count, answers, correct, shuffled_sum, paired_sum, shuffled_tokens])
    engine.train()
    metrics = {"val_loss": loss_sum / max(token_count, 1), "val_answer_accuracy": correct / max(answers, 1),
               "val_answers": int(answers)}
    if shuffled_tokens:
        metrics["val_loss_shuffled_images"] = shuffled_sum / shuffled_tokens
        metrics["val_image_reliance"] = (shuffled_sum - paired_sum) / shuffled_tokens
    return metrics


@contextlib.contextmanager
def gathered(parameters, zero_stage: int):
    """Full (unpartitioned) parameters inside the block, on every rank, under ZeRO-3; a no-op otherwise."""
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(parameters), modifier_rank=None):
            yield
    else:
        yield


def trainable_weights(model, include_lm: bool) -> dict:
    """CPU copies of the connector's (and optionally the LM's) weights; call inside `gathered` under ZeRO-3."""
    weights = {"connector": {k: v.detach().cpu().clone() for k, v in model.connector.state_dict().items()}}
    if include_lm:
        weights["lm"] = {k: v.detach().cpu().clone() for k, v in model.lm.state_dict().items()}
    return weights


def load_trainable_weights(model, weights: dict) -> None:
    model.connector.load_state_dict(weights["connector"])
    if "lm" in weights:
        model.lm.load_state_dict(weights["lm"])


def read_checkpoint_weights(folder: Path) -> dict:
    """The trainable weights a checkpoint holds (safetensors), as `trainable_weights` returns them."""
    from safetensors.torch import load_file

    weights = {"connector": load_file(folder / "weights" / "connector.safetensors")}
    if (folder / "weights" / "lm.safetensors").is_file():
        weights["lm"] = load_file(folder / "weights" / "lm.safetensors")
    return weights


def ranks_agree(weights: dict) -> bool:
    """Whether every rank ended the stage with bit-identical trainable weights (a data-parallel sanity check)."""
    import hashlib

    import torch.distributed as dist

    digest = hashlib.blake2b(digest_size=16)
    for part in sorted(weights):
        for key in sorted(weights[part]):
            digest.update(key.encode())
            digest.update(weights[part][key].float().numpy().tobytes())
    if not (dist.is_available() and dist.is_initialized()):
        return True
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, digest.hexdigest())
    return len(set(everyone)) == 1


def save_checkpoint(engine, weights: dict, state: dict, metrics: dict, rank: int) -> None:
    """Every rank writes its DeepSpeed shard (collective); rank 0 the safetensors weights and the state; Ray
    merges the workers' folders into one checkpoint."""
    import ray.train
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as folder:
        engine.save_checkpoint(os.path.join(folder, "ds"), tag="ds")
        if rank == 0:
            (Path(folder) / "weights").mkdir()
            for part, tensors in weights.items():  # lm.safetensors: tied weights stored once, by safetensors rules
                save_file(_untied(tensors), Path(folder) / "weights" / f"{part}.safetensors")
            (Path(folder) / STATE_FILE).write_text(json.dumps(state, indent=2))
        name = f"{state['stage']}-step{state['step']:06d}{'-end' if state['stage_done'] else ''}"
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder), checkpoint_dir_name=name)


def _untied(tensors: dict) -> dict:
    """safetensors refuses tensors that share memory (tied embeddings): give each its own copy."""
    return {key: value.contiguous().clone() for key, value in tensors.items()}


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker: every stage of the recipe, resuming from the last checkpoint if there is one."""
    use_gpu = bool(loop_config["config"]["resources"].get("use_gpu", False))
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported in this process
    import deepspeed
    import ray.train

    from raylayers.data import ConversationEncoder
    from raylayers.model import LlavaLayers, lm_has_weights, load_tokenizer

    config = TrainConfig.model_validate(loop_config["config"])
    out = Path(loop_config["out"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = torch.device(f"cuda:{context.get_local_rank()}") if use_gpu else torch.device("cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, int(loop_config.get("threads_per_worker", 1))))
    zero_stage = config.deepspeed.zero_stage

    # Where to start: a restarted worker group finds the last reported checkpoint.
    state = {"stage": None, "step": 0, "stage_done": False, "stages_done": [], "steps_by_stage": {},
             "global_step": 0}
    carried = None  # trainable weights handed from one stage (or checkpoint) to the next
    checkpoint = ray.train.get_checkpoint()
    resume_dir = None
    if checkpoint is not None:
        resume_dir = Path(checkpoint.to_directory())
        state = json.loads((resume_dir / STATE_FILE).read_text())
        carried = read_checkpoint_weights(resume_dir)
        print(f"[raylayers] rank {rank} resumes from {state['stage']} step {state['step']} ({resume_dir})",
              flush=True)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(out / "tensorboard"))
    tokenizer = load_tokenizer(config.model.lm, config.model.trust_remote_code)
    summary = {"stages": {}, "skipped": {}, "truncated": {}, "resumed_from": None}
    if resume_dir is not None:
        summary["resumed_from"] = {"stage": state["stage"], "step": state["step"], "global_step": state["global_step"]}
    started = time.perf_counter()
    lm_trained = any(getattr(config, name).train_lm for name in state["stages_done"])
    for stage_name in config.stages:
        if stage_name in state["stages_done"]:
            continue
        stage = getattr(config, stage_name)
        lm_trained = lm_trained or stage.train_lm
        model = LlavaLayers.build(config.model, tokenizer, seed=config.seed)
        model.tower.to(device)
        model.to(device)
        if carried is not None:
            load_trainable_weights(model, carried)
        model.requires_grad_(False)
        model.connector.requires_grad_(True)
        model.lm.requires_grad_(stage.train_lm)
        if rank == 0:
            (out / "model_metadata.json").write_text(json.dumps(model.metadata(), indent=2))

        prepare_started = time.perf_counter()
        features = ImageFeatures(model, config, rank, world_size, device)
        encoder = ConversationEncoder(tokenizer, model.image_token_id, model.num_image_tokens,
                                      config.data.max_length, stage.template)
        data_file = config.data.stage1 if stage_name == "stage1" else config.data.stage2
        samples = features.prepare(encode_samples(data_file, config, encoder, config.data.max_records))
        summary["truncated"][stage_name] = encoder.truncated
        probe_samples = []
        if config.data.val:
            probe_encoder = ConversationEncoder(tokenizer, model.image_token_id, model.num_image_tokens,
                                                config.data.max_length, config.stage2.template)
            probe_samples = features.prepare(encode_samples(config.data.val, config, probe_encoder,
                                                            config.data.val_records))
        prepare_seconds = time.perf_counter() - prepare_started
        if not samples:
            raise UserError(f"{stage_name}: no usable records in '{data_file}' ({dict(features.skipped)})")

        steps_per_epoch = max(1, len(samples) // stage.global_batch_size)
        total_steps = max(1, math.ceil(stage.epochs * steps_per_epoch))
        if stage.max_steps is not None:
            total_steps = min(total_steps, stage.max_steps)
        accumulation = stage.global_batch_size // (stage.micro_batch_size * world_size)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=stage.learning_rate, weight_decay=stage.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(stage, total_steps))
        ds_config = deepspeed_config(config, stage, world_size, use_gpu,
                                     model.lm.config.get_text_config().hidden_size)
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=ds_config, dist_init_required=False)
        start_step = 0
        if resume_dir is not None and state["stage"] == stage_name and not state["stage_done"]:
            engine.load_checkpoint(str(resume_dir / "ds"), tag="ds")
            start_step = state["step"]
        order = _SampleOrder(len(samples), config.seed * 2 + (0 if stage_name == "stage1" else 1))

        stage_started = time.perf_counter()
        metrics: dict = {}
        engine.train()
        for step in range(start_step, total_steps):
            step_started = time.perf_counter()
            loss_sum, tokens, images = 0.0, 0, 0
            for micro in range(accumulation):
                first = ((step * accumulation + micro) * world_size + rank) * stage.micro_batch_size
                batch = [samples[order[first + i]] for i in range(stage.micro_batch_size)]
                tensors = {k: v.to(device) for k, v in collate(batch, tokenizer.pad_token_id).items()}
                output = engine(**tensors, features=features.get(batch))
                engine.backward(output.loss)
                engine.step()
                loss_sum += float(output.loss.detach())
                tokens += int(tensors["attention_mask"].sum())
                images += len(batch)
            loss_sum, tokens, images = _all_reduce_sum([loss_sum / accumulation, tokens, images])
            seconds = time.perf_counter() - step_started
            state["global_step"] += 1
            metrics = {
                "stage": stage_name, "step": step + 1, "global_step": state["global_step"],
                "loss": loss_sum / world_size, "learning_rate": scheduler.get_last_lr()[0],
                "grad_norm": float(engine.get_global_grad_norm() or 0.0), "samples_per_s": images / seconds,
                "tokens_per_s": tokens / seconds, "epoch": (step + 1) / steps_per_epoch,
            }
            if not math.isfinite(metrics["loss"]):  # every rank sees the same all-reduced loss: all stop here
                if rank == 0:  # no checkpoint of this state: the last good one stays the latest
                    (out / DIVERGED_FILE).write_text(json.dumps(metrics, indent=2))
                if writer is not None:
                    writer.close()
                return
            done = step + 1 == total_steps
            probing = bool(probe_samples) and (done or (
                config.probe_every_steps and (step + 1) % config.probe_every_steps == 0))
            if probing:
                metrics.update(probe(engine, probe_samples, features, rank, world_size, stage.micro_batch_size,
                                     tokenizer.pad_token_id))
            logging = (step + 1) % config.log_every_steps == 0 or done or probing
            if logging and writer is not None:
                for key, value in metrics.items():
                    if isinstance(value, (int, float)):
                        writer.add_scalar(f"{stage_name}/{key}", value, state["global_step"])
                writer.flush()
            if done or (step + 1) % config.checkpoint.every_steps == 0:
                state.update(stage=stage_name, step=step + 1, stage_done=done)
                state["steps_by_stage"][stage_name] = step + 1
                if done:
                    state["stages_done"].append(stage_name)
                with gathered(trainable, zero_stage):
                    carried = trainable_weights(model, include_lm=lm_trained or not lm_has_weights(config.model.lm))
                save_checkpoint(engine, carried, state, metrics, rank)
            elif probing or (step + 1) % config.report_every_steps == 0:
                ray.train.report(metrics)
        summary["stages"][stage_name] = {
            "steps": total_steps, "samples": len(samples), "accumulation": accumulation,
            "prepare_seconds": round(prepare_seconds, 2), "seconds": round(time.perf_counter() - stage_started, 2),
            "final": metrics,
            "ranks_agree": ranks_agree(carried)}
        for reason, count in features.skipped.items():
            summary["skipped"][f"{stage_name}: {reason}"] = count
        if stage_name == config.stages[-1] and rank == 0:
            model.save(out / "model", tokenizer, include_lm=True)
        resume_dir = None
        engine.destroy() if hasattr(engine, "destroy") else None
        del engine, optimizer, model
    if rank == 0:
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if writer is not None:
        writer.close()


class _SampleOrder:
    """Position in the stage's sample stream -> sample index: a fresh seeded permutation every epoch, so a resumed
    run sees exactly the batches the lost run would have seen."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self._permutations = size, seed, {}

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch not in self._permutations:
            permutation = list(range(self.size))
            random.Random(self.seed * 100_003 + epoch).shuffle(permutation)
            self._permutations[epoch] = permutation
        return self._permutations[epoch][offset]


# ================================================================================================ the driver
def check_before_launch(config: TrainConfig) -> dict:
    """Everything that can be checked without a worker: data files, encoder depth, connector name and layers.

    Returns what the driver learnt (encoder depth, the connector's layers) for the run's metadata.
    """
    from transformers import AutoConfig

    from raylayers.connectors import connector_class
    from raylayers.encoders import _load_config, quiet_transformers
    from raylayers.model import load_tokenizer, resolve_model_layers

    quiet_transformers()
    cls = connector_class(config.model.connector)  # names the valid choices
    for stage_name in config.stages:
        path = Path(getattr(config.data, stage_name))
        if not path.is_file():
            raise UserError(f"data.{stage_name}: '{path}' does not exist")
    if config.data.val and not Path(config.data.val).is_file():
        raise UserError(f"data.val: '{config.data.val}' does not exist")
    encoder_config = _load_config(config.model.encoder, config.model.trust_remote_code)
    vision = getattr(encoder_config, "vision_config", None) or encoder_config
    depth = int(vision.num_hidden_layers)
    try:
        AutoConfig.from_pretrained(config.model.lm, trust_remote_code=config.model.trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(f"model.lm: cannot load '{config.model.lm}': {str(err).splitlines()[0][:200]}") from None
    load_tokenizer(config.model.lm, config.model.trust_remote_code)
    layers = resolve_model_layers(config.model, depth)
    return {"encoder_layers": depth, "layers": layers, "vision_layers": cls.required_layers(layers, depth)}


def run_training(config: TrainConfig, out: str | Path, tune_callback: bool = False) -> dict:
    """Run the recipe on Ray Train; returns the final metrics. Raises UserError on divergence."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from raylayers.ray_session import init_ray

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    checked = check_before_launch(config)  # paths are absolute already: a config's paths resolve when it is made
    # the layers resolved once, against the encoder's depth: workers and the saved config carry positive numbers
    config = config.model_copy(update={"model": config.model.model_copy(update={"layers": checked["layers"]})})
    (out / "config.yaml").write_text(dump_yaml(config))
    init_ray()
    hardware = config.resources
    storage = hardware.storage_path or out / "ray"  # an absolute local path, or a URI such as s3://bucket/prefix
    callbacks = []
    if tune_callback:
        callbacks.append(_probe_to_tune_callback())
    threads = max(1, hardware.cpus_per_worker)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.model_dump(), "out": str(out), "threads_per_worker": threads},
        scaling_config=ray.train.ScalingConfig(num_workers=hardware.num_workers, use_gpu=hardware.use_gpu,
                                               resources_per_worker={"CPU": hardware.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if hardware.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=config.name, storage_path=str(storage),
            failure_config=ray.train.FailureConfig(max_failures=config.checkpoint.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.checkpoint.keep),
            callbacks=callbacks),
    )
    (out / DIVERGED_FILE).unlink(missing_ok=True)
    try:
        result = trainer.fit()
    except Exception as err:  # a worker's UserError arrives wrapped in Ray's error with its traceback
        message = user_error_in(str(err))
        if message is None:
            raise
        raise UserError(message) from None
    metrics = dict(result.metrics or {})
    if (out / DIVERGED_FILE).exists():
        diverged = json.loads((out / DIVERGED_FILE).read_text())
        last = result.checkpoint.path if result.checkpoint else "none (it diverged before the first)"
        raise UserError(f"training stopped: the loss became NaN/inf at {diverged['stage']} step "
                        f"{diverged['step']}; last good checkpoint: {last}")
    summary_path = out / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({"final_metrics": metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None,
                    **checked})
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _probe_to_tune_callback():
    """Ray Train's `TuneReportCallback`, forwarding only the probe's reports, with the validation answer accuracy
    as `score` (what ASHA and the searcher rank by; Tune requires the metric in every result it gets)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class ProbeToTune(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            first = dict(metrics[0]) if metrics else {}
            if "val_answer_accuracy" not in first:
                return
            first["score"] = first["val_answer_accuracy"]
            super().after_report(run_context, [first, *metrics[1:]], checkpoint)

    return ProbeToTune()
