"""`raylayers search --space FILE.yaml`: a search space, every key typed and documented here.

A space file has five sections (see search_spaces/*.yaml, each with the command that runs it in its header):
- `base`: the training recipe every trial starts from (a shipped recipe name or a train YAML, plus overrides);
- `lrs`: where the layer groups come from (an `lrs.json`, or images to compute it from first);
- `space`: how many layers, from which groups (at most one per group by default), which connectors, and a few
  training hyper-parameters;
- `objective`: the benchmarks, answer mode, category weights (equal by default) and metric (each benchmark's
  official rule by default, or the lenient reading) of the score, and optionally its cost (`objective.cost`: a
  penalty on visual tokens or connector parameters, a cap on their ratio to the baseline);
- `budget`: trials, concurrency, searcher, early-stopping rungs, retries, seed.
Connector names are checked against the connector registry by `raylayers.search.space.load_search_config`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from raylayers.config.base import BenchList, LocalPath, RecipeRef, Section
from raylayers.config.evaluate import EvalMode, EvalOptions
from raylayers.config.lrs import LRSOptions
from raylayers.config.train import TrainConfig
from raylayers.evaluate.schema import CATEGORIES

Searcher = Literal["tpe", "geometry", "random", "grid"]
ObjectiveMetric = Literal["official", "lenient"]
CostMeasure = Literal["visual_tokens", "connector_params"]
HYPERPARAMETER_KINDS = ("choice", "uniform", "log_uniform")


class BaseSection(Section):
    """The training recipe of every trial."""

    config: RecipeRef = "demo"
    """A shipped recipe name (demo, paper_mobilellama_1.4b) or a `raylayers train` YAML."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Overrides as `key.path: value` (the same keys as `raylayers train --set`)."""


class LRSSection(LRSOptions):
    """The layer groups: an lrs.json, or images to compute it from (with the options of `raylayers lrs`)."""

    file: LocalPath | None = None
    """An lrs.json written by `raylayers lrs`; computed into it first when missing and `images` is given."""
    images: LocalPath | None = None
    """Images to compute the LRS from (folder, LLaVA json or benchmark folder) when `file` does not exist."""


class SpaceSection(Section):
    """What the search may choose."""

    num_layers: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    """How many encoder layers a configuration reads."""
    groups: list[str] = Field(default_factory=list)
    """LRS groups layers may come from (empty: all)."""
    one_per_group: bool = True
    """At most one layer per group (the paper's fusion rule)."""
    layers: list[int] = Field(default_factory=list)
    """Candidate layers (negative numbers count from the end; empty: every layer 1..L)."""
    single_connectors: list[str] = Field(default_factory=lambda: ["mlp2x_gelu"])
    """Connectors for one layer (linear, mlp2x_gelu)."""
    fusion_connectors: list[str] = Field(default_factory=lambda: ["concat"])
    """Connectors for several layers (concat, dense_sti, dense_sci, dense_dci, mmfuser, scalar_mix,
    internal_direct)."""
    hyperparameters: dict[str, dict[str, list]] = Field(default_factory=dict)
    """Training keys to tune: `stage2.learning_rate: {log_uniform: [1e-4, 3e-3]}`, `{uniform: [a, b]}` or
    `{choice: [...]}`."""
    baseline: bool = True
    """Try the penultimate layer alone (LLaVA's habit) among the first trials."""
    priors: bool = True
    """Start from the LRS representatives and favour representative-like layers (raylayers/search/space.py)."""
    prior_temperature: PositiveFloat = 0.1
    """Temperature of the representative-likeness sampling (smaller: closer to the representatives)."""

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters_are_training_keys(cls, hyperparameters: dict) -> dict:
        for key, spec in hyperparameters.items():
            _check_hyperparameter(key, spec)
        return hyperparameters


def _check_hyperparameter(key: str, spec: dict) -> None:
    if len(spec) != 1 or next(iter(spec)) not in HYPERPARAMETER_KINDS:
        raise ValueError(f"space.hyperparameters.{key}: give one of {{choice: [...]}}, {{uniform: [low, high]}}, "
                         "{log_uniform: [low, high]}")
    kind, values = next(iter(spec.items()))
    if not values:
        raise ValueError(f"space.hyperparameters.{key}.{kind}: expected a non-empty list")
    if kind != "choice":
        if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or values[0] >= values[1]:
            raise ValueError(f"space.hyperparameters.{key}.{kind}: expected [low, high] with low < high")
        if kind == "log_uniform" and values[0] <= 0:
            raise ValueError(f"space.hyperparameters.{key}.log_uniform: low must be positive")
    section: Any = TrainConfig
    for part in key.split("."):
        fields = getattr(section, "model_fields", {})
        if part not in fields:
            raise ValueError(f"space.hyperparameters: '{key}' is not a training key")
        section = fields[part].annotation


class CostSection(Section):
    """A cost-aware objective: the score minus a penalty on what a configuration costs, relative to the baseline."""

    measure: CostMeasure
    """What a configuration costs: `visual_tokens` (tokens the connector gives the LM per image) or
    `connector_params` (trainable parameters of the connector)."""
    penalty: NonNegativeFloat = 0.0
    """objective = score - penalty x (cost / baseline cost - 1); the baseline is the penultimate layer alone with the
    first single connector (the cheapest configuration of the space when it has none). 0: rank by score alone."""
    max_ratio: PositiveFloat | None = None
    """Leave configurations costing more than max_ratio x the baseline's cost out of the search entirely (never
    proposed, never trained); e.g. 2.0: nothing that doubles the token count."""


class ObjectiveSection(EvalOptions):
    """The score a trial is ranked by: benchmarks and category weights, answered as `raylayers eval` would."""

    bench: BenchList = "world"
    """Benchmarks (`raylayers eval --bench`): folders, a world, or world task names, comma-separated."""
    mode: EvalMode = "likelihood"
    """Answer mode; likelihood by default here: small models trained for minutes rarely produce the answer format,
    and ranking options by likelihood measures what they know."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Category weights (general, ocr, vision_centric, hallucination); missing ones weigh 1."""
    metric: ObjectiveMetric = "official"
    """Which figure of each benchmark the category means use: `official` (the official scoring rule, e.g. MMBench's
    circular accuracy read as lmms-eval reads letters) or `lenient` (the same figure with raylayers' lenient answer
    reading, which accepts "(b)", "the answer is B" or the option's text where the official rule may not)."""
    cost: CostSection | None = None
    """Optional cost-aware objective (`measure`, `penalty`, `max_ratio`): the score minus a penalty on visual tokens
    or connector parameters; the report then shows the score-against-cost front of the trials."""

    @field_validator("weights")
    @classmethod
    def _known_categories(cls, weights: dict) -> dict:
        for category in weights:
            if category not in CATEGORIES:
                raise ValueError(f"objective.weights.{category}: unknown category (valid: {', '.join(CATEGORIES)})")
        return weights


class BudgetSection(Section):
    """How much to spend and how."""

    trials: PositiveInt = 8
    """Trials to run (configurations already measured are answered from the results table and not counted)."""
    concurrency: PositiveInt = 1
    """Trials at once (each needs the base recipe's workers x cpus_per_worker CPUs, or GPUs)."""
    searcher: Searcher = "tpe"
    """tpe (Optuna TPE with LRS priors), geometry (LRS priors, then a Gaussian process over layer points from the LRS
    matrix: neighbours of a measured layer are believed alike), random (uniform over configurations) or grid (all,
    in order)."""
    seed: int = 0
    """Seed of the searcher."""
    prior_trials: NonNegativeInt = 2
    """Trials drawn from the representative-likeness prior after the seeded ones (tpe and geometry)."""
    grace_period: NonNegativeInt = 0
    """Early stopping: first ASHA rung, in training steps (0: no early stopping)."""
    reduction_factor: PositiveInt = 2
    """ASHA: keep the best 1/reduction_factor at each rung."""
    screen: NonNegativeInt = 8
    """geometry with early stopping: train each new configuration to the first rung and pause it there (a screen);
    after this many screens resume the best one and train it in full, then one more per reduction_factor further
    screens (successive halving with promotions). 0: ASHA stops trials at its rungs instead."""
    retries: NonNegativeInt = 1
    """Times a crashed trial is retried before it is recorded as failed."""
    storage_path: LocalPath | None = None
    """Shared storage (NFS path, s3://...) for Tune and Train on a multi-node cluster."""


class SearchConfig(Section):
    """`raylayers search --space FILE.yaml`."""

    base: BaseSection = Field(default_factory=BaseSection)
    """The training recipe."""
    lrs: LRSSection = Field(default_factory=LRSSection)
    """The layer groups."""
    space: SpaceSection = Field(default_factory=SpaceSection)
    """The search space."""
    objective: ObjectiveSection = Field(default_factory=ObjectiveSection)
    """The score."""
    budget: BudgetSection = Field(default_factory=BudgetSection)
    """The budget."""
    name: str = "search"
    """Experiment name (Tune's folder under the output)."""

    @model_validator(mode="after")
    def _grid_needs_choices(self) -> SearchConfig:
        if self.budget.searcher == "grid":
            continuous = [k for k, v in self.space.hyperparameters.items() if "choice" not in v]
            if continuous:
                raise ValueError(f"space.hyperparameters.{continuous[0]}: grid search needs a choice list")
        return self
