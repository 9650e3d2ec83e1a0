"""`raylayers train --config FILE.yaml`: the two-stage LLaVA recipe, every key typed and documented here.

The shipped recipes (`raylayers/configs/train_*.yaml`) and every search trial are instances of `TrainConfig`.
Constraints that need no model or files are checked here (positive batch sizes and steps, the global batch a
multiple of micro batch x workers); what needs the encoder or the data (layer numbers against the depth, files
that exist, connector names) is checked by the training driver before any worker starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from raylayers.config.base import LocalPath, ModelSource, Section

StageName = Literal["stage1", "stage2"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]


class ModelConfig(Section):
    """The LLaVA-style model: vision tower, connector, causal LM."""

    encoder: ModelSource
    """Vision encoder: local folder or hub id (a full CLIP/SigLIP checkpoint works; only its vision part is used)."""
    lm: ModelSource
    """Causal LM: a folder or hub id with weights, or a folder with only config.json (initialised from seed)."""
    connector: str = "mlp2x_gelu"
    """Connector name: linear, mlp2x_gelu, concat, dense_sti, dense_sci, dense_dci, mmfuser, scalar_mix,
    internal_direct (checked against `raylayers.connectors.CONNECTORS` before training)."""
    layers: list[int] = Field(default_factory=list)
    """Encoder layers the connector reads (negative numbers count from the end); empty: the connector's default."""
    lrs: LocalPath | None = None
    """An lrs.json; with `concat` and no `layers`, one representative per LRS group is used."""
    projector: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    """Projector of connectors that take one."""
    connector_options: dict[str, Any] = Field(default_factory=dict)
    """Connector-specific options (dense_sti: pool_stride; mmfuser: heads, points)."""
    trust_remote_code: bool = False
    """Let checkpoints run their own code (off unless you trust them)."""
    gradient_checkpointing: bool = False
    """Recompute LM activations in the backward pass to save memory."""


class DataConfig(Section):
    """Training data: LLaVA json (or Parquet with the same columns) plus an image folder."""

    stage1: LocalPath
    """Stage-1 caption data (LLaVA json or parquet)."""
    stage2: LocalPath
    """Stage-2 instruction data (LLaVA json or parquet)."""
    val: LocalPath | None = None
    """Held-out stage-2 style data for the validation probe (loss and answer accuracy during training)."""
    image_folder: LocalPath | None = None
    """Folder image paths are relative to; default: the data file's folder."""
    max_length: PositiveInt = 512
    """Token limit per sample; longer text is truncated after the image tokens, never through them."""
    max_records: PositiveInt | None = None
    """Use at most this many records per file (quick runs)."""
    val_records: PositiveInt = 64
    """Records of `val` used by the probe."""
    length_group_batches: NonNegativeInt = 8
    """Each run of this many global batches trains on its shuffled samples longest first, so a micro-batch pads to
    lengths like its own (LLaVA's length-grouped sampling; which samples share a window stays random). On the
    demo's stage 2 the real tokens' share of a padded micro-batch goes from 0.69 to 0.97. 1: each global batch on
    its own (LLaVA's megabatch); 0: plain shuffling."""


class StageConfig(Section):
    """One training stage (the paper's "Training recipe")."""

    learning_rate: PositiveFloat = 1e-3
    """Peak learning rate (AdamW, linear warm-up then cosine decay)."""
    epochs: PositiveFloat = 1.0
    """Passes over the stage's data."""
    max_steps: PositiveInt | None = None
    """Cap on optimizer steps (None: as many as the epochs take)."""
    global_batch_size: PositiveInt = 32
    """Samples per optimizer step across all workers (gradient accumulation makes up the rest)."""
    micro_batch_size: PositiveInt = 8
    """Samples per forward pass per worker."""
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    """Fraction of the steps spent warming up."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    train_lm: bool = False
    """Train the LM too (stage 2) or only the connector (stage 1)."""
    template: Literal["plain", "chat"] = "plain"
    """`plain` (image then caption, LLaVA stage 1) or `chat` (the tokenizer's chat template, else Vicuna v1)."""


class ResourcesConfig(Section):
    """Where the training runs (Ray Train ScalingConfig)."""

    num_workers: PositiveInt = 1
    """Training workers (one per GPU on a cluster)."""
    use_gpu: bool = False
    """One GPU per worker."""
    cpus_per_worker: PositiveInt = 1
    """CPUs reserved per worker (and torch threads per worker on CPU)."""
    storage_path: LocalPath | None = None
    """Ray Train storage (shared storage such as NFS or S3 on multi-node clusters); default: <out>/ray."""


class DeepSpeedConfig(Section):
    """DeepSpeed settings; the rest comes from the shipped JSON for the stage."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    """ZeRO stage (selects raylayers/configs/deepspeed/zero<stage>.json)."""
    partition_one_rank: bool = False
    """ZeRO 1 and 2 partition optimizer state and gradients across ranks; on a single rank there is nothing to
    split and the bookkeeping costs about 8% of a demo-size step (`benchmarks/train_throughput.py`), so a
    one-worker run uses the stage-0 JSON unless this is true (or `config` is your own JSON)."""
    config: LocalPath | None = None
    """Your own DeepSpeed JSON instead of the shipped one (batch sizes and precision are filled in by raylayers)."""


class CheckpointConfig(Section):
    """Checkpoints and fault tolerance."""

    every_steps: PositiveInt = 50
    """Save a checkpoint every N optimizer steps (and at each stage end)."""
    keep: PositiveInt = 2
    """Checkpoints kept by Ray Train."""
    max_failures: NonNegativeInt = 2
    """Worker failures survived by restarting from the last checkpoint."""


class CacheConfig(Section):
    """The frozen-feature cache (README, "Training")."""

    enabled: bool = True
    """Compute each image's selected layers once and reuse them across epochs, stages and runs."""
    dir: LocalPath | None = None
    """Cache folder (shared storage on clusters); default: ~/.cache/raylayers/features."""


class TrainConfig(Section):
    """`raylayers train --config FILE.yaml`: the two-stage LLaVA recipe on Ray Train + DeepSpeed."""

    model: ModelConfig
    """The model."""
    data: DataConfig
    """The data."""
    stage1: StageConfig = Field(default_factory=StageConfig)
    """Stage 1: align the connector on captions (LM frozen)."""
    stage2: StageConfig = Field(default_factory=lambda: StageConfig(learning_rate=2e-5, train_lm=True,
                                                                    template="chat"))
    """Stage 2: instruction tuning of connector and LM."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """Workers and storage."""
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    """DeepSpeed."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoints and fault tolerance."""
    cache: CacheConfig = Field(default_factory=CacheConfig)
    """Feature cache."""
    precision: Precision = "auto"
    """`auto` (bf16 on GPU, fp32 on CPU), `bf16`, `fp16` or `fp32`."""
    seed: int = 0
    """Seed for initialisation, data order and the probe subset."""
    log_every_steps: PositiveInt = 1
    """TensorBoard scalars every N optimizer steps (rank 0, local and cheap)."""
    report_every_steps: PositiveInt = 10
    """Metrics to Ray (and Tune) every N optimizer steps; also at every probe and checkpoint. A Ray Train report
    is a barrier across workers, so reporting every step slows small models down."""
    probe_every_steps: NonNegativeInt = 25
    """Validation probe every N optimizer steps (0: only at stage ends)."""
    stages: list[StageName] = Field(default_factory=lambda: ["stage1", "stage2"], min_length=1)
    """Stages to run, in order."""
    name: str = "train"
    """Run name (Ray Train run folder; a search names it after the trial)."""

    @model_validator(mode="after")
    def _batches_divide(self) -> TrainConfig:
        for name in ("stage1", "stage2"):
            stage = getattr(self, name)
            per_step = stage.micro_batch_size * self.resources.num_workers
            if stage.global_batch_size % per_step:
                raise ValueError(f"{name}.global_batch_size {stage.global_batch_size} is not a multiple of "
                                 f"micro_batch_size {stage.micro_batch_size} x num_workers "
                                 f"{self.resources.num_workers}")
        return self

    def stage(self, name: StageName) -> StageConfig:
        """The settings of stage `name`."""
        return self.stage1 if name == "stage1" else self.stage2
