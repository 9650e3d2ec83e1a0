"""What every Ray Train worker runs: each stage of the recipe, resuming from the last checkpoint if there is one.

The shape of a torchtune recipe: `setup` (config, devices, the checkpoint to resume from, TensorBoard, tokenizer),
then per stage `run_stage` (a fresh model with the weights the previous stage or checkpoint left, the stage's data
and image features, a DeepSpeed engine, the step loop with probes, logs, reports and checkpoints), then `finish`
(`train_summary.json`). Everything a worker needs travels in `loop_config`; nothing comes from module globals.

A stage: stage 1 trains the connector on captions ("plain" template); stage 2 trains connector and LM on
instructions (chat template); `stageN.train_lm` decides. A diverged stage (a NaN/inf loss or gradient norm, or a
loss stuck at the uniform-guess level: `divergence.py`) stops every rank at the same step (the metrics are
all-reduced) and leaves `diverged.json` (the step's metrics and the reason) for the driver; no checkpoint of that
state is written.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from raylayers import timings
from raylayers.config import StageConfig, TrainConfig
from raylayers.data import ConversationEncoder, SampleOrder, collate
from raylayers.errors import UserError
from raylayers.features import ImageFeatures
from raylayers.train.checkpoint import (
    STATE_FILE,
    gathered,
    load_trainable_weights,
    ranks_agree,
    read_checkpoint_weights,
    save_checkpoint,
    trainable_weights,
)
from raylayers.train.deepspeed import deepspeed_config, gradient_norm, keeps_gradient_norm
from raylayers.train.divergence import DivergenceGuard
from raylayers.train.probe import all_reduce_sum, probe
from raylayers.train.schedule import stage_schedule, warmup_steps

DIVERGED_FILE = "diverged.json"


@dataclass
class Worker:
    """What one worker's stages share."""

    config: TrainConfig
    out: Path
    rank: int
    world_size: int
    device: torch.device
    use_gpu: bool
    tokenizer: object
    writer: object | None  # TensorBoard on rank 0
    state: dict  # the checkpoint state: stage, step, stage_done, stages_done, steps_by_stage, global_step
    resume_dir: Path | None  # the checkpoint this worker group resumes from (until its stage starts)
    carried: dict | None = None  # trainable weights handed from one stage (or checkpoint) to the next
    evaluation: dict | None = None  # evaluate the trained model in memory at the end (a search trial; rank 0)
    trained: object = None  # the last stage's model, kept for that evaluation
    summary: dict = field(default_factory=lambda: {"stages": {}, "skipped": {}, "truncated": {}, "resumed_from": None})
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Stage:
    """One stage in progress: its model, data, engine and step budget."""

    name: str
    settings: StageConfig
    model: object
    features: ImageFeatures
    samples: list
    probe_samples: list
    engine: object = None
    scheduler: object = None
    trainable: list = field(default_factory=list)
    total_steps: int = 0
    steps_per_epoch: int = 1
    accumulation: int = 1
    prepare_seconds: float = 0.0


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker: setup, every stage not done yet, finish. Rank 0 records where the time goes
    (`timings.jsonl` in the run folder: see `raylayers.timings`)."""
    entered = time.time()
    worker = setup(loop_config)
    if worker.rank == 0:
        timings.use(worker.out)
        timings.record("worker process", timings.process_started(), entered)
        timings.record("worker setup", entered, time.time())
    try:
        ran = False
        for stage_name in worker.config.stages:
            if stage_name in worker.state["stages_done"]:
                continue
            ran = True
            if not run_stage(worker, stage_name):
                return  # diverged: the driver reads diverged.json
        if not ran:  # resumed from the last stage's end checkpoint: stopped before its model was written
            save_resumed_model(worker)
        evaluate_trained(worker)
        finish(worker)
    finally:
        if worker.writer is not None:
            worker.writer.close()
        timings.use(None)


def setup(loop_config: dict) -> Worker:
    """Devices and threads, the checkpoint to resume from, TensorBoard (rank 0), the tokenizer."""
    use_gpu = bool(loop_config["config"]["resources"].get("use_gpu", False))
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported in this process
    import deepspeed  # noqa: F401 (imported here, once per process, so the set-up time shows it)
    import ray.train

    from raylayers.model import load_tokenizer

    config = TrainConfig.model_validate(loop_config["config"])
    out = Path(loop_config["out"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = torch.device(f"cuda:{context.get_local_rank()}") if use_gpu else torch.device("cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, int(loop_config.get("threads_per_worker", 1))))
    state = {"stage": None, "step": 0, "stage_done": False, "stages_done": [], "steps_by_stage": {},
             "global_step": 0}
    resume_dir, carried = resume_folder(ray.train.get_checkpoint(), loop_config.get("resume_from")), None
    if resume_dir is not None:
        state = json.loads((resume_dir / STATE_FILE).read_text())
        carried = read_checkpoint_weights(resume_dir)
        print(f"[raylayers] rank {rank} resumes from {state['stage']} step {state['step']} ({resume_dir})",
              flush=True)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(out / "tensorboard"))
    worker = Worker(config, out, rank, world_size, device, use_gpu,
                    load_tokenizer(config.model.lm, config.model.trust_remote_code), writer, state, resume_dir,
                    carried, loop_config.get("evaluation"))
    if resume_dir is not None:
        worker.summary["resumed_from"] = {key: state[key] for key in ("stage", "step", "global_step")}
    record_worker_group(worker)
    return worker


def record_worker_group(worker: Worker) -> None:
    """Which Ray node each rank of this worker group runs on: in the summary (`nodes`, by rank) and, one line per
    worker group (a restart after a lost worker or node starts a new one), in `worker_groups.jsonl`."""
    import ray
    import torch.distributed as dist

    node = ray.get_runtime_context().get_node_id()
    nodes = [node]
    if dist.is_available() and dist.is_initialized() and worker.world_size > 1:
        nodes = [None] * worker.world_size
        dist.all_gather_object(nodes, node)
    worker.summary["nodes"] = nodes
    if worker.rank == 0:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "nodes": nodes,
                "resumed_from": worker.summary["resumed_from"]}
        with open(worker.out / "worker_groups.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")


def resume_folder(checkpoint, found_on_disk: str | None) -> Path | None:
    """What to resume from: the last checkpoint Ray Train reported (a restarted worker group), or the newest whole
    one the driver found on disk when the run was resumed (`--resume` after a kill or an interrupt, when Ray's
    record may lag behind the disk), whichever is further along; None for a fresh run."""
    candidates = [Path(checkpoint.to_directory())] if checkpoint is not None else []
    candidates += [Path(found_on_disk)] if found_on_disk else []

    def progress(folder: Path) -> tuple:
        state = json.loads((folder / STATE_FILE).read_text())
        return int(state["global_step"]), bool(state.get("stage_done"))

    return max(candidates, key=progress, default=None)


def run_stage(worker: Worker, stage_name: str) -> bool:
    """Train one stage to its end (False when the loss diverged)."""
    stage = prepare_stage(worker, stage_name)
    start_engine(worker, stage)
    config, state = worker.config, worker.state
    start_step = 0
    if worker.resume_dir is not None and state["stage"] == stage_name and not state["stage_done"]:
        with timings.span("checkpoint load", stage=stage_name):
            stage.engine.load_checkpoint(str(worker.resume_dir / "ds"), tag="ds")
        start_step = state["step"]
    order = SampleOrder.for_stage(stage.samples, stage_name, config.seed, stage.settings.global_batch_size,
                                  config.data.length_group_batches)
    stage_started, metrics = time.perf_counter(), {}
    guard = DivergenceGuard(stage.model.lm.config.get_text_config().vocab_size,
                            warmup_steps(stage.settings.warmup_ratio, stage.total_steps),
                            check_grad_norm=config.precision != "fp16", check_plateau=stage.settings.train_lm)
    stage.engine.train()
    for step in range(start_step, stage.total_steps):
        with timings.adding("training steps"):
            metrics = train_step(worker, stage, order, step)
        reason = guard.check(metrics)  # the metrics are all-reduced: every rank stops at the same step
        if reason:
            if worker.rank == 0:  # no checkpoint of this state: the last good one stays the latest
                (worker.out / DIVERGED_FILE).write_text(json.dumps({**metrics, "reason": reason}, indent=2))
            return False
        after_step(worker, stage, step, metrics)
    worker.summary["stages"][stage_name] = {
        "steps": stage.total_steps, "samples": len(stage.samples), "accumulation": stage.accumulation,
        "prepare_seconds": round(stage.prepare_seconds, 2),
        "seconds": round(time.perf_counter() - stage_started, 2), "final": metrics,
        "ranks_agree": ranks_agree(worker.carried)}
    for reason, count in stage.features.skipped.items():
        worker.summary["skipped"][f"{stage_name}: {reason}"] = count
    timings.flush_totals(stage=stage_name)
    if stage_name == config.stages[-1] and worker.rank == 0:
        with timings.span("model save", stage=stage_name):
            stage.model.save(worker.out / "model", worker.tokenizer, include_lm=True)
        worker.trained = stage.model
    worker.resume_dir = None
    if hasattr(stage.engine, "destroy"):
        stage.engine.destroy()
    return True


def prepare_stage(worker: Worker, stage_name: str) -> Stage:
    """The stage's model (with the carried weights, the right parts trainable), its samples and probe samples."""
    from raylayers.feature_cache import DEFAULT_CACHE_DIR, FeatureCache
    from raylayers.model import LlavaLayers
    from raylayers.sample_cache import encode_samples_cached

    config, settings = worker.config, worker.config.stage(stage_name)
    with timings.span("model build", stage=stage_name):
        model = LlavaLayers.build(config.model, worker.tokenizer, seed=config.seed)
        model.to(worker.device)
        if worker.carried is not None:
            load_trainable_weights(model, worker.carried)
    model.requires_grad_(False)
    model.connector.requires_grad_(True)
    model.lm.requires_grad_(settings.train_lm)
    if worker.rank == 0:
        (worker.out / "model_metadata.json").write_text(json.dumps(model.metadata(), indent=2))
    started = time.time()
    cache = FeatureCache(config.cache.dir, model.tower.fingerprint()) if config.cache.enabled else None
    features = ImageFeatures(model, cache, worker.rank, worker.world_size, worker.device)

    def encoder(template: str) -> ConversationEncoder:
        return ConversationEncoder(worker.tokenizer, model.image_token_id, model.num_image_tokens,
                                   config.data.max_length, template)

    # token ids come from the sample cache next to the feature cache when the same file was encoded alike before
    token_cache = Path(config.cache.dir or DEFAULT_CACHE_DIR) if config.cache.enabled else None
    data_file = config.data.stage1 if stage_name == "stage1" else config.data.stage2
    stage_encoder = encoder(settings.template)
    samples = features.prepare(encode_samples_cached(data_file, stage_encoder, config.data.max_records,
                                                     config.data.image_folder, token_cache))
    worker.summary["truncated"][stage_name] = stage_encoder.truncated
    probe_samples = features.prepare(encode_samples_cached(config.data.val, encoder(config.stage2.template),
                                                           config.data.val_records, config.data.image_folder,
                                                           token_cache)) if config.data.val else []
    if not samples:
        raise UserError(f"{stage_name}: no usable records in '{data_file}' ({dict(features.skipped)})")
    ended = time.time()
    timings.record("data preparation", started, ended, stage=stage_name)
    return Stage(stage_name, settings, model, features, samples, probe_samples, prepare_seconds=ended - started)


def start_engine(worker: Worker, stage: Stage) -> None:
    """The step budget, AdamW with warm-up + cosine, and `deepspeed.initialize` with the stage's ZeRO JSON."""
    import deepspeed

    settings = stage.settings
    stage.steps_per_epoch = max(1, len(stage.samples) // settings.global_batch_size)
    stage.total_steps = max(1, math.ceil(settings.epochs * stage.steps_per_epoch))
    if settings.max_steps is not None:
        stage.total_steps = min(stage.total_steps, settings.max_steps)
    stage.accumulation = settings.global_batch_size // (settings.micro_batch_size * worker.world_size)
    stage.trainable = [p for p in stage.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(stage.trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    stage.scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, stage_schedule(settings.warmup_ratio, stage.total_steps))
    ds_config = deepspeed_config(worker.config, settings, worker.world_size, worker.use_gpu,
                                 stage.model.lm.config.get_text_config().hidden_size)
    with timings.span("deepspeed init", stage=stage.name):
        stage.engine, _, _, _ = deepspeed.initialize(model=stage.model, optimizer=optimizer,
                                                     lr_scheduler=stage.scheduler, config=ds_config,
                                                     dist_init_required=False)
    # the stage the engine runs (0 for ZeRO-1/2 on one rank; a user's JSON may differ from the config key): what
    # gathering, the in-memory evaluation and a whole checkpoint (`is_complete`, from state.json) go by
    worker.state["zero_stage"] = worker.summary["zero_stage"] = stage.engine.zero_optimization_stage()


def train_step(worker: Worker, stage: Stage, order: SampleOrder, step: int) -> dict:
    """One optimizer step over `accumulation` micro-batches; the all-reduced metrics of the step."""
    settings, engine = stage.settings, stage.engine
    started = time.perf_counter()
    loss_sum, tokens, images, norm = 0.0, 0, 0, None
    for micro in range(stage.accumulation):
        first = ((step * stage.accumulation + micro) * worker.world_size + worker.rank) * settings.micro_batch_size
        batch = [stage.samples[order[first + i]] for i in range(settings.micro_batch_size)]
        tensors = {k: v.to(worker.device) for k, v in collate(batch, worker.tokenizer.pad_token_id).items()}
        output = engine(**tensors, features=stage.features.get(batch))
        engine.backward(output.loss)
        if micro == stage.accumulation - 1 and not keeps_gradient_norm(engine):
            norm = gradient_norm(stage.trainable)  # before engine.step() clips them
        engine.step()
        loss_sum += float(output.loss.detach())
        tokens += int(tensors["attention_mask"].sum())
        images += len(batch)
    loss_sum, tokens, images = all_reduce_sum([loss_sum / stage.accumulation, tokens, images])
    if norm is None:  # ZeRO's and the mixed-precision optimizers' own record of the step
        norm = float(engine.get_global_grad_norm() or 0.0)
    seconds = time.perf_counter() - started
    worker.state["global_step"] += 1
    return {"stage": stage.name, "step": step + 1, "global_step": worker.state["global_step"],
            "loss": loss_sum / worker.world_size, "learning_rate": stage.scheduler.get_last_lr()[0],
            "grad_norm": norm, "samples_per_s": images / seconds, "tokens_per_s": tokens / seconds,
            "epoch": (step + 1) / stage.steps_per_epoch}


def after_step(worker: Worker, stage: Stage, step: int, metrics: dict) -> None:
    """The probe when due, TensorBoard, and a checkpoint (stage end, every N steps) or a plain report to Ray."""
    import ray.train

    from raylayers.model import lm_has_weights

    config, state = worker.config, worker.state
    done = step + 1 == stage.total_steps
    probing = bool(stage.probe_samples) and (done or (
        config.probe_every_steps and (step + 1) % config.probe_every_steps == 0))
    if probing:
        with timings.adding("probes"):
            metrics.update(probe(stage.engine, stage.probe_samples, stage.features, worker.rank, worker.world_size,
                                 stage.settings.micro_batch_size, worker.tokenizer.pad_token_id))
    if worker.writer is not None and ((step + 1) % config.log_every_steps == 0 or done or probing):
        with timings.adding("tensorboard"):
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    worker.writer.add_scalar(f"{stage.name}/{key}", value, state["global_step"])
            worker.writer.flush()
    if done or (step + 1) % config.checkpoint.every_steps == 0:
        state.update(stage=stage.name, step=step + 1, stage_done=done, metrics=metrics)
        state["steps_by_stage"][stage.name] = step + 1
        if done:
            state["stages_done"].append(stage.name)
        lm_trained = any(config.stage(name).train_lm for name in [*state["stages_done"], stage.name])
        with timings.adding("checkpoints"):
            with gathered(stage.trainable, state["zero_stage"]):
                worker.carried = trainable_weights(stage.model,
                                                   include_lm=lm_trained or not lm_has_weights(config.model.lm))
            save_checkpoint(stage.engine, worker.carried, state, metrics, worker.rank)
    elif probing or (step + 1) % config.report_every_steps == 0:
        with timings.adding("reports"):
            ray.train.report(metrics)


def save_resumed_model(worker: Worker) -> None:
    """The model of a run that stopped between its last checkpoint and its model save: the checkpoint's weights,
    saved as a finished run saves them, and its metrics reported again (the driver's final metrics)."""
    import ray.train

    from raylayers.model import LlavaLayers

    if worker.rank == 0:
        model = LlavaLayers.build(worker.config.model, worker.tokenizer, seed=worker.config.seed)
        load_trainable_weights(model, worker.carried)
        model.save(worker.out / "model", worker.tokenizer, include_lm=True)
    ray.train.report(dict(worker.state.get("metrics", {})))


def evaluate_trained(worker: Worker) -> None:
    """A search trial's evaluation (`loop_config["evaluation"]`: the arguments of `evaluate_checkpoint`), run by
    rank 0 on the model it just trained and saved, in memory: no second load from disk. Only where the weights in
    memory are exactly the saved ones: whole on this rank (not ZeRO-3) and fp32 (a bf16/fp16 engine casts the
    model; the saved checkpoint loads in fp32). Otherwise, or after a resume that trained nothing, the trial
    evaluates the saved model itself; `train_summary.json` says which (`evaluated`)."""
    model, settings = worker.trained, worker.evaluation
    if worker.rank != 0 or model is None or not settings:
        return
    if worker.summary.get("zero_stage") == 3 or any(p.dtype != torch.float32 for p in model.parameters()):
        return
    from raylayers.evaluate.run import evaluate_checkpoint

    with timings.span("evaluation"):
        evaluate_checkpoint(worker.out / "model", out=worker.out / "eval", loaded=(model, worker.tokenizer),
                            use_gpu=worker.use_gpu, **settings)
    worker.summary["evaluated"] = str(worker.out / "eval")


def finish(worker: Worker) -> None:
    """`train_summary.json` (rank 0)."""
    if worker.rank == 0:
        from raylayers.files import write_text_atomic

        worker.summary["seconds"] = round(time.perf_counter() - worker.started, 2)
        write_text_atomic(worker.out / "train_summary.json", json.dumps(worker.summary, indent=2, default=str))
