"""Every config of raylayers, typed with pydantic v2 and documented field by field, with one loader.

- `train`: `TrainConfig` (`raylayers train --config`), its sections, and every search trial.
- `search`: `SearchConfig` (`raylayers search --space`).
- `pretrain`: `PretrainConfig`, `PretrainLMConfig` and their presets (`raylayers pretrain-encoder`, `pretrain-world`).
- `world`: `WorldScale` and its presets (`raylayers world --scale`).
- `evaluate`, `lrs`: the options of `raylayers eval` and `raylayers lrs`, which a search's `objective` and `lrs`
  sections extend, so their defaults live in one place.
- `base`: the `Section` model, typed paths, YAML reading, `--set`, one-line errors (`load_config`).

`raylayers config-schema train|search` writes a section's JSON Schema for editors.
"""

from raylayers.config.base import (
    BenchList,
    LocalPath,
    ModelSource,
    RecipeRef,
    Section,
    apply_override,
    dump_yaml,
    load_config,
    read_yaml,
    set_key,
    validate,
)
from raylayers.config.evaluate import MODES, EvalMode, EvalOptions
from raylayers.config.lrs import LRSOptions
from raylayers.config.pretrain import PRESETS, PretrainConfig, PretrainLMConfig, pretrain_config, pretrain_lm_config
from raylayers.config.recipes import resolve_config_path
from raylayers.config.search import (
    BaseSection,
    BudgetSection,
    CostSection,
    LRSSection,
    ObjectiveSection,
    SearchConfig,
    SpaceSection,
)
from raylayers.config.train import (
    CacheConfig,
    CheckpointConfig,
    DataConfig,
    DeepSpeedConfig,
    ModelConfig,
    ResourcesConfig,
    StageConfig,
    TrainConfig,
)
from raylayers.config.world import SCALES, WorldScale

SCHEMAS = {"train": TrainConfig, "search": SearchConfig}
"""The configs `raylayers config-schema` describes."""

__all__ = [
    "MODES", "PRESETS", "SCHEMAS", "BaseSection", "BenchList", "BudgetSection", "CacheConfig", "CheckpointConfig",
    "CostSection", "DataConfig", "DeepSpeedConfig", "EvalMode", "EvalOptions", "LRSOptions", "LRSSection", "LocalPath",
    "ModelConfig", "ModelSource", "ObjectiveSection", "PretrainConfig", "PretrainLMConfig", "RecipeRef",
    "ResourcesConfig", "SCALES", "SearchConfig", "Section", "SpaceSection", "StageConfig", "TrainConfig",
    "apply_override", "dump_yaml", "WorldScale", "load_config", "pretrain_config", "pretrain_lm_config", "read_yaml",
    "resolve_config_path", "set_key", "validate",
]
