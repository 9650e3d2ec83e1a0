"""Typed configs: dataclasses with every default in one place and a docstring per field, loaded from YAML.

`load_config(TrainConfig, "file.yaml", ["stage2.learning_rate=1e-4"])` reads the file with a safe loader, applies
`--set` overrides (values parsed as YAML scalars), and builds the dataclass tree. An unknown key, a missing required
key or a value of the wrong type is a `UserError` that names the key path and the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from raylayers.errors import UserError
from raylayers.paths import LOCAL, MODEL, path_field, resolve_paths

T = TypeVar("T")


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def _convert(value: Any, annotation, key: str, where: str):
    """Check/convert one value against a field annotation (str, int, float, bool, list[...], dict, X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, where)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if errors else f"'{key}' in {where} cannot be null")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise UserError(f"'{key}' in {where} must be a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, where, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"'{key}' in {where} must be a list, got {value!r}")
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        items = [_convert(item, item_type, f"{key}[{i}]", where) for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise UserError(f"'{key}' in {where} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise UserError(f"'{key}' in {where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"'{key}' in {where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"'{key}' in {where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"'{key}' in {where} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config annotation {_type_name(annotation)} for '{key}'")


def from_dict(cls: type[T], data: dict, where: str = "config", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, strictly: unknown keys and wrong types name the key."""
    if not isinstance(data, dict):
        raise UserError(f"{where}{' at ' + prefix.rstrip('.') if prefix else ''} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown key '{prefix}{unknown[0]}' in {where} (valid: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        key = prefix + name
        if name in data:
            values[name] = _convert(data[name], hints[name], key, where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UserError(f"missing required key '{key}' in {where}")
    return cls(**values)


def to_dict(config) -> dict:
    """A dataclass tree as plain data (YAML/JSON-ready)."""
    return dataclasses.asdict(config)


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `key.path=value` to nested `data` in place; the value is parsed as a YAML scalar."""
    if "=" not in assignment:
        raise UserError(f"--set expects key=value, got '{assignment}'")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read config '{path}': {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config '{path}' is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config '{path}' must be a YAML mapping at the top level")
    return data


def resolve_config_path(name: str | Path) -> Path:
    """A YAML path, or the name of a shipped recipe (`demo` -> raylayers/configs/train_demo.yaml)."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    from importlib import resources

    shipped = Path(str(resources.files("raylayers.configs").joinpath(f"train_{name}.yaml")))
    if shipped.is_file():
        return shipped
    names = sorted(p.stem.removeprefix("train_") for p in shipped.parent.glob("train_*.yaml"))
    raise UserError(f"config '{name}' is neither a file nor a shipped recipe (shipped: {', '.join(names)})")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict | None = None, where: str | None = None) -> T:
    """Read YAML (or take `data`), apply `--set` overrides, build `cls` strictly and resolve its paths against the
    current directory (`raylayers.paths`). `where` names the source in errors (default: the file)."""
    raw = dict(data or {}) if path is None else read_yaml(path)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    where = where or (f"'{path}'" if path is not None else "config")
    config = resolve_paths(from_dict(cls, raw, where))  # relative paths mean the user's folder (paths.py)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


# ------------------------------------------------------------------------------------------------ training
@dataclasses.dataclass
class ModelConfig:
    """The LLaVA-style model: vision tower, connector, causal LM."""

    encoder: str = path_field(MODEL)
    """Vision encoder: local folder or hub id (a full CLIP/SigLIP checkpoint works; only its vision part is used)."""
    lm: str = path_field(MODEL)
    """Causal LM: a folder or hub id with weights, or a folder with only config.json (initialised from seed)."""
    connector: str = "mlp2x_gelu"
    """Connector name: linear, mlp2x_gelu, concat, dense_sti, dense_sci, dense_dci, mmfuser, scalar_mix,
    internal_direct."""
    layers: list[int] = dataclasses.field(default_factory=list)
    """Encoder layers the connector reads (negative numbers count from the end); empty: the connector's default."""
    lrs: str | None = path_field(LOCAL, default=None)
    """An lrs.json; with `concat` and no `layers`, one representative layer per LRS group is used."""
    projector: str = "mlp2x_gelu"
    """Projector of connectors that take one (`linear` or `mlp2x_gelu`)."""
    connector_options: dict = dataclasses.field(default_factory=dict)
    """Connector-specific options (dense_sti: pool_stride; mmfuser: heads, points)."""
    trust_remote_code: bool = False
    """Let checkpoints run their own code (off unless you trust them)."""
    gradient_checkpointing: bool = False
    """Recompute LM activations in the backward pass to save memory."""


@dataclasses.dataclass
class DataConfig:
    """Training data: LLaVA json (or Parquet with the same columns) plus an image folder."""

    stage1: str = path_field(LOCAL)
    """Stage-1 caption data (LLaVA json or parquet)."""
    stage2: str = path_field(LOCAL)
    """Stage-2 instruction data (LLaVA json or parquet)."""
    val: str | None = path_field(LOCAL, default=None)
    """Held-out stage-2 style data for the validation probe (loss and answer accuracy during training)."""
    image_folder: str | None = path_field(LOCAL, default=None)
    """Folder image paths are relative to; default: the data file's folder."""
    max_length: int = 512
    """Token limit per sample; longer text is truncated after the image tokens, never through them."""
    max_records: int | None = None
    """Use at most this many records per file (quick runs)."""
    val_records: int = 64
    """Records of `val` used by the probe."""


@dataclasses.dataclass
class StageConfig:
    """One training stage (the paper's "Training recipe")."""

    learning_rate: float = 1e-3
    """Peak learning rate (AdamW, linear warm-up then cosine decay)."""
    epochs: float = 1.0
    """Passes over the stage's data."""
    max_steps: int | None = None
    """Cap on optimizer steps (None: as many as the epochs take)."""
    global_batch_size: int = 32
    """Samples per optimizer step across all workers (gradient accumulation makes up the rest)."""
    micro_batch_size: int = 8
    """Samples per forward pass per worker."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    train_lm: bool = False
    """Train the LM too (stage 2) or only the connector (stage 1)."""
    template: str = "plain"
    """`plain` (image then caption, LLaVA stage 1) or `chat` (the tokenizer's chat template, else Vicuna v1)."""


@dataclasses.dataclass
class ResourcesConfig:
    """Where the training runs (Ray Train ScalingConfig)."""

    num_workers: int = 1
    """Training workers (one per GPU on a cluster)."""
    use_gpu: bool = False
    """One GPU per worker."""
    cpus_per_worker: int = 1
    """CPUs reserved per worker."""
    storage_path: str | None = path_field(LOCAL, default=None)
    """Ray Train storage (shared storage such as NFS or S3 on multi-node clusters); default: <out>/ray."""


@dataclasses.dataclass
class DeepSpeedConfig:
    """DeepSpeed settings; the rest comes from the shipped JSON for the stage."""

    zero_stage: int = 2
    """ZeRO stage 0-3 (selects raylayers/configs/deepspeed/zero<stage>.json)."""
    config: str | None = path_field(LOCAL, default=None)
    """Your own DeepSpeed JSON instead of the shipped one (batch sizes and precision are filled in by raylayers)."""


@dataclasses.dataclass
class CheckpointConfig:
    """Checkpoints and fault tolerance."""

    every_steps: int = 50
    """Save a checkpoint every N optimizer steps (and at each stage end)."""
    keep: int = 2
    """Checkpoints kept by Ray Train."""
    max_failures: int = 2
    """Worker failures survived by restarting from the last checkpoint."""


@dataclasses.dataclass
class CacheConfig:
    """The frozen-feature cache (DESIGN.md, "Performance principles")."""

    enabled: bool = True
    """Compute each image's selected layers once and reuse them across epochs, stages and runs."""
    dir: str | None = path_field(LOCAL, default=None)
    """Cache folder (shared storage on clusters); default: ~/.cache/raylayers/features."""


@dataclasses.dataclass
class TrainConfig:
    """`raylayers train --config FILE.yaml`: the two-stage LLaVA recipe on Ray Train + DeepSpeed."""

    model: ModelConfig
    """The model."""
    data: DataConfig
    """The data."""
    stage1: StageConfig = dataclasses.field(default_factory=StageConfig)
    """Stage 1: align the connector on captions (LM frozen)."""
    stage2: StageConfig = dataclasses.field(default_factory=lambda: StageConfig(
        learning_rate=2e-5, train_lm=True, template="chat"))
    """Stage 2: instruction tuning of connector and LM."""
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    """Workers and storage."""
    deepspeed: DeepSpeedConfig = dataclasses.field(default_factory=DeepSpeedConfig)
    """DeepSpeed."""
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    """Checkpoints and fault tolerance."""
    cache: CacheConfig = dataclasses.field(default_factory=CacheConfig)
    """Feature cache."""
    precision: str = "auto"
    """`auto` (bf16 on GPU, fp32 on CPU), `bf16`, `fp16` or `fp32`."""
    seed: int = 0
    """Seed for initialisation, data order and the probe subset."""
    log_every_steps: int = 1
    """TensorBoard scalars every N optimizer steps (rank 0, local and cheap)."""
    report_every_steps: int = 10
    """Metrics to Ray (and Tune) every N optimizer steps; also at every probe and checkpoint. A Ray Train report
    is a barrier across workers, so reporting every step slows small models down."""
    probe_every_steps: int = 25
    """Validation probe every N optimizer steps (0: only at stage ends)."""
    stages: list[str] = dataclasses.field(default_factory=lambda: ["stage1", "stage2"])
    """Stages to run, in order."""
    name: str = "train"
    """Run name (Ray Train run folder; a search names it after the trial)."""

    def validate(self) -> None:
        if self.deepspeed.zero_stage not in (0, 1, 2, 3):
            raise UserError(f"deepspeed.zero_stage must be 0, 1, 2 or 3, got {self.deepspeed.zero_stage}")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise UserError(f"precision must be auto, bf16, fp16 or fp32, got '{self.precision}'")
        for stage in self.stages:
            if stage not in ("stage1", "stage2"):
                raise UserError(f"stages: unknown stage '{stage}' (valid: stage1, stage2)")
        for name in ("stage1", "stage2"):
            stage = getattr(self, name)
            if stage.template not in ("plain", "chat"):
                raise UserError(f"{name}.template must be plain or chat, got '{stage.template}'")
            if stage.micro_batch_size < 1 or stage.global_batch_size < 1:
                raise UserError(f"{name}: batch sizes must be positive")
            per_step = stage.micro_batch_size * self.resources.num_workers
            if stage.global_batch_size % per_step:
                raise UserError(f"{name}.global_batch_size {stage.global_batch_size} is not a multiple of "
                                f"micro_batch_size {stage.micro_batch_size} x num_workers "
                                f"{self.resources.num_workers}")
        if self.resources.num_workers < 1:
            raise UserError("resources.num_workers must be at least 1")
